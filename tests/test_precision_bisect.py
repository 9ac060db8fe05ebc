"""Bisection: the state machine against an oracle (every culprit set found, the evaluation bound), and sessions on a
real model: undo, cache, resume after a real kill -9, --check commands (missing, hanging, crashing), linear, auto
and interactive modes, corrupted state files."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from engine_core.errors import TrtdbgError
from engine_core.options import DataOptions
from engine_core.precision.bisect import BisectOptions, BisectSession, Phase, Search
from engine_core.precision.state import load_state, pack, unpack
from engine_core.workspace import Workspace
from tests.conftest import ROOT, run_cli
from tests.precision_models import planted_chain


# ---------------------------------------------------------------------- the state machine with an oracle
def _simulate(
    n: int,
    culprits: set[int],
    mode: str = "bisect",
    direction: str = "forward",
    chooser: np.random.Generator | None = None,
) -> tuple[set[str], int, Search]:
    """Run a search where a configuration passes iff every culprit is high; count distinct evaluations (the
    all-high configuration is known to pass, as for the CPU FP32 baseline)."""
    names = [f"n{i}" for i in range(n)]
    search = Search([Phase("fp16", "fp32", names)], mode, direction)
    cache = {search.all_high_plan().key(): True}
    while (prop := search.proposal()) is not None:
        choice = int(chooser.integers(2)) if (chooser is not None and prop.halves) else 0
        plan = search.plan(prop.config(choice))
        key = plan.key()
        if key not in cache:
            cache[key] = all(plan.nodes.get(names[c]) == "fp32" for c in culprits)
        search.advance(prop, choice, cache[key])
    assert search.problem is None
    return set(search.culprits), len(cache) - 1, search


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 64, 100, 1000])
def test_single_culprit_within_log2_plus_2_everywhere(n: int) -> None:
    bound = math.ceil(math.log2(n)) + 2 if n > 1 else 2
    positions = range(n) if n <= 100 else range(0, n, 37)
    for mode_dir in (("bisect", "forward"), ("bisect", "reverse")):
        for c in positions:
            found, evals, _ = _simulate(n, {c}, *mode_dir)
            assert found == {f"n{c}"}
            assert evals <= bound, (n, c, mode_dir, evals)


def test_every_culprit_set_is_found_whatever_the_choices() -> None:
    rng = np.random.default_rng(0)
    for trial in range(60):
        n = int(rng.integers(1, 40))
        culprits = {int(i) for i in rng.choice(n, size=int(rng.integers(0, min(n, 5) + 1)), replace=False)}
        mode, direction = ("bisect", "linear")[trial % 2], ("forward", "reverse")[(trial // 2) % 2]
        found, evals, _ = _simulate(n, culprits, mode, direction, chooser=rng if trial % 3 == 0 else None)
        assert found == {f"n{c}" for c in culprits}, (n, culprits, mode, direction)
        if mode == "bisect" and culprits:
            assert evals <= len(culprits) * (math.ceil(math.log2(n)) + 2)


def test_linear_mode_walks_one_node_at_a_time() -> None:
    found, evals, _ = _simulate(10, {6}, "linear", "forward")
    assert found == {"n6"} and evals == 1 + 7 + 1  # all-low, n0..n6 one by one, verify
    found, evals, _ = _simulate(10, {6}, "linear", "reverse")
    assert found == {"n6"} and evals == 1 + 4 + 1  # all-low, n9..n6 from the end, verify


_DENSE = {int(i) for i in np.random.default_rng(0).choice(40, 30, replace=False)}
_SPARSE = {int(i) for i in np.random.default_rng(0).choice(64, 2, replace=False)}


@pytest.mark.parametrize(
    ("n", "culprits", "direction", "counts"),
    [
        (40, _DENSE, "forward", {"bisect": 164, "linear": 80, "auto": 52}),
        (40, _DENSE, "reverse", {"bisect": 139, "linear": 80, "auto": 50}),
        (64, _SPARSE, "forward", {"bisect": 15, "linear": 109, "auto": 15}),
        (64, _SPARSE, "reverse", {"bisect": 14, "linear": 49, "auto": 14}),
    ],
)
def test_auto_sweeps_dense_culprits_and_bisects_sparse_ones(
    n: int, culprits: set[int], direction: str, counts: dict[str, int]
) -> None:
    measured = {}
    for mode in ("bisect", "linear", "auto"):
        found, measured[mode], _ = _simulate(n, culprits, mode, direction)
        assert found == {f"n{c}" for c in culprits}, mode
    assert measured == counts
    assert measured["auto"] <= min(measured["bisect"], measured["linear"])


def test_auto_sweep_steps_lower_one_node_and_end_without_a_verify() -> None:
    names = [f"n{i}" for i in range(8)]
    search = Search([Phase("fp16", "fp32", names)], "auto", "forward")
    search.stage, search.kept, search.region = "sweep", [7], [0, 1, 2, 3]  # kept + region high passes
    prop = search.proposal()
    assert prop is not None and prop.kind == "split" and prop.halves == ([0, 1, 2], [3]) and prop.high == [7]
    assert search.advance(prop, 0, False) == "culprit: n3" and search.kept == [7, 3] and search.region == [0, 1, 2]
    prop = search.proposal()
    assert prop is not None and prop.config(1) == [7, 3, 2]  # the single node as the other half: only it falls back
    search.advance(prop, 1, False)  # a culprit is among n0, n1: n2 is tried last
    prop = search.proposal()
    assert search.region == [2, 0, 1] and prop is not None and prop.halves == ([2, 0], [1])
    search.advance(prop, 1, True)  # kept + n1 passes: n0, n2 are not needed
    prop = search.proposal()
    assert search.region == [1] and prop is not None and prop.kind == "verify" and prop.high == [7, 3]
    search.advance(prop, 0, False)  # kept alone fails: n1 is the last culprit, kept + n1 passed before
    assert search.done and search.culprits == {"n7": "fp32", "n3": "fp32", "n1": "fp32"}


def test_every_dense_culprit_set_is_found_whatever_the_choices() -> None:
    rng = np.random.default_rng(1)
    for trial in range(90):
        n = int(rng.integers(2, 50))
        culprits = {int(i) for i in rng.choice(n, size=int(rng.integers(n // 3, n + 1)), replace=False)}
        mode, direction = ("auto", "linear", "bisect")[trial % 3], ("forward", "reverse")[(trial // 3) % 2]
        found, evals, _ = _simulate(n, culprits, mode, direction, chooser=rng if trial % 2 else None)
        assert found == {f"n{c}" for c in culprits}, (n, culprits, mode, direction)
        if mode == "linear" and trial % 2 == 0:
            assert evals <= 2 * n + 2  # one walk to the first culprit, then one sweep (was quadratic)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_auto_resumes_identically_from_any_step(direction: str) -> None:
    """Each step's snapshot, through JSON into a new search, continues with the same proposals to the same end."""
    names = [f"n{i}" for i in range(40)]

    def run(search: Search, stop: int | None = None) -> list[tuple[str, list[int]]]:
        steps: list[tuple[str, list[int]]] = []
        while (prop := search.proposal()) is not None and len(steps) != stop:
            high = prop.config(0)
            steps.append((search.stage, high))
            search.advance(prop, 0, all(c in high for c in _DENSE))
        return steps

    whole = Search([Phase("fp16", "fp32", names)], "auto", direction)
    reference = run(whole)
    assert "sweep" in {stage for stage, _ in reference} and "split" in {stage for stage, _ in reference}
    for stop in range(len(reference)):
        first = Search([Phase("fp16", "fp32", names)], "auto", direction)
        head = run(first, stop)
        again = Search([Phase("fp16", "fp32", names)], "auto", direction)
        again.restore(json.loads(json.dumps(first.snapshot())))
        assert head + run(again) == reference
        assert again.culprits == whole.culprits


