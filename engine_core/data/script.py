"""User data loader scripts: ``script.py[:func]`` (Polygraphy ``--data-loader-script``).

``func`` (default ``load_data``) takes no arguments and returns an iterable of feed dicts
``{input name: numpy array}``; a generator works. The script is imported from its path under a
unique module name, with its folder first on ``sys.path`` while it is imported and while ``func``
runs, so it can import modules beside it. Any failure becomes a one-line :class:`TrtdbgError`
naming the script, the exception, the script line and, while iterating, the iteration index.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import itertools
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from engine_core.errors import TrtdbgError

DEFAULT_FUNC = "load_data"
_module_ids = itertools.count()


def parse_script_spec(spec: str, default: str = DEFAULT_FUNC) -> tuple[str, str]:
    """``"dir/inputs.py:load_x"`` → ``("dir/inputs.py", "load_x")``; no ``:func`` → ``default`` (``load_data``)."""
    head, sep, tail = spec.rpartition(":")
    if sep and head and tail.isidentifier():
        return head, tail
    return spec, default


@contextmanager
def _folder_on_sys_path(folder: Path) -> Iterator[None]:
    entry = str(folder)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        try:
            sys.path.remove(entry)
        except ValueError:
            pass


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe_exception(exc: BaseException, script: Path) -> str:
    """``ValueError: bad value (inputs.py line 12)``: the deepest frame in the script, else the deepest frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    in_script = [f for f in frames if f.filename and Path(f.filename).resolve() == script]
    frame = in_script[-1] if in_script else (frames[-1] if frames else None)
    where = f" ({Path(frame.filename).name} line {frame.lineno})" if frame is not None else ""
    return f"{type(exc).__name__}: {_one_line(str(exc))}{where}"


class ScriptDataLoader:
    """Iterable of feed dicts from ``path.py[:func]``; the script is imported at construction.

    ``what``/``default_func`` reuse the same guard for other user functions (``compare-func script``,
    ``compare_outputs``), called through :meth:`call`.
    """

    def __init__(self, spec: str, *, what: str = "data loader script", default_func: str = DEFAULT_FUNC) -> None:
        self.what = what
        path_text, self.func_name = parse_script_spec(spec, default_func)
        self.path_text = path_text
        self.path = Path(path_text).expanduser().resolve()
        self.module = self._import()
        self.func = self._find_func()

    def describe(self) -> str:
        """``script inputs.py:load_data``."""
        return f"script {self.path_text}:{self.func_name}"

    def _import(self) -> ModuleType:
        if not self.path.is_file():
            raise TrtdbgError(f"{self.what} {self.path_text} not found; check the path (syntax: script.py[:function])")
        stem = re.sub(r"\W", "_", self.path.stem)
        name = f"_trtdbg_data_script_{next(_module_ids)}_{stem}"
        loader = importlib.machinery.SourceFileLoader(name, str(self.path))
        spec = importlib.util.spec_from_loader(name, loader)
        assert spec is not None  # a SourceFileLoader always yields a spec
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            with _folder_on_sys_path(self.path.parent):
                loader.exec_module(module)
        except SyntaxError as exc:
            del sys.modules[name]
            file = Path(exc.filename).name if exc.filename else self.path.name
            raise TrtdbgError(
                f"{self.what} {self.path_text}: SyntaxError in {file} line {exc.lineno}: {exc.msg}; fix the script"
            ) from exc
        except Exception as exc:
            del sys.modules[name]
            raise TrtdbgError(
                f"{self.what} {self.path_text} failed on import: {_describe_exception(exc, self.path)}; fix the script"
            ) from exc
        return module

    def _find_func(self) -> Callable[[], Any]:
        func = getattr(self.module, self.func_name, None)
        if func is None:
            found = [
                n
                for n, v in vars(self.module).items()
                if callable(v) and not n.startswith("_") and getattr(v, "__module__", None) == self.module.__name__
            ]
            raise TrtdbgError(
                f"{self.what} {self.path_text} has no function '{self.func_name}'; functions found: "
                f"{', '.join(found) or 'none'}; pass {self.path_text}:NAME"
            )
        if not callable(func):
            raise TrtdbgError(
                f"{self.what} {self.path_text}: '{self.func_name}' has type {type(func).__name__}, not a function; "
                f"pass {self.path_text}:NAME of a function"
            )
        return func

    def call(self, *args: Any) -> Any:
        """``func(*args)`` with the script's folder on ``sys.path``; a failure is a one-line error."""
        try:
            with _folder_on_sys_path(self.path.parent):
                return self.func(*args)
        except Exception as exc:
            raise TrtdbgError(
                f"{self.what} {self.path_text}:{self.func_name} raised {_describe_exception(exc, self.path)}; fix the script"
            ) from exc

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        where = f"data loader {self.path_text}:{self.func_name}"
        try:
            with _folder_on_sys_path(self.path.parent):
                result = self.func()
        except Exception as exc:
            raise TrtdbgError(f"{where} raised {_describe_exception(exc, self.path)}; fix the script") from exc
        if isinstance(result, Mapping):
            raise TrtdbgError(f"{where} returned a single dict; return a list of dicts or yield them")
        try:
            iterator = iter(result)
        except TypeError as exc:
            raise TrtdbgError(
                f"{where} returned {type(result).__name__}, not an iterable of feed dicts; return a list or yield dicts"
            ) from exc
        for index in itertools.count():
            try:
                with _folder_on_sys_path(self.path.parent):
                    item = next(iterator)
            except StopIteration:
                if index == 0:
                    raise TrtdbgError(
                        f"{where} yielded no feed dicts; yield at least one {{name: array}} dict"
                    ) from None
                return
            except Exception as exc:
                raise TrtdbgError(
                    f"{where} raised {_describe_exception(exc, self.path)} at iteration {index}; fix the script"
                ) from exc
            yield _checked_item(item, f"{where}, iteration {index}")


def _checked_item(item: Any, where: str) -> dict[str, np.ndarray]:
    if not isinstance(item, Mapping):
        raise TrtdbgError(f"{where}: yielded type {type(item).__name__}, expected a dict of input name -> numpy array")
    for key, value in item.items():
        if not isinstance(key, str):
            raise TrtdbgError(f"{where}: key {key!r} has type {type(key).__name__}, expected an input name (str)")
        if not isinstance(value, np.ndarray):
            raise TrtdbgError(
                f"{where}: value of '{key}' has type {type(value).__name__}, expected numpy.ndarray; "
                "convert it with np.asarray (torch: .numpy())"
            )
    return dict(item)
