"""Data loader scripts: the shared real loader, sibling imports, and every failure mode."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from engine_core.data.script import ScriptDataLoader, parse_script_spec
from engine_core.errors import TrtdbgError
from tests.conftest import SHARED_MODELS

SHARED_INPUTS = SHARED_MODELS / "inputs.py"


def test_parse_spec() -> None:
    assert parse_script_spec("dir/inputs.py:load_x") == ("dir/inputs.py", "load_x")
    assert parse_script_spec("inputs.py") == ("inputs.py", "load_data")
    assert parse_script_spec("C:\\data\\inputs.py") == ("C:\\data\\inputs.py", "load_data")


@pytest.mark.skipif(not SHARED_INPUTS.is_file(), reason=f"{SHARED_INPUTS} is absent")
def test_shared_loader_works_unchanged() -> None:
    loader = ScriptDataLoader(f"{SHARED_INPUTS}:load_ppocrv4_det")
    feeds = list(loader)
    assert len(feeds) == 4
    assert all(list(f) == ["x"] and f["x"].shape == (1, 3, 640, 640) and f["x"].dtype == np.float32 for f in feeds)
    assert not np.array_equal(feeds[0]["x"], feeds[1]["x"])
    assert str(SHARED_INPUTS.parent) not in sys.path
    assert loader.describe() == f"script {SHARED_INPUTS}:load_ppocrv4_det"


def _script(tmp_path: Path, body: str, name: str = "loader.py") -> str:
    path = tmp_path / name
    path.write_text(body)
    return str(path)


def test_default_func_sibling_import_and_reiteration(tmp_path: Path) -> None:
    _script(tmp_path, "import numpy as np\nSCALE = 2.0\n", name="helper_mod_for_trtdbg_test.py")
    spec = _script(
        tmp_path,
        "import numpy as np\n"
        "def load_data():\n"
        "    import helper_mod_for_trtdbg_test as h\n"  # imported lazily, while iterating
        "    for i in range(3):\n"
        "        yield {'x': np.full((2,), i * h.SCALE, dtype=np.float32)}\n",
    )
    loader = ScriptDataLoader(spec)
    assert [f["x"][0] for f in loader] == [0.0, 2.0, 4.0]
    assert [f["x"][0] for f in loader] == [0.0, 2.0, 4.0]
    assert str(tmp_path) not in sys.path


def test_two_scripts_with_the_same_name_do_not_clash(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = _script(tmp_path / "a", "import numpy as np\ndef load_data():\n    return [{'x': np.ones(1)}]\n")
    two = _script(tmp_path / "b", "import numpy as np\ndef load_data():\n    return [{'x': np.zeros(1)}]\n")
    assert next(iter(ScriptDataLoader(one)))["x"][0] == 1.0
    assert next(iter(ScriptDataLoader(two)))["x"][0] == 0.0


BAD_SCRIPTS = {
    "syntax": ("def load_data(:\n    pass\n", "load_data", r"SyntaxError in loader.py line 1"),
    "import_raises": (
        "import numpy\nx = 1\nraise ValueError('no data dir')\n",
        "load_data",
        r"failed on import: ValueError: no data dir \(loader.py line 3\)",
    ),
    "func_missing": (
        "def make():\n    pass\ndef other():\n    pass\n",
        "load_data",
        r"no function 'load_data'; functions found: make, other",
    ),
    "not_callable": ("load_data = 3\n", "load_data", r"'load_data' has type int, not a function"),
    "call_raises": (
        "def load_data():\n    raise KeyError('k')\n",
        "load_data",
        r"raised KeyError: 'k' \(loader.py line 2\)",
    ),
    "iteration_raises": (
        "import numpy as np\ndef load_data():\n    yield {'x': np.ones(1)}\n    yield {'x': np.ones(1)}\n    raise RuntimeError('disk gone')\n",
        "load_data",
        r"raised RuntimeError: disk gone \(loader.py line 5\) at iteration 2",
    ),
    "non_dict": (
        "def load_data():\n    yield [1, 2]\n",
        "load_data",
        r"iteration 0: yielded type list, expected a dict",
    ),
    "non_array": (
        "def load_data():\n    yield {'x': [1.0, 2.0]}\n",
        "load_data",
        r"iteration 0: value of 'x' has type list, expected numpy.ndarray",
    ),
    "non_str_key": (
        "import numpy as np\ndef load_data():\n    yield {0: np.ones(1)}\n",
        "load_data",
        r"key 0 has type int",
    ),
    "empty": ("def load_data():\n    return []\n", "load_data", r"yielded no feed dicts"),
    "single_dict": (
        "import numpy as np\ndef load_data():\n    return {'x': np.ones(1)}\n",
        "load_data",
        r"returned a single dict",
    ),
    "not_iterable": ("def load_data():\n    return 5\n", "load_data", r"returned int, not an iterable"),
}


@pytest.mark.parametrize("case", sorted(BAD_SCRIPTS))
def test_bad_scripts_give_one_line_errors(tmp_path: Path, case: str) -> None:
    body, func, pattern = BAD_SCRIPTS[case]
    spec = _script(tmp_path, body) + ":" + func
    with pytest.raises(TrtdbgError, match=pattern) as info:
        list(ScriptDataLoader(spec))
    message = str(info.value)
    assert "\n" not in message and "loader.py" in message


def test_missing_script(tmp_path: Path) -> None:
    with pytest.raises(TrtdbgError, match=r"nope.py not found; check the path \(syntax: script.py\[:function\]\)"):
        ScriptDataLoader(str(tmp_path / "nope.py") + ":load_data")
