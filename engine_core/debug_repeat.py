"""``trtdbg debug repeat``: Polygraphy's ``debug repeat`` — run a check command again and again and sort what it
leaves behind into good/ and bad/ by its exit code.

Each iteration runs ``--check`` (through the shell; exit 0 = good, a hang or a crash = bad), then moves every
``--artifacts`` file it produced to ``DIR/good/`` or ``DIR/bad/`` as ``<stem>_iter<k><suffix>``, so the next
iteration starts without it (a flaky build, a nondeterministic kernel, a tactic that only sometimes wins).
``TRTDBG_ITERATION`` tells the command which iteration it is; ``{iteration}`` in the command is replaced by it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine_core.backend.trt.debug_build import parse_until, repeat_until
from engine_core.check import CheckCommand
from engine_core.errors import TrtdbgError
from engine_core.jobs import JobEvents
from engine_core.types import json_fields
from engine_core.workspace import atomic_write_json


@dataclass
class RepeatIteration:
    """One run of the check."""

    index: int
    verdict: str
    """``good`` or ``bad``."""
    detail: str | None
    artifacts: list[str]
    """Where this iteration's artifacts were moved."""
    log: str

    def to_json(self) -> dict[str, Any]:
        """Stable JSON."""
        return json_fields(self)


@dataclass
class RepeatResult:
    """All iterations and where their artifacts went."""

    artifacts_dir: str
    iterations: list[RepeatIteration]
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Iterations per verdict."""
        return {v: sum(1 for it in self.iterations if it.verdict == v) for v in ("good", "bad")}

    def to_json(self) -> dict[str, Any]:
        """Stable JSON document."""
        return {
            "artifacts_dir": self.artifacts_dir,
            "counts": self.counts(),
            "iterations": [it.to_json() for it in self.iterations],
            "notes": list(self.notes),
        }

    def to_text(self) -> str:
        """Polygraphy-style summary lines."""
        c = self.counts()
        n = len(self.iterations)
        rate = 100.0 * c["good"] / n if n else 0.0
        lines = [f"[I] Finished {n} iteration(s) | Passed: {c['good']}/{n} | Pass Rate: {rate:.2f}%"]
        lines.append(f"[I] Artifacts sorted into {self.artifacts_dir}/good and {self.artifacts_dir}/bad")
        lines += [f"[W] {note}" for note in self.notes]
        return "\n".join(lines)


def debug_repeat(
    check: CheckCommand,
    artifacts: Sequence[str],
    artifacts_dir: str | os.PathLike[str],
    *,
    until: str | int,
    max_iterations: int = 20,
    events: JobEvents | None = None,
) -> RepeatResult:
    """Run ``check`` until ``until`` (``good``, ``bad`` or a count), sorting ``artifacts`` after each run.

    ``events``: each :class:`RepeatIteration` as an item and progress; a cancel stops before the next run."""
    events = events or JobEvents()
    if isinstance(until, str):
        until = parse_until(until)
    check.verify()
    root = Path(artifacts_dir)
    notes: list[str] = []

    def run(k: int) -> RepeatIteration:
        log = root / "logs" / f"iter_{k}.log"
        outcome = check.run({"iteration": str(k)}, log)
        detail = outcome.detail
        verdict = "good" if outcome.passed else "bad"
        moved: list[str] = []
        for art in artifacts:
            src = Path(art)
            if not src.exists():
                note = f"artifact {art} was not produced by iteration {k}"
                notes.append(note)
                continue
            target = root / verdict / f"{src.stem}_iter{k}{src.suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.move(str(src), str(target))
            except OSError as exc:
                raise TrtdbgError(f"cannot move artifact {art} to {target}: {exc.strerror or exc}") from exc
            moved.append(str(target))
        return RepeatIteration(k, verdict, detail, moved, str(log))

    def stopped(k: int) -> str:
        return f"debug repeat cancelled after {k} run(s); artifacts so far are in {root}"

    iterations, missed = repeat_until(
        until, max_iterations, run, events, unit="runs", what="iteration", cancelled=stopped
    )
    notes += [missed] if missed else []
    result = RepeatResult(str(root), iterations, notes)
    atomic_write_json(root / "summary.json", result.to_json())
    return result
