"""Inputs and outputs in numpy ``.npz`` archives (read with ``allow_pickle=False`` semantics).

Layout:

- one iteration: keys are the tensor names (``np.load(f)["x"]``);
- several iterations: keys are ``"<iteration>/<name>"`` (``"0/x"``, ``"1/x"``, …);
- saved outputs also hold ``"__runner_name__"``, a 0-d string array with the runner's name.

A file is read as the several-iterations form when every tensor key starts with ``<digits>/``;
the writer uses that form for a single iteration too when its names would look like it, so
reading always gives back what was written. Archives written by ``np.savez`` /
``np.savez_compressed`` with plain names load as one iteration.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Mapping, Sequence

import numpy as np

from engine_core.data.polyjson import npy_array, npy_bytes
from engine_core.errors import TrtdbgError
from engine_core.workspace import atomic_write_bytes

RUNNER_KEY = "__runner_name__"
_ITERATION_KEY = re.compile(r"(\d+)/(.+)", re.S)


def write_npz(
    path: str | os.PathLike[str], iterations: Sequence[Mapping[str, np.ndarray]], runner_name: str | None = None
) -> None:
    """Write iterations of tensors (and optionally the runner name) to an uncompressed ``.npz``."""
    if not iterations:
        raise TrtdbgError(f"{path}: nothing to save (no iterations)")
    only = iterations[0]
    plain = len(iterations) == 1 and not (only and all(_ITERATION_KEY.fullmatch(k) for k in only))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for index, tensors in enumerate(iterations):
            for name, value in tensors.items():
                key = name if plain else f"{index}/{name}"
                zf.writestr(key + ".npy", npy_bytes(np.asarray(value), f"{path}: iteration {index}, tensor '{name}'"))
        if runner_name is not None:
            zf.writestr(RUNNER_KEY + ".npy", npy_bytes(np.array(runner_name), f"{path}: runner name"))
    atomic_write_bytes(path, buf.getvalue())


def read_npz(path: str | os.PathLike[str]) -> tuple[list[dict[str, np.ndarray]], str | None]:
    """``(iterations, runner_name or None)`` from an ``.npz`` in either layout."""
    tensors: dict[str, np.ndarray] = {}
    runner_name = None
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                value = npy_array(zf.read(info), f"{path}: key '{key}'")
                if key == RUNNER_KEY:
                    runner_name = str(value)
                else:
                    tensors[key] = value
    except FileNotFoundError as exc:
        raise TrtdbgError(f"{path}: file not found; check the path") from exc
    except (zipfile.BadZipFile, EOFError) as exc:
        raise TrtdbgError(f"{path}: not a valid .npz archive ({exc}); the file is truncated or corrupt") from exc
    except OSError as exc:
        raise TrtdbgError(f"{path}: cannot read ({exc.strerror or exc}); check the path and permissions") from exc
    if not tensors:
        raise TrtdbgError(f"{path}: archive holds no tensors; save it again")
    matches = {key: _ITERATION_KEY.fullmatch(key) for key in tensors}
    if not all(matches.values()):
        return [tensors], runner_name
    grouped: dict[int, dict[str, np.ndarray]] = {}
    for key, match in matches.items():
        assert match is not None
        grouped.setdefault(int(match.group(1)), {})[match.group(2)] = tensors[key]
    gap = next(i for i in range(len(grouped) + 1) if i not in grouped)
    if gap < len(grouped):
        raise TrtdbgError(f"{path}: iteration keys skip iteration {gap}; keys must be 0/<name>, 1/<name>, …")
    return [grouped[i] for i in range(len(grouped))], runner_name
