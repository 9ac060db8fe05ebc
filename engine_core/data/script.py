"""User data loader scripts: ``script.py[:func]`` (Polygraphy ``--data-loader-script``).

``func`` (default ``load_data``) takes no arguments and returns an iterable of feed dicts
``{input name: numpy array}``; a generator works. The script is imported from its path under a
unique module name, with its folder first on ``sys.path`` while it is imported and while ``func``
runs, so it can import modules beside it. Any failure becomes a one-line :class:`TrtdbgError`
naming the script, the exception, the script line and, while iterating, the iteration index.

The script is untrusted code that runs in this process, so it is guarded: every ``BaseException`` it
raises (``sys.exit(0)``, ``KeyboardInterrupt``, ``GeneratorExit`` too) is an error, not an exit; what it
prints goes to stderr (stdout may carry ``--json``); each step (import, the call, each sample) has a
time limit (``--loader-timeout``), and it may yield at most :data:`MAX_SAMPLES` samples.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import itertools
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from engine_core.errors import TrtdbgError

DEFAULT_FUNC = "load_data"
DEFAULT_TIMEOUT = 300.0
"""Seconds one step of a loader (import, the call, one sample) may take before it counts as hung."""
MAX_SAMPLES = 10_000
"""Most samples a loader may yield (a generator that never stops is an error, not a hang)."""
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
    if isinstance(exc, SystemExit):
        return f"SystemExit (sys.exit({exc.code!r}) ends the whole program, not only the loader){where}"
    return f"{type(exc).__name__}: {_one_line(str(exc))}{where}"


class _Hung(Exception):
    """A loader step ran past its time limit (raised in the calling thread; the step keeps running)."""


class _Raised(Exception):
    """The loader raised :attr:`exc` (any ``BaseException``); a real ctrl+c in trtdbg is never one."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(exc)
        self.exc = exc


_END = object()


def _guarded(fn: Callable[[], Any], folder: Path, timeout: float) -> Any:
    """``fn()`` in a daemon thread with ``folder`` on ``sys.path`` and its prints sent to stderr.

    Raises :class:`_Raised` with whatever ``fn`` raised (any ``BaseException``) and :class:`_Hung` when it
    takes longer than ``timeout`` seconds.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # the loader's sys.exit / KeyboardInterrupt must not end trtdbg
            box["error"] = exc

    thread = threading.Thread(target=target, name="trtdbg-data-loader", daemon=True)
    with _folder_on_sys_path(folder), redirect_stdout(sys.stderr):
        thread.start()
        thread.join(timeout)
    if thread.is_alive():
        raise _Hung
    if "error" in box:
        raise _Raised(box["error"])
    return box.get("value")


class ScriptDataLoader:
    """Iterable of feed dicts from ``path.py[:func]``; the script is imported at construction.

    ``what``/``default_func`` reuse the same guard for other user functions (``compare-func script``,
    ``compare_outputs``), called through :meth:`call`.
    """

    def __init__(
        self,
        spec: str,
        *,
        what: str = "data loader script",
        default_func: str = DEFAULT_FUNC,
        timeout: float | None = None,
    ) -> None:
        timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        if not timeout > 0:
            raise TrtdbgError(f"--loader-timeout must be a number of seconds > 0 (got {timeout!r})")
        self.timeout = float(timeout)
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
            _guarded(lambda: loader.exec_module(module), self.path.parent, self.timeout)
        except _Hung:
            raise TrtdbgError(self._hung("importing it")) from None
        except _Raised as raised:
            del sys.modules[name]
            exc = raised.exc
            if isinstance(exc, SyntaxError):
                file = Path(exc.filename).name if exc.filename else self.path.name
                raise TrtdbgError(
                    f"{self.what} {self.path_text}: SyntaxError in {file} line {exc.lineno}: {exc.msg}; fix the script"
                ) from exc
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
        """``func(*args)``, guarded like the loader (any ``BaseException``, time limit, prints to stderr)."""
        try:
            return _guarded(lambda: self.func(*args), self.path.parent, self.timeout)
        except _Hung:
            raise TrtdbgError(self._hung("to return")) from None
        except _Raised as raised:
            raise TrtdbgError(
                f"{self.what} {self.path_text}:{self.func_name} raised {_describe_exception(raised.exc, self.path)}; "
                "fix the script"
            ) from raised.exc

    def _hung(self, step: str) -> str:
        return (
            f"{self.what} {self.path_text}:{self.func_name} took longer than {self.timeout:g}s {step}; "
            "fix the script, or raise --loader-timeout if it is only slow"
        )

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        where = f"data loader {self.path_text}:{self.func_name}"
        try:
            result = _guarded(self.func, self.path.parent, self.timeout)
        except _Hung:
            raise TrtdbgError(self._hung("to return")) from None
        except _Raised as raised:
            exc = raised.exc
            raise TrtdbgError(f"{where} raised {_describe_exception(exc, self.path)}; fix the script") from exc
        if isinstance(result, Mapping):
            raise TrtdbgError(f"{where} returned a single dict; return a list of dicts or yield them")
        try:
            iterator = _guarded(lambda: iter(result), self.path.parent, self.timeout)
        except (_Hung, _Raised) as not_iterable:
            raise TrtdbgError(
                f"{where} returned {type(result).__name__}, not an iterable of feed dicts; return a list or yield dicts"
            ) from not_iterable
        for index in itertools.count():
            if index == MAX_SAMPLES:
                raise TrtdbgError(
                    f"{where} yielded more than {MAX_SAMPLES} samples; stop the generator (trtdbg uses every sample)"
                )
            try:
                item = _guarded(lambda: next(iterator, _END), self.path.parent, self.timeout)
            except _Hung:
                raise TrtdbgError(self._hung(f"for sample {index}")) from None
            except _Raised as raised:
                raise TrtdbgError(
                    f"{where} raised {_describe_exception(raised.exc, self.path)} at iteration {index}; fix the script"
                ) from raised.exc
            if item is _END:
                if index == 0:
                    raise TrtdbgError(f"{where} yielded no feed dicts; yield at least one {{name: array}} dict")
                return
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
