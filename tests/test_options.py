"""Shared option groups: typed DataOptions/ToleranceOptions validate on construction; every command declares and
reads them through the same CLI group, so nonsense values are one-line usage errors (exit 2) everywhere and the data
warnings reach every command; bisect's saved options stay readable both ways; --resume refuses changed data."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from engine_core.data.store import save_inputs
from engine_core.errors import TrtdbgError
from engine_core.model.synthetic import chain_model, small_cnn_model
from engine_core.options import DataOptions, ToleranceOptions
from tui.cli.main import main


def _run(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_usage_error(rc: int, out: str, err: str) -> None:
    assert rc == 2 and out == "" and err.count("\n") == 1 and err.startswith("trtdbg: error: "), (rc, out, err)


# ---------------------------------------------------------------------- typed options
@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"atol": ("-1",)}, "--atol: cannot read '-1' (must be a number >= 0)"),
        ({"atol": ("nan",)}, "--atol: cannot read 'nan'"),
        ({"rtol": ("y:-inf",)}, "--rtol: cannot read 'y:-inf'"),
        ({"rtol": ("1e-3,",)}, "--rtol: cannot read '1e-3,': an empty value"),
        ({"check_error_stat": ("worst",)}, "--check-error-stat: cannot read 'worst'"),
        ({"error_quantile": ("1.5",)}, "must be between 0 and 1"),
        ({"rel_mode": "loose"}, "--rel-mode: 'loose'"),
    ],
)
def test_tolerance_options_refuse_nonsense(kwargs: dict, says: str) -> None:
    with pytest.raises(TrtdbgError) as err:
        ToleranceOptions(**kwargs)
    assert says in str(err.value)


def test_tolerance_options_parse_per_tensor_and_inf() -> None:
    tol = ToleranceOptions(atol=("1e-3", "a:b:inf"), rtol=["0"])
    settings = tol.settings()
    assert settings.atol.get("x") == 1e-3 and settings.atol.get("a:b") == float("inf") and settings.rtol.get("x") == 0
    assert tol.rtol == ("0",)  # lists become tuples: frozen, hashable, comparable
    assert ToleranceOptions().settings("2e-2").atol.default == 2e-2


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"iterations": 0}, "--iterations (input samples) must be 1 or more"),
        ({"seed": -1}, "--seed must be a whole number >= 0"),
        ({"shapes": ("x:1xAx3",)}, "x:1xAx3"),
        ({"val_range": ("[2,1]",)}, "lo > hi"),
        ({"data_loader_script": "a.py", "load_inputs": ("b.json",)}, "cannot be used together"),
    ],
)
def test_data_options_refuse_nonsense(kwargs: dict, says: str) -> None:
    with pytest.raises(TrtdbgError) as err:
        DataOptions(**kwargs)
    assert says in str(err.value)


def test_data_options_differences_name_the_option() -> None:
    old = DataOptions(load_inputs=("/a/x.json",))
    new = DataOptions(load_inputs=("/a/y.json",), seed=3)
    assert new.differences(old) == ["--seed 3 (was 1)", "--load-inputs /a/y.json (was /a/x.json)"]
    assert not DataOptions().given and new.given


# ---------------------------------------------------------------------- the CLI groups, command by command
BAD_TOLERANCES = [["--atol", "-1"], ["--atol", "nan"], ["--rtol", "y:-inf"], ["--rtol", "1e-3,"]]


@pytest.mark.parametrize("bad", BAD_TOLERANCES, ids=lambda b: " ".join(b))
@pytest.mark.parametrize("command", ["compare", "bisect", "reduce", "open"])
def test_bad_tolerances_are_usage_errors_in_every_command(save_model, tmp_path, capsys, command, bad) -> None:
    path = str(save_model(chain_model(4)))
    extra = {"reduce": ["-o", str(tmp_path / "r.onnx"), "--subject", "ort"]}.get(command, [])
    _one_line_usage_error(*_run(capsys, command, path, *extra, *bad))
    assert not (tmp_path / ".trtdbg").exists()  # refused before any work


BAD_DATA = [["--iterations", "0"], ["--seed", "-2"], ["--shapes", "input:1xQ"], ["--val-range", "[3,1]"]]


@pytest.mark.parametrize("bad", BAD_DATA, ids=lambda b: " ".join(b))
@pytest.mark.parametrize(
    "command", ["compare", "bisect", "reduce", "bench", "open", "surgeon sanitize", "convert", "debug build"]
)
def test_bad_data_options_are_usage_errors_in_every_command(save_model, tmp_path, capsys, command, bad) -> None:
    if command == "bench" and bad[0] == "--iterations":
        pytest.skip("bench has no input-samples option (--iterations is its old name of --runs)")
    path = str(save_model(chain_model(4)))
    words = command.split()
    extra = {
        "reduce": ["-o", str(tmp_path / "r.onnx"), "--subject", "ort"],
        "surgeon sanitize": ["-o", str(tmp_path / "s.onnx")],
        "convert": ["-o", str(tmp_path / "c.onnx")],
        "debug build": ["--until", "2"],
    }.get(command, [])
    _one_line_usage_error(*_run(capsys, *words, path, *extra, *bad))


def test_mem_budget_zero_is_a_usage_error(save_model, capsys) -> None:
    _one_line_usage_error(*_run(capsys, "compare", str(save_model(chain_model(4))), "--mem-budget", "0"))


def test_input_shapes_is_an_alias_of_shapes(tmp_path, capsys) -> None:
    model = chain_model(3, shape=(1, 8))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    path = tmp_path / "dyn.onnx"
    onnx.save(model, path)
    rc, out, err = _run(capsys, "compare", str(path), "--input-shapes", "input:3x8", "--json", "--quiet")
    assert rc == 0, err
    assert "input:3x8" in json.loads(out)["data"]


def test_open_takes_every_data_and_tolerance_option(tmp_path) -> None:
    from tui.cli.commands.open import form_from_args
    from tui.cli.main import build_parser

    args = build_parser().parse_args(
        ["open", "m.onnx", "--load-inputs", "a.json", "b.npz", "--atol", "1e-3", "--rel-mode", "robust"]
        + ["--check-error-stat", "max", "y:mean", "--shapes", "x:1x3"]
    )
    form = form_from_args(args)
    assert form.data == "inputs" and form.data_path.split() == ["a.json", "b.npz"]
    tol = form.tolerance_options()
    assert tol.atol == ("1e-3",) and tol.rel_mode == "robust" and tol.check_error_stat == ("max", "y:mean")
    assert form.data_options() == DataOptions(shapes=("x:1x3",), load_inputs=("a.json", "b.npz"))


# ---------------------------------------------------------------------- data warnings reach every command
def _nan_inputs(tmp_path: Path) -> Path:
    x = np.zeros((1, 64), np.float32)
    x[0, 3] = np.nan
    path = tmp_path / "nan_inputs.json"
    save_inputs(path, [{"input": x}])
    return path


def test_sanitize_and_reduce_warn_about_nan_inputs(save_model, tmp_path, capsys) -> None:
    path = str(save_model(chain_model(4)))
    inputs = str(_nan_inputs(tmp_path))
    rc, _, err = _run(capsys, "surgeon", "sanitize", path, "-o", str(tmp_path / "s.onnx"), "--load-inputs", inputs)
    assert rc == 0 and "NaN" in err and "warning" in err, err
    rc, _, err = _run(
        capsys, "reduce", path, "-o", str(tmp_path / "r.onnx"), "--subject", "ort", "--load-inputs", inputs, "--quiet"
    )
    assert rc in (0, 1) and "NaN" in err and "warning" in err, err


# ---------------------------------------------------------------------- commands with nothing to do
def test_reduce_model_without_outputs_is_a_usage_error(tmp_path, capsys) -> None:
    model = chain_model(3)
    del model.graph.output[:]
    path = tmp_path / "no_outputs.onnx"
    onnx.save(model, path)
    _one_line_usage_error(*_run(capsys, "reduce", str(path), "-o", str(tmp_path / "r.onnx"), "--subject", "ort"))
    assert not (tmp_path / "r.onnx").exists()


def test_bisect_without_candidates_is_a_usage_error(tmp_path, capsys) -> None:
    """An integer-only graph: nothing can run in FP16."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "a"], ["b"], "int_add")],
        "ints",
        [helper.make_tensor_value_info("a", TensorProto.INT64, [4])],
        [helper.make_tensor_value_info("b", TensorProto.INT64, [4])],
    )
    path = tmp_path / "ints.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    rc, out, err = _run(capsys, "bisect", str(path), "--quiet")
    _one_line_usage_error(rc, out, err)
    assert "no node that can run in fp16" in err


