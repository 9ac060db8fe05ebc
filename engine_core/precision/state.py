"""Bisection state on disk: one JSON file in the workspace, replaced atomically after every step.

A crash, ``kill -9`` or a lost SSH session loses at most the step in flight. A file that cannot be read back is
reported in one line and left in place (never overwritten by a new run without a backup).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from engine_core.errors import TrtdbgError, first_line
from engine_core.workspace import Workspace, atomic_write_json

FORMAT = "trtdbg-bisect-state"
VERSION = 1
STATE_FILE = "bisect/state.json"
REQUIRED = ("options", "model", "search", "history", "cache", "evaluations", "phases")


def pack(indices: Iterable[int]) -> list[list[int]]:
    """Sorted-run encoding of an index list: ``[0,1,2,7]`` -> ``[[0,3],[7,8]]`` (order preserved run by run)."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and runs[-1][1] == i:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1])
    return runs


def unpack(runs: Sequence[Sequence[int]]) -> list[int]:
    """Inverse of :func:`pack`."""
    return [i for a, b in runs for i in range(int(a), int(b))]


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def state_path(ws: Workspace) -> Path:
    """Where the bisection state of this workspace lives."""
    return ws.path(STATE_FILE)


def save_state(ws: Workspace, doc: dict[str, Any]) -> Path:
    """Write the state atomically (temp file, fsync, rename)."""
    return atomic_write_json(state_path(ws), {"format": FORMAT, "version": VERSION, **doc}, indent=None)


def load_state(ws: Workspace) -> dict[str, Any]:
    """Read and sanity-check the state; missing or corrupted files raise one-line errors."""
    path = state_path(ws)
    if not path.exists():
        raise TrtdbgError(f"no bisection to resume in {ws.root} ({path} does not exist); start one without --resume")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TrtdbgError(
            f"bisection state {path} is corrupted ({first_line(exc, 120)}); it was left in place: start over "
            "without --resume (the old file is kept as state.json.bak)"
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise TrtdbgError(f"{path} is not a trtdbg bisection state; start over without --resume")
    if doc.get("version") != VERSION:
        raise TrtdbgError(f"{path} has state version {doc.get('version')}; this trtdbg resumes version {VERSION}")
    missing = [k for k in REQUIRED if k not in doc]
    if missing:
        raise TrtdbgError(f"bisection state {path} is corrupted (no '{missing[0]}'); start over without --resume")
    return doc


def backup_state(ws: Workspace) -> Path | None:
    """Move an existing state file aside to ``state.json.bak`` (a new bisection never destroys the old one)."""
    path = state_path(ws)
    if not path.exists():
        return None
    backup = path.with_name(path.name + ".bak")
    os.replace(path, backup)
    return backup


def saved_bisection(ws: Workspace, model: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A short description of the bisection saved in ``ws`` (``None``: none): ``steps``, ``precision``,
    ``fallback``, ``finished``, ``same_model`` (started on ``model``), ``path`` and ``doc`` (the state itself).

    A state file that cannot be read raises :class:`TrtdbgError` (one line), as a resume would.
    """
    path = state_path(ws)
    if not path.exists():
        return None
    doc = load_state(ws)
    opts = doc.get("options", {})
    return {
        "steps": len(doc.get("history", [])),
        "precision": opts.get("precision"),
        "fallback": opts.get("fallback"),
        "finished": doc.get("search", {}).get("stage") == "done",
        "same_model": Path(opts.get("model", "")).resolve() == Path(model).resolve(),
        "path": str(path),
        "doc": doc,
    }
