"""A minimal progress bar on stderr (only when stderr is a terminal and not --quiet)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine_core.comparator.engine import Progress


class ProgressBar:
    """Redraws one line at most 10 times a second; warnings are printed above it."""

    def __init__(self, enabled: bool, width: int = 30) -> None:
        self.enabled = enabled
        self.width = width
        self._last = 0.0
        self._drawn = False

    def update(self, progress: Progress) -> None:
        """Draw ``progress`` (tensors done of total, batch of batches)."""
        if not self.enabled:
            return
        now = time.monotonic()
        done, total = progress.done, progress.total
        if now - self._last < 0.1 and done < total:
            return
        self._last = now
        frac = done / total if total else 1.0
        fill = int(frac * self.width)
        batch = f" batch {progress.batch + 1}/{progress.batches}" if progress.batches > 1 else ""
        sys.stderr.write(f"\r[{'#' * fill}{'.' * (self.width - fill)}] {done}/{total} tensors{batch}")
        sys.stderr.flush()
        self._drawn = True

    def warn(self, message: str) -> None:
        """Print a warning line (above the bar)."""
        self._clear()
        sys.stderr.write(f"[W] {message}\n")

    def close(self) -> None:
        """Remove the bar."""
        self._clear()

    def _clear(self) -> None:
        if self._drawn:
            sys.stderr.write("\r" + " " * (self.width + 40) + "\r")
            sys.stderr.flush()
            self._drawn = False
