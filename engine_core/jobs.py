"""One protocol for long-running engine jobs: compare, bisect, reduce, bench and debug build.

A job takes a :class:`JobEvents` and reports through it, in its own thread: :meth:`~JobEvents.stage`
(a :class:`Stage`: what it prepares before counted work starts or between its steps, e.g. "building ONNX Runtime
session 1/2"), :meth:`~JobEvents.progress` (an object with ``done``, ``total`` and ``unit``; compare's also has
``batch``/``batches``),
:meth:`~JobEvents.warn` (each message once) and :meth:`~JobEvents.item` (what the job produced: a tensor
result, a bisection step, a judged reduce candidate, a build). It stops at its next safe point once
the :class:`CancelToken` is set. The CLI (``tui/cli/progress.py``) and the app's workers build a
``JobEvents`` and drive every job the same way; the callbacks never touch UI (the app posts messages).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from engine_core.errors import TrtdbgError


class CancelToken(threading.Event):
    """Set (from any thread) to ask a job to stop at its next safe point."""

    def cancel(self) -> None:
        self.set()

    @property
    def cancelled(self) -> bool:
        return self.is_set()


class Cancelled(TrtdbgError):
    """A job stopped because its token was set (exit code 130, as an interrupt)."""

    exit_code = 130


class ProgressLike(Protocol):
    @property
    def done(self) -> int: ...

    @property
    def total(self) -> int: ...


@dataclass(frozen=True)
class Progress:
    """How far a job is: ``done`` of ``total`` ``unit`` (``steps``, ``candidates``, ``runs``, ``builds``)."""

    done: int
    total: int
    unit: str
    detail: str = ""


@dataclass(frozen=True)
class Stage:
    """What a job is preparing: ``what``, counted when ``done``/``total`` are given (``unit`` names the count).

    ``str()``: ``loading model``, ``rewriting FP16 subject: 7,689 nodes``, ``building ONNX Runtime session 1/2``,
    ``generating input data: sample 3/10``."""

    what: str
    done: int | None = None
    total: int | None = None
    unit: str = ""

    def __str__(self) -> str:
        if self.done is None:
            return self.what
        if self.total is None:
            return f"{self.what}: {self.done:,} {self.unit}".rstrip()
        if self.unit:
            return f"{self.what}: {self.unit} {self.done}/{self.total}"
        return f"{self.what} {self.done}/{self.total}"


StageCallback = Callable[[Stage], None]


class JobEvents:
    """What a running job reports and how it is asked to stop; every callback is optional and runs in the
    job's thread."""

    def __init__(
        self,
        *,
        on_progress: Callable[[Any], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
        on_item: Callable[[Any], None] | None = None,
        on_stage: StageCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        self._on_progress = on_progress
        self.on_stage = on_stage
        """Where :meth:`stage` reports (given to runners, which report their own set-up steps)."""
        self._on_warning = on_warning
        self._on_item = on_item
        self.cancel = cancel if cancel is not None else CancelToken()
        self.warnings: list[str] = []
        """Every warning so far, each once, in order."""

    def stage(self, what: str, done: int | None = None, total: int | None = None, unit: str = "") -> None:
        """Report the current preparation step (see :class:`Stage`)."""
        if self.on_stage is not None:
            self.on_stage(Stage(what, done, total, unit))

    def progress(self, progress: ProgressLike) -> None:
        if self._on_progress is not None:
            self._on_progress(progress)

    def warn(self, message: str) -> None:
        """Report a warning (repeats of one message are dropped)."""
        if message in self.warnings:
            return
        self.warnings.append(message)
        if self._on_warning is not None:
            self._on_warning(message)

    def item(self, item: Any) -> None:
        if self._on_item is not None:
            self._on_item(item)

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def stop_if_cancelled(self, message: str) -> None:
        """Raise :class:`Cancelled` with ``message`` (what stopped, what was kept) once the token is set."""
        if self.cancel.is_set():
            raise Cancelled(message)
