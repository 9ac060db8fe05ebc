"""Hostile and broken input through every subcommand (in-process ``main([...])``, subprocesses where the point
is a real process: broken pipes, kill -9, locks held by another process).

Every case asserts what a careful user of a security-conscious tool expects: the exit code (2 when the
work cannot go on), at most one line on stderr for an error, no traceback, no raw terminal control
character in text output (JSON keeps the raw names), the input files unchanged, no temp-file debris.
Each case also runs under a time bound (a hang guard, not a benchmark).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import ROOT
from tests.graphs import weighted_model
from tests.hostile_models import NODE_NAMES, OSC_TITLE, assert_no_raw_control, hostile_chain, hostile_custom_op
from tui.cli.main import main

INPUT = "in\x1b[31m"
STRICT_FP16 = ("--subject", "ort:fp16", "--atol", "0", "--rtol", "0")
"""A subject that fails on almost any input (emulated FP16, zero tolerance)."""
BOUND_S = 120.0
"""Hang guard per case: far above what any case needs (seconds)."""


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Hostile models, data files and loader scripts in one folder (module scope: built once)."""
    d = tmp_path_factory.mktemp("hostile")
    onnx.save(hostile_chain(), d / "hostile.onnx")
    onnx.save(hostile_custom_op(), d / "custom.onnx")
    from engine_core.data.polyjson import write_inputs

    write_inputs(d / "inputs.json", [{INPUT: np.full((1, 4), 0.25, np.float32)}])
    (d / "loaders.py").write_text(LOADERS)
    _corrupt_files(d)
    return d


LOADERS = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    NAME = "in\\x1b[31m"

    def ok():
        return [{NAME: np.ones((1, 4), np.float32)}]

    def exit0():
        sys.exit(0)

    def exit3():
        raise SystemExit(3)

    def kbd():
        raise KeyboardInterrupt

    def genexit():
        raise GeneratorExit
        yield

    def prints():
        print("loader chatter \\x1b]0;TITLE\\x07 on stdout")
        return [{NAME: np.ones((1, 4), np.float32)}]

    def sleeps():
        time.sleep(30)
        return []

    def forever():
        while True:
            yield {NAME: np.ones((1, 4), np.float32)}

    def hostile_error():
        raise ValueError("bad \\x1b]0;PWNED\\x07 value\\nforged: second line")

    def nan_inputs():
        return [{NAME: np.array([[np.nan, np.inf, 0, 1]], np.float32)}]
    """
)

LOADER_CASES = {
    "exit0": "SystemExit",
    "exit3": "SystemExit",
    "kbd": "KeyboardInterrupt",
    "genexit": "GeneratorExit",
    "sleeps": "took longer than 1s",
    "hostile_error": "ValueError: bad \\x1b]0;PWNED\\x07 value forged: second line",
}


def _npy(header_shape: str, descr: str = "<f4", payload: bytes = b"\0" * 16) -> bytes:
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {header_shape}, }}"
    text += " " * (64 - (10 + len(text) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin-1") + payload


def _poly_json(npy: bytes) -> str:
    arr = {"array": base64.b64encode(npy).decode(), "polygraphy_class": "ndarray"}
    return json.dumps([{INPUT: arr}])


def _corrupt_files(d: Path) -> None:
    with zipfile.ZipFile(d / "absurd.npz", "w") as zf:
        zf.writestr(f"{INPUT}.npy", _npy("(4294967296, 4294967296)"))
    (d / "absurd.json").write_text(_poly_json(_npy("(8589934592,)")))
    (d / "overflow.json").write_text(_poly_json(_npy("(9223372036854775807, 9223372036854775807)")))
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (d / "pickled.json").write_text(_poly_json(buf.getvalue()))
    with zipfile.ZipFile(d / "pickled.npz", "w") as zf:
        zf.writestr(f"{INPUT}.npy", buf.getvalue())
    (d / "truncated.json").write_text(_poly_json(_npy("(1, 4)", payload=b"\0" * 3)))
    (d / "garbage.json").write_text(
        '[{"in": {"array": "!!!not base64\\u001b]0;T\\u0007", "polygraphy_class": "ndarray"}}]'
    )
    (d / "notjson.json").write_text("\x1b]0;T\x07{{{")
    # external data with nonsense offset / length
    for key, value in (("offset", "abc"), ("length", "-1")):
        w = numpy_helper.from_array(np.ones((1, 4), np.float32), "w")
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
        for k, v in (("location", "weights.bin"), ("offset", "0"), ("length", "16")):
            w.external_data.add(key=k, value=value if k == key else v)
        m = weighted_model("Add", w, [1, 4], node="add", ir_version=8)
        (d / f"ext_{key}.onnx").write_bytes(m.SerializeToString())
    (d / "weights.bin").write_bytes(b"\0" * 16)
    huge = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8589934592, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8589934592, 4])],
    )
    onnx.save(helper.make_model(huge, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), d / "huge_dims.onnx")
    (d / "not_a_model.onnx").write_bytes(b"\x08\x07\x12\x1b]0;T\x07garbage\xff\xfe")


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".trtdbg" not in p.parts and "__pycache__" not in p.parts
    }


@pytest.fixture
def cli(files, tmp_path, capsys, monkeypatch):
    """Run ``trtdbg ARGS`` in-process in a fresh working folder; check the invariants every case shares."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    before = _digests(files)

    def run(*args: str, rc: int | None = 2, json_out: bool = False) -> Result:
        capsys.readouterr()
        start = time.monotonic()
        code = main([str(a) for a in args])
        elapsed = time.monotonic() - start
        out, err = capsys.readouterr()
        res = Result(code, out, err)
        assert elapsed < BOUND_S
        assert "Traceback" not in err and "Traceback" not in out
        assert_no_raw_control(err)
        if not json_out:
            assert_no_raw_control(out)
        if rc is not None:
            assert code == rc, (code, err[-2000:])
        if rc == 2:
            assert len(res.err_lines) == 1, err
        assert _digests(files) == before, "an input file changed"
        debris = [p for p in [*tmp_path.rglob("*.tmp"), *files.rglob("*.tmp")]]
        assert not debris, debris
        return res

    return run