def test_a_snapshot_saved_before_auto_existed_loads_and_finishes() -> None:
    """The snapshot layout is unchanged (a sweep is a stage): a bisect-mode state mid-search continues in auto."""
    names = [f"n{i}" for i in range(40)]
    old = {
        "phase": 0,
        "stage": "verify",
        "candidates": [[0, 40]],
        "kept": [39],
        "context": [[0, 39]],
        "region": [],
        "culprits": {},
        "problem": None,
    }
    search = Search([Phase("fp16", "fp32", names)], "auto")
    search.restore(old)
    while (prop := search.proposal()) is not None:
        high = prop.config(0)
        search.advance(prop, 0, all(c in high for c in _DENSE))
    assert search.problem is None and set(search.culprits) == {f"n{c}" for c in _DENSE}


def test_snapshot_round_trip_mid_search() -> None:
    names = [f"n{i}" for i in range(50)]
    search = Search([Phase("int8", "fp16", names)], "bisect", "forward")
    prop = search.proposal()
    search.advance(prop, 0, False)
    search.advance(search.proposal(), 1, False)
    snap = json.loads(json.dumps(search.snapshot()))
    again = Search([Phase("int8", "fp16", names)], "bisect", "forward")
    again.restore(snap)
    assert again.snapshot() == search.snapshot()
    assert again.proposal() == search.proposal()
    assert again.plan([0, 1]).key() == search.plan([0, 1]).key() and search.plan([0]).default == "int8"
    assert unpack(pack([0, 1, 2, 7, 9, 10])) == [0, 1, 2, 7, 9, 10] and pack([3, 4, 5]) == [[3, 6]]