# ---------------------------------------------------------------------- bisect's saved state, both ways
@dataclasses.dataclass
class _BisectOptionsBeforeOptionGroups:
    """BisectOptions as trtdbg saved and read it before the option groups (a run of that version resumes with
    ``BisectOptions(**state['options'])``)."""

    model: str
    precision: str = "fp16"
    fallback: str = "fp32"
    subject: str = "ort"
    mode: str = "bisect"
    direction: str = "forward"
    check: str | None = None
    check_timeout: float = 600.0
    atol: list = dataclasses.field(default_factory=list)
    rtol: list = dataclasses.field(default_factory=list)
    check_error_stat: list = dataclasses.field(default_factory=list)
    shapes: list = dataclasses.field(default_factory=list)
    seed: int = 1
    val_range: list = dataclasses.field(default_factory=list)
    iterations: int = 1
    data_loader_script: str | None = None
    load_inputs: list = dataclasses.field(default_factory=list)
    calibration_cache: str | None = None
    write_calibration_cache: str | None = None
    workspace: str | None = None


def _demo_bisect_state(tmp_path: Path, capsys, *extra: str) -> tuple[Path, Path, dict]:
    from engine_core.model.demo import write_demo

    files = write_demo(tmp_path / "demo")
    ws = tmp_path / "ws"
    rc, _, err = _run(
        capsys,
        "bisect",
        str(files.model),
        "--load-inputs",
        str(files.inputs),
        "--workspace",
        str(ws),
        "--quiet",
        *extra,
    )
    assert rc == 0, err
    state = json.loads((ws / "bisect" / "state.json").read_text())
    return files, ws, state