# ---------------------------------------------------------------------- terminal injection in text output
def test_inspect_text_escapes_names_attrs_docs(cli, files) -> None:
    res = cli("inspect", files / "hostile.onnx", "--show", "layers,attrs", rc=0)
    assert "Node 0    | \\x1b]0;PWNED\\x07 [Op: Relu]" in res.out
    assert "a\\nerror: forged" in res.out and "[@click=app.quit]z[/]" in res.out and "注意力/层_1" in res.out
    assert "doc\\x1b]0;T\\x07" in res.out


def test_inspect_json_keeps_raw_names(cli, files) -> None:
    res = cli("inspect", files / "hostile.onnx", "--show", "layers", "--json", rc=0, json_out=True)
    doc = json.loads(res.out)
    assert [layer["name"] for layer in doc["nodes"]["layers"]] == NODE_NAMES


def test_inspect_unsupported_custom_op_is_one_escaped_line(cli, files) -> None:
    res = cli("inspect", files / "custom.onnx")
    assert "unsupported op 'Op\\x1b]0;T\\x07' (domain dom\\x1b[31m) at node 'n\\x1b[2J'" in res.err


def test_inspect_custom_op_domain_and_string_attr(cli, files) -> None:
    res = cli("inspect", files / "custom.onnx", "--show", "layers,attrs", "--allow-unsupported", rc=0)
    assert "Op\\x1b]0;T\\x07" in res.out and "attr\\x1b]0;A\\x07" in res.out and "dom\\x1b[31m" in res.out


def test_inspect_data_escapes_input_names(cli, files) -> None:
    res = cli("inspect", "data", files / "inputs.json", rc=0)
    assert "in\\x1b[31m" in res.out


def test_compare_text_escapes_and_json_keeps_raw(cli, files) -> None:
    res = cli("compare", files / "hostile.onnx", "--mark", "all", "--subject", "ort", rc=0)
    assert "t:\\x1b]0;PWNED\\x07" in res.out or "passed" in res.out.lower()
    res = cli("compare", files / "hostile.onnx", "--mark", "all", "--subject", "ort", "--json", rc=0, json_out=True)
    doc = json.dumps(json.loads(res.out))
    assert json.dumps("t:" + OSC_TITLE)[1:-1] in doc


