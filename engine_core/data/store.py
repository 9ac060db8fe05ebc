"""Load and save inputs and outputs in every supported form; the one entry point for the CLI and compare engine.

Forms, chosen by the path: ``*.json`` — one Polygraphy JSON file; extensionless — a directory of
per-iteration Polygraphy JSON files (``0000000000.json`` …); ``*.npz`` — a numpy archive
(layout in :mod:`engine_core.data.npz`). Several input paths are chained in order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine_core.data import npz, polyjson
from engine_core.errors import TrtdbgError

FORMS = ".json file, .npz file or a directory of per-iteration .json files"


@dataclass
class SavedOutputs:
    """One runner's saved outputs: ``iterations[i]`` maps output name → array, in the runner's output order."""

    runner_name: str
    iterations: list[dict[str, np.ndarray]]
    other_runners: list[str] = field(default_factory=list)
    """Names of further runners in the same file (not loaded)."""


def _form(path: str | os.PathLike[str], for_writing: bool) -> str:
    """``"dir"``, ``"json"`` or ``"npz"`` for ``path``; an unknown extension is an error."""
    if not for_writing and os.path.isdir(path):
        return "dir"
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix == ".npz":
        return "npz"
    if suffix == "":
        return "dir" if for_writing else "json"  # an extensionless file is read as JSON, as Polygraphy does
    if not for_writing and not os.path.exists(path):
        raise TrtdbgError(f"{path}: file not found; check the path")
    raise TrtdbgError(f"{path}: unsupported file type {suffix!r}; use a {FORMS}")


def load_inputs(paths: Sequence[str | os.PathLike[str]]) -> list[dict[str, np.ndarray]]:
    """Feed dicts from one or more files/directories, chained in order."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise TrtdbgError(f"no inputs file given; pass a {FORMS}")
    feeds: list[dict[str, np.ndarray]] = []
    for path in paths:
        if _form(path, for_writing=False) == "npz":
            feeds.extend(npz.read_npz(path)[0])
        else:
            feeds.extend(polyjson.read_inputs(path))
    return feeds


def save_inputs(path: str | os.PathLike[str], feeds: Sequence[Mapping[str, np.ndarray]]) -> None:
    """Save feed dicts as a ``.json`` file, an ``.npz`` or (extensionless path) a directory."""
    if not feeds:
        raise TrtdbgError(f"{path}: nothing to save (no iterations)")
    if _form(path, for_writing=True) == "npz":
        npz.write_npz(path, feeds)
    else:
        polyjson.write_inputs(path, feeds)


def load_outputs(path: str | os.PathLike[str]) -> SavedOutputs:
    """The first runner's outputs from a RunResults ``.json``/directory or an ``.npz``."""
    if _form(path, for_writing=False) == "npz":
        iterations, runner_name = npz.read_npz(path)
        return SavedOutputs(runner_name or Path(path).stem, iterations)
    runners = polyjson.read_outputs(path)
    if not runners:
        raise TrtdbgError(f"{path}: RunResults holds no runners; save the outputs again")
    runner_name, iterations = runners[0]
    if not iterations:
        raise TrtdbgError(f"{path}: runner '{runner_name}' has no iterations; save the outputs again")
    return SavedOutputs(runner_name, iterations, [name for name, _ in runners[1:]])


def save_outputs(
    path: str | os.PathLike[str], runner_name: str, iterations: Sequence[Mapping[str, np.ndarray]]
) -> None:
    """Save one runner's outputs as a RunResults ``.json``, a directory of them, or an ``.npz``."""
    if not iterations:
        raise TrtdbgError(f"{path}: nothing to save (no iterations)")
    if _form(path, for_writing=True) == "npz":
        npz.write_npz(path, iterations, runner_name=runner_name)
    else:
        polyjson.write_outputs(path, runner_name, iterations)