# ---------------------------------------------------------------------- sessions on a real model
def _chain(tmp_path: Path, n: int = 24, at: int = 9) -> Path:
    path = tmp_path / f"chain_{n}_{at}.onnx"
    onnx.save(planted_chain(n, at), path)
    return path


def _session(model: Path, **kw: object) -> BisectSession:
    return BisectSession(BisectOptions(model=str(model), data=DataOptions(iterations=2), **kw)).start()  # type: ignore[arg-type]


@pytest.mark.parametrize("at", [0, 11, 23])
def test_real_model_single_culprit_evaluation_bound(tmp_path: Path, at: int) -> None:
    session = _session(_chain(tmp_path, 24, at))
    n = len(session.search.phases[0].candidates)
    assert n == 25  # 24 chain nodes + the culprit; its two consumers read constants beyond FP16 and are demoted
    result = session.run()
    assert result["culprits"] == ["/culprit/Add"]
    assert set(result["demoted"]) == {"/culprit/Sub", "/culprit/Restore"}
    assert result["passed"] and result["evaluations"] <= math.ceil(math.log2(n)) + 2 == result["evaluation_bound"]


def test_undo_back_and_cache(tmp_path: Path) -> None:
    model = _chain(tmp_path)
    session = _session(model)
    first = [session.step() for _ in range(3)]
    evals = session.evaluations
    assert [s["index"] for s in first] == [1, 2, 3]
    undone = session.back()
    assert undone and undone[-1]["kind"] == "split" and len(session.history) == 3 - len(undone)
    again = session.step(first[len(session.history)].get("choice", 0))
    assert again["cached"] and session.evaluations == evals
    other = session.step(1) if session.proposal() and session.proposal().halves else None
    if other is not None:
        assert not other["cached"]
    result = session.run()
    assert result["culprits"] == ["/culprit/Add"] and result["passed"]
    state = load_state(Workspace.for_model(model))
    assert len(state["history"]) == len(result["steps"]) and state["evaluations"] == result["evaluations"]
    while session.undo() is not None:
        pass
    assert session.history == [] and session.search.stage == "all-low"
    again = session.run()["evaluations"]  # the automatic path: only configurations not seen yet cost anything
    while session.undo() is not None:
        pass
    redo = session.run()
    assert redo["evaluations"] == again and all(s["cached"] for s in redo["steps"])
    assert redo["culprits"] == ["/culprit/Add"]


def test_auto_session_on_dense_culprits_sweeps_and_resumes_mid_sweep(tmp_path: Path) -> None:
    """A real chain with 16 culprits among 32 candidates: auto finds bisect's culprits in fewer evaluations; a
    session stopped in the middle of the sweep and resumed from its saved state ends identically."""
    at = tuple(range(16))
    path = tmp_path / "dense.onnx"
    onnx.save(planted_chain(16, at), path)
    expected = [f"/culprit{i}/Add" for i in at]
    bisect = _session(path, mode="bisect", workspace=str(tmp_path / "ws_bisect")).run()
    whole = _session(path, workspace=str(tmp_path / "ws_auto")).run()
    assert whole["mode"] == "auto" and bisect["culprits"] == whole["culprits"] == expected
    assert bisect["passed"] and whole["passed"]
    assert (bisect["evaluations"], whole["evaluations"]) == (81, 44)
    assert any("dense" in s["outcome"] for s in whole["steps"])
    session = _session(path, workspace=str(tmp_path / "ws_stop"))
    while session.search.stage != "sweep" or len(session.search.kept) < 4:
        session.step()
    session.close()
    resumed = BisectSession.resume(str(path), str(tmp_path / "ws_stop")).start()
    assert resumed.search.stage == "sweep"
    result = resumed.run()
    assert result["culprits"] == expected and result["passed"]
    assert result["evaluations"] == whole["evaluations"]
    assert [s["outcome"] for s in result["steps"]] == [s["outcome"] for s in whole["steps"]]