def test_compare_failing_report_escapes_first_failing(cli, files) -> None:
    res = cli("compare", files / "hostile.onnx", "--mark", "all", *STRICT_FP16, "--val-range", "[0.1,0.3]", rc=None)
    assert res.rc in (0, 1)
    assert_no_raw_control(res.out)


def test_compare_table_columns_align_with_escaped_names(cli, files) -> None:
    """Names are escaped before they are fitted to the tensor column: an OSC title or a forged newline shown as
    ``\\x1b]0;…`` must not push the numbers right (CJK and emoji count two cells)."""
    from engine_core.cells import cell_width

    res = cli("compare", files / "hostile.onnx", "--mark", "all", "--subject", "ort:fp16", rc=1)
    rows = [line for line in res.out.splitlines() if line[:6].strip().isdigit()]
    assert len(rows) == 12
    assert len({cell_width(row) for row in rows}) == 1, rows  # every row "FAIL", so every row as wide


def test_check_lint_custom_op_names(cli, files) -> None:
    res = cli("check", "lint", files / "custom.onnx", rc=None)
    assert res.rc in (0, 1) and ("Op\\x1b]0;T\\x07" in res.out or "n\\x1b[2J" in res.out)


def test_check_lint_json_raw(cli, files) -> None:
    res = cli("check", "lint", files / "custom.onnx", "--json", rc=None, json_out=True)
    assert res.rc in (0, 1)
    json.loads(res.out)


def test_surgeon_extract_hostile_output(cli, files, tmp_path) -> None:
    out = tmp_path / "x.onnx"
    res = cli("surgeon", "extract", files / "hostile.onnx", "--outputs", "t:" + NODE_NAMES[5], "-o", out, rc=0)
    assert out.exists() and "t:a\\nerror: forged" in res.out


def test_surgeon_sanitize_hostile(cli, files, tmp_path) -> None:
    res = cli("surgeon", "sanitize", files / "hostile.onnx", "-o", tmp_path / "s.onnx", rc=0)
    assert "verified" in res.err


def test_surgeon_prune_hostile_node(cli, files, tmp_path) -> None:
    cli("surgeon", "prune", files / "hostile.onnx", "--nodes", NODE_NAMES[0], "-o", tmp_path / "p.onnx", rc=0)


def test_surgeon_insert_hostile_op_name(cli, files, tmp_path) -> None:
    t = "t:" + NODE_NAMES[6]
    res = cli(
        "surgeon",
        "insert",
        files / "hostile.onnx",
        "--op",
        "Identity",
        "--inputs",
        t,
        "--outputs",
        t,
        "--name",
        "ins\x1b]0;X\x07",
        "-o",
        tmp_path / "i.onnx",
        rc=0,
    )
    assert "ins\\x1b]0;X\\x07" in res.out


def test_template_script_is_valid_python_with_hostile_names(cli, files, tmp_path) -> None:
    import ast

    script = tmp_path / "net.py"
    cli("template", "trt-network", files / "hostile.onnx", "-o", script, rc=None)
    if script.exists():
        ast.parse(script.read_text())


def test_bench_hostile_names(cli, files) -> None:
    cli("bench", files / "hostile.onnx", "--iterations", "3", "--warmup", "1", rc=0)


def test_convert_hostile_names(cli, files, tmp_path) -> None:
    cli("convert", files / "hostile.onnx", "--precision", "fp16", "-o", tmp_path / "c.onnx", rc=0)


def test_bisect_hostile_names(cli, files, tmp_path) -> None:
    res = cli("bisect", files / "hostile.onnx", "--workspace", tmp_path / "ws", "--quiet", rc=None)
    assert res.rc in (0, 1)


def test_reduce_hostile_names(cli, files, tmp_path) -> None:
    res = cli("reduce", files / "hostile.onnx", "-o", tmp_path / "r.onnx", *STRICT_FP16, "--quiet", rc=None)
    assert res.rc in (0, 1, 2)


