"""How the command line drives every engine job: a progress bar, warning lines and per-item lines on stderr.

:class:`CliJob` builds the job's :class:`~engine_core.jobs.JobEvents`: progress draws a bar and preparation stages
("building ONNX Runtime session (ort): 440 outputs…") show on the bar's line (only when stderr is a terminal, not
``--quiet`` and the command prints no per-item lines), warnings print as ``trtdbg: warning: ...``
(each once, above the bar), items go to the command's ``show``. ctrl+c raises KeyboardInterrupt as usual (exit 130).
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

WARNING_PREFIX = "trtdbg: warning: "


def warn(message: str) -> None:
    """Print one warning line on stderr (escaped: warnings quote names from the model and data)."""
    from engine_core.safetext import printable

    sys.stderr.write(f"{WARNING_PREFIX}{printable(message)}\n")
    sys.stderr.flush()


def line_printer(as_json: bool) -> Callable[[str], None]:
    """Print a progress line at once: on stdout, or on stderr while stdout carries the ``--json`` document."""
    stream = sys.stderr if as_json else sys.stdout
    return lambda line: print(line, file=stream, flush=True)


class ProgressBar:
    """Redraws one line at most 10 times a second; warnings are printed above it."""

    def __init__(self, enabled: bool, width: int = 30) -> None:
        self.enabled = enabled
        self.width = width
        self._last = 0.0
        self._drawn = 0
        """Width of the line drawn last (0: nothing to clear)."""

    def update(self, progress: Any) -> None:
        """Draw ``progress`` (``done``, ``total``, optional ``unit`` and compare's ``batch``/``batches``)."""
        if not self.enabled:
            return
        now = time.monotonic()
        done, total = progress.done, progress.total
        if now - self._last < 0.1 and done < total:
            return
        self._last = now
        frac = done / total if total else 1.0
        fill = int(frac * self.width)
        batch = f" batch {progress.batch + 1}/{progress.batches}" if getattr(progress, "batches", 1) > 1 else ""
        unit = getattr(progress, "unit", "tensors")
        self._draw(f"[{'#' * fill}{'.' * (self.width - fill)}] {done}/{total} {unit}{batch}")

    def stage(self, stage: Any) -> None:
        """Show what the job prepares (a :class:`~engine_core.jobs.Stage`) on the bar's line."""
        if self.enabled:
            from engine_core.safetext import printable

            width = shutil.get_terminal_size().columns - 1
            self._draw(f"{printable(str(stage))}…"[:width])

    def _draw(self, line: str) -> None:
        pad = " " * max(0, self._drawn - len(line))
        sys.stderr.write(f"\r{line}{pad}")
        sys.stderr.flush()
        self._drawn = len(line)

    def warn(self, message: str) -> None:
        """Print a warning line (above the bar)."""
        self._clear()
        warn(message)

    def close(self) -> None:
        """Remove the bar."""
        self._clear()

    def _clear(self) -> None:
        if self._drawn:
            sys.stderr.write("\r" + " " * self._drawn + "\r")
            sys.stderr.flush()
            self._drawn = 0


class CliJob:
    """``with CliJob(quiet=..., show=...) as events: run_the_job(..., events)``: the same driver for every job."""

    def __init__(self, *, quiet: bool = False, show: Callable[[Any], None] | None = None) -> None:
        from engine_core.jobs import JobEvents

        self.bar = ProgressBar(enabled=not quiet and show is None and sys.stderr.isatty())
        self.events = JobEvents(
            on_progress=self.bar.update, on_warning=self.bar.warn, on_item=show, on_stage=self.bar.stage
        )

    def __enter__(self) -> Any:
        return self.events

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.bar.close()