def test_resume_in_process_and_bad_state_files(tmp_path: Path) -> None:
    model = _chain(tmp_path)
    session = _session(model)
    session.step()
    session.step()
    resumed = BisectSession.resume(str(model)).start()
    assert len(resumed.history) == 2 and resumed.evaluations == 2
    result = resumed.run()
    assert result["culprits"] == ["/culprit/Add"]
    ws = Workspace.for_model(model)
    state = ws.path("bisect", "state.json")
    good = state.read_text()

    state.write_text(good[: len(good) // 2])
    with pytest.raises(TrtdbgError, match="corrupted .*left in place"):
        BisectSession.resume(str(model)).start()
    assert state.read_text() == good[: len(good) // 2]  # never overwritten by a failed resume
    doc = json.loads(good)
    del doc["search"]
    state.write_text(json.dumps(doc))
    with pytest.raises(TrtdbgError, match="corrupted \\(no 'search'\\)"):
        BisectSession.resume(str(model)).start()
    doc = json.loads(good)
    doc["search"]["region"] = "nonsense"
    state.write_text(json.dumps(doc))
    with pytest.raises(TrtdbgError, match="corrupted"):
        BisectSession.resume(str(model)).start()
    state.write_text(good)
    onnx.save(planted_chain(24, 3), model)
    with pytest.raises(TrtdbgError, match="changed since this bisection started"):
        BisectSession.resume(str(model)).start()
    state.unlink()
    with pytest.raises(TrtdbgError, match="no bisection to resume"):
        BisectSession.resume(str(model)).start()


CHECK = """
import json, os, sys, time
plan = json.load(open(os.environ["TRTDBG_PLAN"]))
for key in ("TRTDBG_MODEL", "TRTDBG_OUTPUTS", "TRTDBG_INPUTS", "TRTDBG_REFERENCE_OUTPUTS"):
    if not os.path.isfile(os.environ[key]):
        sys.exit(3)
with open(sys.argv[1], "a") as log:
    log.write(os.environ["TRTDBG_STEP"] + "\\n")
if len(sys.argv) > 2 and sys.argv[2] == "slow":
    time.sleep(0.4)
if len(sys.argv) > 2 and sys.argv[2] == "hang" and os.environ["TRTDBG_STEP"] == "3":
    time.sleep(30)
if len(sys.argv) > 2 and sys.argv[2] == "crash" and os.environ["TRTDBG_STEP"] == "3":
    os.kill(os.getpid(), 11)
sys.exit(0 if plan["nodes"].get("/culprit/Add") == "fp32" else 1)
"""


def _check_cmd(tmp_path: Path, *extra: str) -> tuple[str, Path]:
    script = tmp_path / "check.py"
    script.write_text(CHECK)
    log = tmp_path / "check.log"
    return " ".join([sys.executable, str(script), str(log), *extra]), log


def test_check_command_flow(tmp_path: Path) -> None:
    model = _chain(tmp_path, 12, 5)
    cmd, log = _check_cmd(tmp_path)
    proc = run_cli("bisect", str(model), "--check", cmd, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["culprits"] == ["/culprit/Add"] and doc["passed"]
    assert doc["steps"][0]["kind"] == "baseline" and doc["steps"][0]["evaluation"]["judged_by"] == "check"
    assert len(log.read_text().split()) == doc["evaluations"]  # one check run per evaluation, baseline included
    candidate = onnx.load(str(Path(doc["state"]).parent / "candidate.onnx"))
    assert any(n.op_type == "Cast" for n in candidate.graph.node)  # the real rewritten model, not the emulation


def test_check_command_missing_hanging_crashing(tmp_path: Path) -> None:
    model = _chain(tmp_path, 6, 2)
    proc = run_cli("bisect", str(model), "--check", str(tmp_path / "nope.sh"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr and proc.stderr.count("\n") == 1
    proc = run_cli("bisect", str(model), "--check", "no-such-program-trtdbg --x")
    assert proc.returncode == 2 and "not on PATH" in proc.stderr
    proc = run_cli("bisect", str(model), "--check", "exit 1")
    assert proc.returncode == 2 and "fails even with every node at fp32" in proc.stderr

    cmd, _ = _check_cmd(tmp_path, "hang")
    t0 = time.perf_counter()
    proc = run_cli("bisect", str(model), "--check", cmd, "--check-timeout", "0.5", "--json")
    doc = json.loads(proc.stdout)
    assert "timed out after 0.5 s" in proc.stderr and time.perf_counter() - t0 < 20
    assert doc["finished"] and doc["steps"][2]["evaluation"]["detail"] == "timed out after 0.5 s"
    assert not doc["steps"][2]["passed"]

    cmd, _ = _check_cmd(tmp_path, "crash")
    proc = run_cli("bisect", str(model), "--check", cmd, "--json")
    doc = json.loads(proc.stdout)
    assert "crashed (SIGSEGV)" in proc.stderr and doc["finished"]
    assert doc["steps"][2]["evaluation"]["detail"] == "crashed (SIGSEGV)"


def test_resume_after_kill_9(tmp_path: Path) -> None:
    model = _chain(tmp_path, 16, 4)
    cmd, log = _check_cmd(tmp_path, "slow")
    args = [sys.executable, "-m", "tui.cli.main", "bisect", str(model), "--check", cmd, "--quiet"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = Workspace.for_model(model).path("bisect", "state.json")
    deadline = time.time() + 60
    try:
        while time.time() < deadline:
            if state.exists() and len(json.loads(state.read_text())["history"]) >= 3:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the bisection never got to step 3")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed = load_state(Workspace.for_model(model))  # parses: the file was never half-written
    done_before = len(killed["history"])
    assert done_before >= 3 and killed["evaluations"] == done_before
    resumed = run_cli("bisect", str(model), "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    doc = json.loads(resumed.stdout)
    assert doc["culprits"] == ["/culprit/Add"] and doc["passed"]
    # same result and evaluation count as a run that was never interrupted; the step in flight was lost at most
    names = load_state(Workspace.for_model(model))["phases"][0]["candidates"]
    _, expected, _ = _simulate(len(names), {names.index("/culprit/Add")})
    assert doc["evaluations"] == expected + 1  # + the baseline a --check run evaluates
    assert len(log.read_text().split()) in (doc["evaluations"], doc["evaluations"] + 1)
    assert [s["index"] for s in doc["steps"]] == list(range(1, len(doc["steps"]) + 1))


@pytest.mark.slow
def test_interactive_back_quit_and_resume(tmp_path: Path) -> None:
    model = _chain(tmp_path, 20, 13)
    answers = "2\nb\n2\n1\nq\n"
    proc = subprocess.run(
        [sys.executable, "-m", "tui.cli.main", "bisect", str(model), "--interactive"],
        input=answers,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr  # left unfinished
    assert "which half falls back?" in proc.stderr and "went back 1 step(s)" in proc.stderr
    assert "stopped; continue with: trtdbg bisect" in proc.stderr
    assert "unfinished (continue with --resume)" in proc.stdout
    assert "[cached]" in proc.stdout  # after going back, the same choice again costs no evaluation
    state = load_state(Workspace.for_model(model))
    kinds = [h["step"]["kind"] for h in state["history"]]
    assert kinds[0] == "all-low" and kinds.count("split") == 2
    proc = run_cli("bisect", str(model), "--resume", "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["culprits"] == ["/culprit/Add"]

    user = subprocess.run(
        [sys.executable, "-m", "tui.cli.main", "bisect", str(model), "--interactive"],
        input="f\nq\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert user.returncode == 1, user.stderr
    steps = [h["step"] for h in load_state(Workspace.for_model(model))["history"]]
    assert [(s["kind"], s["passed"], s["evaluation"]["judged_by"]) for s in steps] == [
        ("all-low", False, "compare"),
        ("split", False, "user"),
    ]