def test_inspect_engine_json_hostile_layers(cli, tmp_path) -> None:
    doc = {
        "Layers": [
            {
                "Name": f"L{OSC_TITLE}[/bold]",
                "LayerType": "Conv\x1b[2J",
                "Inputs": [],
                "Outputs": [],
                "Metadata": "[ONNX Layer: a\x1b]0;X\x07]",
            }
        ],
        "Bindings": [],
    }
    path = tmp_path / "layers.json"
    path.write_text(json.dumps(doc))
    res = cli("inspect", "engine", path, rc=0)
    assert "L\\x1b]0;PWNED\\x07[/bold]" in res.out


def test_diff_hostile_replays(cli, tmp_path) -> None:
    def replay(tactic: str) -> dict:
        return {
            f"layer{OSC_TITLE}": {
                "polygraphy_class": "Algorithm",
                "implementation": 1,
                "tactic": tactic,
                "inputs": [],
                "outputs": [],
            }
        }

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(replay("0x1")))
    b.write_text(json.dumps(replay("0x2")))
    res = cli("diff", a, b, rc=None)
    assert res.rc in (0, 1, 2)


def test_inspect_capability_hostile_names(cli, files) -> None:
    res = cli("inspect", "capability", files / "hostile.onnx", rc=0)
    assert "12 of 12 node(s) supported" in res.out


def test_debug_build_hostile_names(cli, files, tmp_path) -> None:
    res = cli("debug", "build", files / "hostile.onnx", "--until", "1", "--artifacts-dir", tmp_path / "a", rc=0)
    assert "1 build(s)" in res.out + res.err


def test_demo_headless_in_hostile_workspace(cli, tmp_path) -> None:
    res = cli("demo", "--headless", "--workspace", tmp_path / f"ws{OSC_TITLE}", rc=1)
    assert "ws\\x1b]0;PWNED\\x07/demo_inputs.json" in res.out


# ---------------------------------------------------------------------- one-line errors naming hostile paths
SUBCOMMANDS_WITH_MODEL = [
    ["inspect"],
    ["inspect", "capability"],
    ["inspect", "tactics"],
    ["inspect", "data"],
    ["compare"],
    ["bisect"],
    ["bench"],
    ["check", "lint"],
    ["surgeon", "sanitize", "-o", "out.onnx"],
    ["surgeon", "extract", "--outputs", "y", "-o", "out.onnx"],
    ["surgeon", "prune", "--nodes", "n", "-o", "out.onnx"],
    ["surgeon", "insert", "--op", "Relu", "--inputs", "y", "--outputs", "y", "-o", "out.onnx"],
    ["reduce", "-o", "out.onnx", "--subject", "ort:fp16"],
    ["convert", "-o", "out.onnx"],
    ["template", "trt-network", "-o", "s.py"],
    ["debug", "build", "--until", "1"],
    ["open"],
]


@pytest.mark.parametrize("cmd", SUBCOMMANDS_WITH_MODEL, ids=lambda c: "-".join(c[:2]))
def test_missing_file_with_escape_in_name_is_one_escaped_line(cli, cmd) -> None:
    name = "nope\x1b]0;PWNED\x07\n[/bold].onnx"
    pos = (
        2
        if cmd[0] in ("check", "surgeon", "template", "debug") or cmd[1:2] in (["capability"], ["tactics"], ["data"])
        else 1
    )
    args = [*cmd[:pos], name, *cmd[pos:]]
    res = cli(*args)
    assert "nope\\x1b]0;PWNED\\x07\\n[/bold].onnx" in res.err


@pytest.mark.parametrize("cmd", SUBCOMMANDS_WITH_MODEL, ids=lambda c: "-".join(c[:2]))
def test_unknown_option_is_one_line_pointing_at_help(cli, files, cmd) -> None:
    res = cli(*cmd, files / "hostile.onnx", "--bogus\x1b[2J")
    assert "--help" in res.err and "--bogus\\x1b[2J" in res.err


@pytest.mark.parametrize("cmd", ["compare", "bisect", "reduce", "convert"])
def test_bad_int_value_is_one_line(cli, files, cmd) -> None:
    extra = ["-o", "o.onnx"] if cmd in ("reduce", "convert") else []
    res = cli(cmd, files / "hostile.onnx", *extra, "--iterations", "many")
    assert "invalid int value: 'many'" in res.err


