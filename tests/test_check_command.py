"""One check command for bisect, reduce and debug build: placeholders and TRTDBG_* variables, a timeout on every run
(reduce's --check had none and hung), --fail-regex, and a timed-out check reported in one line."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import onnx
import pytest

from engine_core.check import CheckCommand
from engine_core.errors import TrtdbgError
from engine_core.model.synthetic import chain_model
from tests.precision_models import planted_chain
from tui.cli.main import main

PY = sys.executable


def test_placeholders_are_replaced_and_exported(tmp_path: Path) -> None:
    out = tmp_path / "seen.txt"
    shell = CheckCommand(
        f'{PY} -c \'import os,sys; open(sys.argv[2], "w").write(sys.argv[1] + os.environ["TRTDBG_MODEL"])\' {{model}} {out}'
    )
    result = shell.run({"model": str(tmp_path / "a b.onnx")}, tmp_path / "log")
    assert result.passed and out.read_text() == 2 * str(tmp_path / "a b.onnx")  # quoted: one word with a space
    argv = CheckCommand((PY, "-c", "import sys; sys.exit(sys.argv[1] != 'x.onnx')", "{model}"))
    assert argv.run({"model": "x.onnx"}, tmp_path / "log").passed
    assert not argv.run({"model": "y.onnx"}, tmp_path / "log").passed


def test_timeout_kills_and_fails_in_bounded_time(tmp_path: Path) -> None:
    check = CheckCommand(f"{PY} -c 'import time; time.sleep(60)'", timeout=0.3)
    t0 = time.monotonic()
    result = check.run({}, tmp_path / "log")
    assert not result.passed and result.detail == "timed out after 0.3 s" and time.monotonic() - t0 < 10


def test_fail_regex_fails_a_zero_exit(tmp_path: Path) -> None:
    check = CheckCommand(f"{PY} -c 'print(\"CUDA error: illegal address\")'", fail_regex=("illegal addr", "other"))
    result = check.run({}, tmp_path / "log")
    assert not result.passed and result.detail == "output matched --fail-regex 'illegal addr'"
    assert CheckCommand(f"{PY} -c 'print(1)'", fail_regex=("illegal",)).run({}, tmp_path / "log").passed


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [({"timeout": 0}, "--check-timeout must be more than 0"), ({"fail_regex": ("(",)}, "--fail-regex: '(' is not")],
)
def test_bad_check_options_are_refused(kwargs: dict, says: str) -> None:
    with pytest.raises(TrtdbgError) as err:
        CheckCommand("true", **kwargs)
    assert says in str(err.value)


def test_reduce_check_has_a_timeout(tmp_path: Path, capsys) -> None:
    """A hanging check counts as 'still fails' after --check-timeout, so reduce finishes instead of hanging."""
    path = tmp_path / "m.onnx"
    onnx.save(chain_model(3), path)
    t0 = time.monotonic()
    rc = main(
        ["reduce", str(path), "-o", str(tmp_path / "r.onnx"), "--workspace", str(tmp_path / "ws"), "--quiet"]
        + ["--check-timeout", "0.3", "--check", PY, "-c", "import time; time.sleep(60)"]
    )
    _, err = capsys.readouterr()
    assert rc == 0, err
    assert time.monotonic() - t0 < 60 and (tmp_path / "r.onnx").exists()


def test_reduce_fail_regex(tmp_path: Path, capsys) -> None:
    """The check exits 0 but prints the failure: --fail-regex makes it count as failing."""
    path = tmp_path / "m.onnx"
    onnx.save(chain_model(3), path)
    rc = main(
        ["reduce", str(path), "-o", str(tmp_path / "r.onnx"), "--workspace", str(tmp_path / "ws"), "--quiet"]
        + ["--fail-regex", "BROKEN", "--check", PY, "-c", "print('BROKEN')"]
    )
    assert rc == 0, capsys.readouterr().err


def test_bisect_timed_out_baseline_is_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "chain.onnx"
    onnx.save(planted_chain(6, 2), path)
    rc = main(["bisect", str(path), "--check", f"{PY} -c 'import time; time.sleep(60)'", "--check-timeout", "0.3"])
    out, err = capsys.readouterr()
    assert rc == 2 and err.count("\n") == 1, err
    assert "timed out after 0.3 s" in err and "raise --check-timeout" in err


def test_bisect_fail_regex_and_placeholders(tmp_path: Path, capsys) -> None:
    """A check that prints 'FAIL' for the culprit's configuration: exit 0 always, --fail-regex decides."""
    path = tmp_path / "chain.onnx"
    onnx.save(planted_chain(12, 5), path)
    script = tmp_path / "check.py"
    script.write_text(
        "import sys, numpy as np\n"
        "from engine_core.data.store import load_outputs\n"
        "out = load_outputs(sys.argv[1]).iterations[0]\n"
        "ref = load_outputs(sys.argv[2]).iterations[0]\n"
        "bad = any(not np.allclose(out[k], ref[k], atol=2e-2, rtol=2e-2) for k in ref)\n"
        "print('FAIL' if bad else 'ok')\n"
    )
    cmd = f"{PY} {script} {{outputs}} {{reference_outputs}}"
    rc = main(["bisect", str(path), "--check", cmd, "--fail-regex", "^FAIL$", "--quiet", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert '"/culprit/Add"' in out


def test_an_option_swallowed_by_check_is_named(tmp_path: Path, cli) -> None:
    """``--check`` takes the rest of the line: a required ``-o`` after it is named as swallowed, not just 'required'."""
    path = tmp_path / "m.onnx"
    onnx.save(chain_model(3), path)
    rc, out, err = cli("reduce", path, "--check", PY, "-c", "pass", "-o", tmp_path / "r.onnx")
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "-o came after --check" in err and "give it before --check" in err
    assert not (tmp_path / "r.onnx").exists()
