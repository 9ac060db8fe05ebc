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
    """Names of the file's other runners."""
    index: int = 0
    """Position of this runner in the file."""
    path: str = ""
    """The file it was read from."""


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


def load_runs(path: str | os.PathLike[str]) -> list[tuple[str, list[dict[str, np.ndarray]]]]:
    """Every runner of a RunResults ``.json``/directory (``[(runner_name, iterations)]``, file order) or an ``.npz``."""
    if _form(path, for_writing=False) == "npz":
        iterations, runner_name = npz.read_npz(path)
        return [(runner_name or Path(path).stem, iterations)]
    runners = polyjson.read_outputs(path)
    if not runners:
        raise TrtdbgError(f"{path}: RunResults holds no runners; save the outputs again")
    for runner_name, iterations in runners:
        if not iterations:
            raise TrtdbgError(f"{path}: runner '{runner_name}' has no iterations; save the outputs again")
    return runners


def runner_index(runners: Sequence[str], selector: str | int, path: str | os.PathLike[str], option: str) -> int:
    """Position of the runner ``selector`` names: an index (negative counts from the end) or an exact runner name."""
    listing = ", ".join(f"{i}: {name}" for i, name in enumerate(runners))
    text = str(selector).strip()
    if text.lstrip("-").isdigit():
        k = int(text)
        if not -len(runners) <= k < len(runners):
            raise TrtdbgError(f"{option} {text}: {path} holds {len(runners)} runner(s) ({listing})")
        return k % len(runners)
    hits = [i for i, name in enumerate(runners) if name == text]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise TrtdbgError(f"{option} {text}: {path} holds several runners of that name ({listing}); give the index")
    raise TrtdbgError(f"{option} {text}: {path} has no runner of that name; it holds {listing}")


def pick_runner(
    runs: Sequence[tuple[str, list[dict[str, np.ndarray]]]], path: str | os.PathLike[str], k: int
) -> SavedOutputs:
    """Runner ``k`` of ``runs`` (from :func:`load_runs`)."""
    name, iterations = runs[k]
    return SavedOutputs(name, iterations, [n for i, (n, _) in enumerate(runs) if i != k], k, str(path))


def load_outputs(path: str | os.PathLike[str], runner: str | int = 0, option: str = "runner") -> SavedOutputs:
    """One runner's outputs (``runner``: index or name, default the first) from a saved outputs file."""
    runs = load_runs(path)
    return pick_runner(runs, path, runner_index([n for n, _ in runs], runner, path, option))


def save_outputs(
    path: str | os.PathLike[str], runner_name: str, iterations: Sequence[Mapping[str, np.ndarray]]
) -> None:
    """Save one runner's outputs as a RunResults ``.json``, a directory of them, or an ``.npz``."""
    save_runs(path, [(runner_name, iterations)])


def save_runs(path: str | os.PathLike[str], runs: Sequence[tuple[str, Sequence[Mapping[str, np.ndarray]]]]) -> None:
    """Save several runners' outputs as one RunResults ``.json`` (or a directory of them); ``.npz`` holds one runner."""
    if not runs or not all(its for _, its in runs):
        raise TrtdbgError(f"{path}: nothing to save (no iterations)")
    if _form(path, for_writing=True) == "npz":
        if len(runs) > 1:
            raise TrtdbgError(f"{path}: an .npz holds one runner; save several runners to a .json file or a directory")
        npz.write_npz(path, runs[0][1], runner_name=runs[0][0])
    else:
        polyjson.write_outputs(path, [(name, [dict(it) for it in its]) for name, its in runs])