def test_not_a_model_is_one_line(cli, files) -> None:
    for cmd in (["inspect"], ["compare"], ["check", "lint"], ["bench"]):
        res = cli(*cmd, files / "not_a_model.onnx")
        assert "not_a_model.onnx" in res.err


def test_ort_cannot_load_custom_op_is_one_line(cli, files) -> None:
    res = cli("compare", files / "custom.onnx", "--subject", "ort")
    assert "\\x1b" in res.err or "Op" in res.err


# ---------------------------------------------------------------------- data-loader scripts
@pytest.mark.parametrize("func", sorted(LOADER_CASES))
@pytest.mark.parametrize("cmd", ["compare", "bench"])
def test_loader_base_exceptions_and_hangs_are_one_line(cli, files, cmd, func) -> None:
    script = f"{files / 'loaders.py'}:{func}"
    res = cli(cmd, files / "hostile.onnx", "--data-loader-script", script, "--loader-timeout", "1", "--json")
    assert LOADER_CASES[func] in res.err
    assert res.out == ""


@pytest.mark.parametrize("cmd", ["bisect", "reduce", "surgeon-sanitize"])
def test_loader_sys_exit_in_other_commands(cli, files, tmp_path, cmd) -> None:
    args = {
        "bisect": ["bisect", files / "hostile.onnx", "--workspace", tmp_path / "ws"],
        "reduce": ["reduce", files / "hostile.onnx", "-o", tmp_path / "r.onnx", "--subject", "ort:fp16"],
        "surgeon-sanitize": ["surgeon", "sanitize", files / "hostile.onnx", "-o", tmp_path / "s.onnx"],
    }[cmd]
    res = cli(*args, "--data-loader-script", f"{files / 'loaders.py'}:exit0")
    assert "SystemExit" in res.err


def test_loader_prints_go_to_stderr_json_stays_valid(cli, files) -> None:
    res = cli(
        "compare",
        files / "hostile.onnx",
        "--data-loader-script",
        f"{files / 'loaders.py'}:prints",
        "--json",
        rc=0,
        json_out=True,
    )
    json.loads(res.out)
    assert "loader chatter \\x1b]0;TITLE\\x07 on stdout" in res.err


def test_loader_that_never_stops_is_bounded(cli, files, monkeypatch) -> None:
    import engine_core.data.script as script

    monkeypatch.setattr(script, "MAX_SAMPLES", 50)
    res = cli("compare", files / "hostile.onnx", "--data-loader-script", f"{files / 'loaders.py'}:forever")
    assert "more than 50 samples" in res.err


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_loader_timeout_nonsense_is_refused(cli, files, value) -> None:
    res = cli(
        "compare",
        files / "hostile.onnx",
        "--data-loader-script",
        f"{files / 'loaders.py'}:ok",
        f"--loader-timeout={value}",
    )
    assert "--loader-timeout must be a number of seconds > 0" in res.err


def test_loader_timeout_default_without_option(files, monkeypatch) -> None:
    """The time limit holds without the option too (engine default, here shortened)."""
    import engine_core.data.script as script
    from engine_core.errors import TrtdbgError

    loader = script.ScriptDataLoader(f"{files / 'loaders.py'}:sleeps", timeout=0.5)
    start = time.monotonic()
    with pytest.raises(TrtdbgError, match="took longer than 0.5s to return"):
        list(loader)
    assert time.monotonic() - start < 10


# ---------------------------------------------------------------------- broken data files: input errors, not internal ones
@pytest.mark.parametrize(
    "name, needle",
    [
        ("absurd.npz", "declares float32[4294967296, 4294967296]"),
        ("absurd.json", "declares float32[8589934592]"),
        ("overflow.json", "declares float32[9223372036854775807, 9223372036854775807]"),
        ("pickled.json", "pickled Python object array"),
        ("pickled.npz", "pickled Python object array"),
        ("truncated.json", "only 3 bytes of data follow"),
        ("garbage.json", "garbage.json"),
        ("notjson.json", "notjson.json"),
    ],
)
@pytest.mark.parametrize("cmd", ["compare", "inspect-data"])
def test_corrupt_data_files_are_input_errors(cli, files, name, needle, cmd) -> None:
    if cmd == "compare":
        res = cli("compare", files / "hostile.onnx", "--load-inputs", files / name)
    else:
        res = cli("inspect", "data", files / name)
    assert needle in res.err and "internal error" not in res.err