def test_bisect_state_is_readable_by_older_and_newer_runs(tmp_path, capsys) -> None:
    from engine_core.precision.bisect import BisectOptions

    files, ws, state = _demo_bisect_state(tmp_path, capsys, "--atol", "3e-2", "--rel-mode", "robust")
    old = _BisectOptionsBeforeOptionGroups(**state["options"])  # what an older trtdbg does on --resume
    assert old.load_inputs == [str(Path(files.inputs).resolve())] and old.atol == ["3e-2"]
    new = BisectOptions.from_state(state, None)
    assert new.tolerances.rel_mode == "robust" and new.data.load_inputs == (str(Path(files.inputs).resolve()),)
    # a state written by an older trtdbg has only the flat options
    legacy = {k: v for k, v in state.items() if k != "options_v2"}
    from_old = BisectOptions.from_state(legacy, None)
    assert from_old.data == new.data and from_old.tolerances.atol == ("3e-2",)
    (ws / "bisect" / "state.json").write_text(json.dumps(legacy))
    rc, out, err = _run(capsys, "bisect", str(files.model), "--resume", "--workspace", str(ws), "--json")
    assert rc == 0, err
    assert json.loads(out)["settings"]["atol"] == 3e-2


def test_bisect_resume_refuses_other_data(tmp_path, capsys) -> None:
    files, ws, state = _demo_bisect_state(tmp_path, capsys)
    other = tmp_path / "other.json"
    other.write_bytes(Path(files.inputs).read_bytes())
    rc, out, err = _run(
        capsys, "bisect", str(files.model), "--resume", "--workspace", str(ws), "--load-inputs", str(other)
    )
    _one_line_usage_error(rc, out, err)
    assert "--load-inputs" in err and "other.json" in err and "without --resume" in err
    # the same data again is fine; a search option that differs is ignored, with a warning
    rc, _, err = _run(
        capsys,
        "bisect",
        str(files.model),
        "--resume",
        "--workspace",
        str(ws),
        "--load-inputs",
        str(files.inputs),
        "--mode",
        "linear",
    )
    assert rc == 0, err
    assert "ignoring --mode linear" in err


def test_bisect_options_a_resume_ignores() -> None:
    from engine_core.precision.bisect import BisectOptions

    saved = BisectOptions(model="m.onnx", precision="bf16", check="./judge.sh", direction="reverse")
    same = BisectOptions(model="m.onnx", precision="bf16", check="./judge.sh", direction="reverse")
    assert same.ignored_by_resume(saved) == {}
    changed = dataclasses.replace(same, precision="int8", mode="linear", check_timeout=5.0)
    assert changed.ignored_by_resume(saved) == {"precision": "int8", "mode": "linear"}
    # a command line's defaults were not asked for; set-up fields are, whatever their value
    defaults = BisectOptions(model="m.onnx")
    assert defaults.ignored_by_resume(saved) == {}
    assert defaults.ignored_by_resume(saved, asked=("precision", "check", "subject")) == {
        "precision": "fp16",
        "check": None,
    }


def test_small_cnn_compare_reads_typed_options(save_model, capsys) -> None:
    """compare turns its arguments into the typed options (what the JSON reports back)."""
    path = str(save_model(small_cnn_model()))
    rc, out, err = _run(
        capsys, "compare", path, "--subject", "ort", "--atol", "1e-3", "x:2e-3", "--seed", "5", "--json"
    )
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["settings"]["atol"] == 1e-3 and doc["settings"]["overrides"]["atol"] == {"x": 2e-3}
    assert doc["data"].startswith("random, seed 5")