@pytest.mark.parametrize("key, value", [("offset", "'abc'"), ("length", "'-1'")])
@pytest.mark.parametrize("cmd", ["compare", "bench", "check-lint"])
def test_external_data_nonsense_offsets(cli, files, key, value, cmd) -> None:
    model = files / f"ext_{key}.onnx"
    res = cli(*(["check", "lint"] if cmd == "check-lint" else [cmd]), model)
    assert f"{key}={value} is not a byte count" in res.err


@pytest.mark.parametrize("cmd", ["compare", "bench", "bisect"])
def test_declared_dims_beyond_memory_are_input_errors(cli, files, tmp_path, cmd) -> None:
    extra = ["--workspace", tmp_path / "ws"] if cmd == "bisect" else []
    res = cli(cmd, files / "huge_dims.onnx", *extra)
    assert "8589934592" in res.err and "internal error" not in res.err


def test_absurd_shapes_option_is_input_error(cli, files) -> None:
    res = cli("compare", files / "hostile.onnx", "--shapes", f"{INPUT}:100000x100000x100000")
    assert "more than the" in res.err or "shape" in res.err


# ---------------------------------------------------------------------- NaN/Inf inputs: every command warns
@pytest.mark.parametrize("cmd", ["compare", "bisect", "reduce", "surgeon-sanitize"])
def test_nan_inf_inputs_warn_everywhere(cli, files, tmp_path, cmd) -> None:
    args = {
        "compare": ["compare", files / "hostile.onnx"],
        "bisect": ["bisect", files / "hostile.onnx", "--workspace", tmp_path / "ws", "--quiet"],
        "reduce": ["reduce", files / "hostile.onnx", "-o", tmp_path / "r.onnx", "--subject", "ort:fp16", "--quiet"],
        "surgeon-sanitize": ["surgeon", "sanitize", files / "hostile.onnx", "-o", tmp_path / "s.onnx"],
    }[cmd]
    res = cli(*args, "--data-loader-script", f"{files / 'loaders.py'}:nan_inputs", rc=None)
    assert "NaN" in res.err and "Traceback" not in res.err


# ---------------------------------------------------------------------- processes: pipes, locks, kill -9
def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_broken_pipe_exits_quietly(files) -> None:
    from engine_core.model.synthetic import chain_model

    big = files.parent / "big_chain.onnx"
    onnx.save(chain_model(3000), big)
    proc = subprocess.run(
        f"{sys.executable} -m tui.cli.main inspect {big} --show layers | head -n 1",
        shell=True,
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=BOUND_S,
        executable="/bin/bash",
    )
    assert proc.stdout.startswith("==== ONNX Model ====")
    assert proc.stderr == "", proc.stderr


def test_argparse_error_subprocess_is_one_line(files) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tui.cli.main", "compare", str(files / "hostile.onnx"), "--seed", "x"],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=BOUND_S,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "see trtdbg compare --help" in proc.stderr


def test_ort_log_lines_never_reach_stderr(files, tmp_path) -> None:
    bad = tmp_path / "badattr.onnx"
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="c", kernel_shape=[3, 3], pads=[9, 9, 9, 9, 9])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "w")],
    )
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), bad)
    for cmd in (["compare"], ["bench"], ["check", "lint"]):
        proc = subprocess.run(
            [sys.executable, "-m", "tui.cli.main", *cmd, str(bad)],
            capture_output=True,
            text=True,
            env=_env(),
            cwd=tmp_path,
            timeout=BOUND_S,
        )
        assert proc.returncode in (1, 2), proc.stderr
        assert "onnxruntime:" not in proc.stderr, proc.stderr
        if proc.returncode == 2:
            assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def _hold_lock(ws: Path) -> subprocess.Popen:
    code = (
        "import sys, time\n"
        "from engine_core.workspace import Workspace, lock_job\n"
        f"lock_job(Workspace({str(ws)!r}), 'bisect')\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_bisect_on_one_workspace_is_refused_then_recovers_after_kill9(cli, files, tmp_path) -> None:
    ws = tmp_path / "ws"
    holder = _hold_lock(ws)
    try:
        res = cli("bisect", files / "hostile.onnx", "--workspace", ws)
        assert f"pid {holder.pid}" in res.err and "another trtdbg bisect" in res.err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    res = cli("bisect", files / "hostile.onnx", "--workspace", ws, "--quiet", rc=None)
    assert res.rc in (0, 1) and (ws / "bisect" / "state.json").exists()


def test_stale_temp_file_of_a_killed_writer_is_removed(tmp_path) -> None:
    from engine_core.workspace import atomic_write_json

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".state.json.{dead.pid}.abc123.tmp"
    stale.write_text("{half")
    alive = tmp_path / f".state.json.{os.getppid()}.def456.tmp"  # a live writer's file is left alone
    alive.write_text("{in progress")
    atomic_write_json(tmp_path / "state.json", {"ok": True})
    assert not stale.exists() and alive.exists()
    assert json.loads((tmp_path / "state.json").read_text()) == {"ok": True}


def test_kill9_during_writes_leaves_no_debris_after_next_run(files, tmp_path) -> None:
    """A writer killed mid-write leaves a hidden temp file; the next trtdbg write of that file removes it."""
    code = (
        "import os, engine_core.workspace as w\n"
        "orig = os.replace\n"
        "def hang(a, b):\n"
        "    print('writing', flush=True); import time; time.sleep(60)\n"
        "os.replace = hang\n"
        f"w.atomic_write_json({str(tmp_path / 'marks.json')!r}, {{'a': 1}})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(tmp_path.glob(".marks.json.*.tmp"))
    from engine_core.workspace import atomic_write_json

    atomic_write_json(tmp_path / "marks.json", {"a": 2})
    assert not list(tmp_path.glob("*.tmp"))


def test_sanitize_write_error_says_nothing_verified(cli, files, tmp_path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        res = cli("surgeon", "sanitize", files / "hostile.onnx", "-o", ro / "sub" / "s.onnx", rc=None)
    finally:
        ro.chmod(0o700)
    if os.geteuid() == 0 and res.rc == 0:
        pytest.skip("root writes into read-only folders")
    assert res.rc == 2 and "verified" not in res.err and len(res.err_lines) == 1


# ---------------------------------------------------------------------- nonsense options, hanging checks (issue 12 items 4, 5)
@pytest.mark.parametrize(
    "option",
    [
        ["--atol", "-1"],
        ["--atol", "nan"],
        ["--rtol", "y:-inf"],
        ["--rtol", "1e-3,"],
        ["--mem-budget", "0"],
        ["--iterations", "0"],
        ["--seed", "-1"],
        ["--val-range", "[3,1]"],
    ],
    ids=lambda o: " ".join(o),
)
def test_nonsense_options_stop_before_work(cli, files, option) -> None:
    res = cli("compare", files / "hostile.onnx", "--mark", "all", *option)
    assert "PASSED" not in res.out


def test_bisect_check_that_hangs_is_one_line(cli, files, tmp_path) -> None:
    res = cli(
        "bisect", files / "hostile.onnx", "--workspace", tmp_path / "ws", "--check", "sleep 30", "--check-timeout", "1"
    )
    assert "timed out after 1 s" in res.err and "fails even with every node" in res.err


def test_reduce_check_that_hangs_is_killed_and_lines_stay_single(cli, files, tmp_path) -> None:
    res = cli(
        "reduce",
        files / "hostile.onnx",
        "-o",
        tmp_path / "r.onnx",
        "--check-timeout",
        "1",
        "--check",
        "sleep",
        "30",
        rc=None,
    )
    # a hang counts as "still fails" (killed after 1 s each time), so the cut goes on and ends
    assert res.rc == 0 and "command `sleep 30` fails" in res.out
    assert all(line.startswith("[") for line in res.err_lines), res.err  # progress lines stay one line each
