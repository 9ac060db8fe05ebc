"""Polygraphy-compatible JSON files of inputs and outputs (Polygraphy 0.53 ``json/serde.py``).

Format (every Polygraphy object carries ``"polygraphy_class": "<Class>"``):

- ndarray: ``{"array": base64(np.save bytes, allow_pickle=False), "polygraphy_class": "ndarray"}``
- LazyArray: ``{"values": <ndarray>, "polygraphy_class": "LazyArray"}`` (alias ``LazyNumpyArray``)
- IterationResult: ``{"outputs": {name: LazyArray}, "runtime": float|null, "runner_name": str, ...}``
- RunResults: ``{"lst": [[runner_name, [IterationResult, ...]], ...], "polygraphy_class": "RunResults"}``
- inputs file: a JSON list of feed dicts ``{name: ndarray}``; a single feed dict is accepted on read.

A path with an extension is one file. An extensionless path is a directory of per-iteration files
``0000000000.json``, ``0000000001.json``, … (10 digits): one feed dict per file for inputs, one
single-iteration RunResults per file for outputs; writing needs a new or empty directory.

Read fallbacks as in Polygraphy: a payload that is not base64 is taken as latin-1 text (very old
files), an ``.npz`` payload gives its first array, and the legacy tag
``"__polygraphy_encoded_<Class>": "polygraphy_serialized_json_type"`` is understood.
Arrays are decoded by parsing the ``.npy`` header directly (``np.load`` on a BytesIO costs ~20 µs
per array, 20x more than the rest of decoding).
"""

from __future__ import annotations

import binascii
import io
import json
import math
import os
import re
import struct
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import numpy as np

from engine_core.errors import TrtdbgError
from engine_core.workspace import atomic_write_text

TAG = "polygraphy_class"
LEGACY_PREFIX = "__polygraphy_encoded_"
LEGACY_MARKER = "polygraphy_serialized_json_type"
ITERATION_FILE_DIGITS = 10

_NPY_MAGIC = b"\x93NUMPY"
_NPY_HEADER = re.compile(r"\{'descr': '([^']+)', 'fortran_order': (True|False), 'shape': \(([0-9, ]*)\), *\}\s*")

RunnerIterations = tuple[str, list[dict[str, np.ndarray]]]


# ---------------------------------------------------------------- arrays


@lru_cache(maxsize=4096)
def _npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    """A v1.0 ``.npy`` header for a C-order array, padded to 64 bytes as numpy does."""
    text = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {shape!r}, }}"
    padding = 64 - (10 + len(text) + 1) % 64
    text += " " * padding + "\n"
    return _NPY_MAGIC + b"\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin-1")


def npy_bytes(array: np.ndarray, where: str) -> bytes:
    """The bytes ``np.save(f, array, allow_pickle=False)`` would write (header padding may differ)."""
    dtype = array.dtype
    if dtype.hasobject:
        raise TrtdbgError(
            f"{where}: dtype {dtype} cannot be saved (object arrays need pickle); convert it to a numeric array"
        )
    if dtype.fields is None and dtype.subdtype is None and array.ndim < 64:
        descr = cast(str, np.lib.format.dtype_to_descr(dtype))  # a plain string for unstructured dtypes
        header = _npy_header(descr, tuple(int(d) for d in array.shape))
        if len(header) < 65536:
            return header + array.tobytes(order="C")
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def array_to_json(array: np.ndarray, where: str = "array") -> dict[str, str]:
    """Polygraphy's tagged ndarray object."""
    data = binascii.b2a_base64(npy_bytes(np.asarray(array), where), newline=False).decode("ascii")
    return {"array": data, TAG: "ndarray"}


@lru_cache(maxsize=4096)
def _parse_npy_header(header: bytes) -> tuple[np.dtype, tuple[int, ...], bool, int] | None:
    match = _NPY_HEADER.fullmatch(header.decode("latin-1"))
    if match is None:
        return None
    try:
        dtype = np.dtype(match.group(1))
    except TypeError:
        return None
    shape = tuple(int(d) for d in match.group(3).replace(" ", "").split(",") if d)
    return dtype, shape, match.group(2) == "True", math.prod(shape)


def _pickled(where: str) -> TrtdbgError:
    return TrtdbgError(
        f"{where}: the array is a pickled Python object array, which trtdbg never loads (unpickling can run "
        "code); save numeric arrays"
    )


def npy_array(data: bytes, where: str) -> np.ndarray:
    """Decode ``.npy`` bytes (or an ``.npz`` archive's first array) into a writable array."""
    if data.startswith(_NPY_MAGIC) and len(data) >= 10:
        if data[6] == 1:
            start = 10
            end = start + struct.unpack_from("<H", data, 8)[0]
        else:
            start = 12
            end = start + (struct.unpack_from("<I", data, 8)[0] if len(data) >= 12 else 0)
        info = _parse_npy_header(data[start:end]) if data[6] in (1, 2) else None
        if info is not None:
            dtype, shape, fortran, count = info
            if dtype.hasobject:
                raise _pickled(where)
            if count * dtype.itemsize > len(data) - end:
                raise TrtdbgError(
                    f"{where}: the .npy header declares {dtype.name}{list(shape)} ({count * dtype.itemsize} bytes) "
                    f"but only {len(data) - end} bytes of data follow; the file is truncated or corrupt, save it again"
                )
            flat = np.frombuffer(data, dtype=dtype, count=count, offset=end)
            if fortran:
                return flat.reshape(shape[::-1]).T.copy(order="F")
            return flat.reshape(shape).copy()
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return loaded
        with loaded:
            names = loaded.files
            if names:
                return loaded[names[0]]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, MemoryError) as exc:
        if "allow_pickle" in str(exc):
            raise _pickled(where) from exc
        raise TrtdbgError(f"{where}: array payload is not a .npy/.npz ({exc}); the file is corrupt") from exc
    raise TrtdbgError(f"{where}: array payload is an empty .npz archive; the file is corrupt")


def class_of(obj: Any) -> str | None:
    """The Polygraphy class tag of a decoded JSON object (current or legacy form), else ``None``."""
    if not isinstance(obj, dict):
        return None
    tag = obj.get(TAG)
    if tag is not None:
        return str(tag)
    for key, value in obj.items():
        if value == LEGACY_MARKER and key.startswith(LEGACY_PREFIX):
            return key[len(LEGACY_PREFIX) :]
    return None


def array_from_json(obj: Any, where: str) -> np.ndarray:
    """Decode a tagged ndarray or a LazyArray wrapping one."""
    cls = class_of(obj)
    if cls in ("LazyArray", "LazyNumpyArray"):
        return array_from_json(obj.get("values"), where)
    if cls != "ndarray":
        found = f"a {cls} object" if cls else f"{type(obj).__name__} {str(obj)[:40]!r}"
        raise TrtdbgError(
            f"{where}: expected a Polygraphy ndarray, found {found}; is this a Polygraphy inputs/outputs file?"
        )
    text = obj.get("array")
    if not isinstance(text, str):
        raise TrtdbgError(f"{where}: ndarray object has no 'array' string; the file is corrupt")
    try:
        data = binascii.a2b_base64(text, strict_mode=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        try:
            data = text.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise TrtdbgError(f"{where}: 'array' is neither base64 nor latin-1 text; the file is corrupt") from exc
    return npy_array(data, where)


# ---------------------------------------------------------------- feeds and run results


def feed_to_json(feed: Mapping[str, np.ndarray], where: str) -> dict[str, Any]:
    """A feed dict as Polygraphy writes it: ``{name: ndarray object}``."""
    return {name: array_to_json(value, f"{where}, tensor '{name}'") for name, value in feed.items()}


def feed_from_json(obj: Any, where: str) -> dict[str, np.ndarray]:
    """Decode one feed dict ``{name: ndarray object}``."""
    cls = class_of(obj)
    if not isinstance(obj, dict) or cls is not None:
        found = f"a {cls} object" if cls else type(obj).__name__
        hint = "; this looks like saved outputs, load it as outputs" if cls == "RunResults" else ""
        raise TrtdbgError(f"{where}: expected a feed dict {{name: ndarray}}, found {found}{hint}")
    return {str(name): array_from_json(value, f"{where}, tensor '{name}'") for name, value in obj.items()}


def iteration_to_json(runner_name: str, outputs: Mapping[str, np.ndarray], where: str) -> dict[str, Any]:
    """A Polygraphy IterationResult with LazyArray-wrapped outputs (runtime unknown: null)."""
    wrapped = {
        name: {"values": array_to_json(value, f"{where}, output '{name}'"), TAG: "LazyArray"}
        for name, value in outputs.items()
    }
    return {"outputs": wrapped, "runtime": None, "runner_name": runner_name, TAG: "IterationResult"}


def run_results_to_json(runs: Sequence[RunnerIterations], where: str) -> dict[str, Any]:
    """A Polygraphy RunResults holding ``runs`` (``[(runner_name, [outputs per iteration])]``, in order)."""
    lst = [
        [
            runner,
            [
                iteration_to_json(runner, outs, f"{where}: runner '{runner}', iteration {i}")
                for i, outs in enumerate(its)
            ],
        ]
        for runner, its in runs
    ]
    return {"lst": lst, TAG: "RunResults"}


def run_results_from_json(obj: Any, where: str) -> list[RunnerIterations]:
    """Decode a RunResults into ``[(runner_name, [outputs per iteration])]`` (duplicate names kept)."""
    cls = class_of(obj)
    if cls != "RunResults":
        found = f"a {cls} object" if cls else type(obj).__name__
        hint = "; this looks like saved inputs, load it as inputs" if isinstance(obj, list) else ""
        raise TrtdbgError(f"{where}: expected Polygraphy RunResults (saved outputs), found {found}{hint}")
    lst = obj.get("lst")
    if not isinstance(lst, list):
        raise TrtdbgError(f"{where}: RunResults has no 'lst' list; the file is corrupt")
    runners: list[RunnerIterations] = []
    for entry in lst:
        if not (
            isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str) and isinstance(entry[1], list)
        ):
            raise TrtdbgError(f"{where}: RunResults entry is not [runner_name, [iterations]]; the file is corrupt")
        runner, iterations = entry
        decoded = []
        for index, it in enumerate(iterations):
            it_where = f"{where}: runner '{runner}', iteration {index}"
            outputs = it.get("outputs") if class_of(it) == "IterationResult" else None
            if not isinstance(outputs, dict):
                raise TrtdbgError(f"{it_where}: expected an IterationResult with 'outputs'; the file is corrupt")
            decoded.append({str(n): array_from_json(v, f"{it_where}, output '{n}'") for n, v in outputs.items()})
        runners.append((runner, decoded))
    return runners


# ---------------------------------------------------------------- files and directories


def is_directory_path(path: str | os.PathLike[str]) -> bool:
    """Polygraphy's rule: a path without an extension means a directory of per-iteration files."""
    return os.path.splitext(os.fspath(path))[1] == ""


def read_json(path: str | os.PathLike[str]) -> Any:
    """Parse a JSON file; missing, unreadable or malformed files raise :class:`TrtdbgError`."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError as exc:
        raise TrtdbgError(f"{path}: file not found; check the path") from exc
    except OSError as exc:
        raise TrtdbgError(f"{path}: cannot read ({exc.strerror or exc}); check the path and permissions") from exc
    if not raw.strip():
        raise TrtdbgError(f"{path}: file is empty; save it again")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise TrtdbgError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); the file is truncated or corrupt"
        ) from exc
    except UnicodeDecodeError as exc:
        raise TrtdbgError(f"{path}: not a JSON text file ({exc.reason}); give a Polygraphy .json file") from exc


def iteration_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The ``*.json`` files of a per-iteration directory in lexical (= iteration) order."""
    files = sorted(p for p in Path(directory).glob("*.json") if p.is_file())
    if not files:
        raise TrtdbgError(f"{directory}: directory holds no .json iteration files; give a file or a saved directory")
    return files


def prepare_iteration_dir(directory: str | os.PathLike[str]) -> Path:
    """Create a new per-iteration directory, or accept an empty one (files are never overwritten)."""
    target = Path(directory)
    if target.exists():
        if not target.is_dir():
            raise TrtdbgError(
                f"{target}: a file exists there but an extensionless path means a directory; add .json or pick another path"
            )
        if any(target.iterdir()):
            raise TrtdbgError(f"{target}: directory is not empty; per-iteration files need a new or empty directory")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrtdbgError(f"cannot create {target}: {exc.strerror or exc}; choose a writable location") from exc
    return target


def iteration_file(directory: Path, index: int) -> Path:
    """``directory/0000000042.json``."""
    return directory / f"{index:0{ITERATION_FILE_DIGITS}d}.json"


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write compact JSON atomically (indentation would triple the encoding time of big files)."""
    atomic_write_text(path, json.dumps(obj))


def read_inputs(path: str | os.PathLike[str]) -> list[dict[str, np.ndarray]]:
    """Feed dicts from a JSON file (list or single dict) or a per-iteration directory."""
    files = iteration_files(path) if os.path.isdir(path) else [Path(path)]
    feeds: list[dict[str, np.ndarray]] = []
    for file in files:
        obj = read_json(file)
        items = obj if isinstance(obj, list) else [obj]
        for item in items:
            feeds.append(feed_from_json(item, f"{file}: iteration {len(feeds)}"))
    if not feeds:
        raise TrtdbgError(f"{path}: holds no iterations (an empty list); save inputs again")
    return feeds


def write_inputs(path: str | os.PathLike[str], feeds: Iterable[Mapping[str, np.ndarray]]) -> None:
    """Write feed dicts: one JSON list file, or a directory (extensionless path), one file per feed."""
    if not is_directory_path(path):
        write_json(path, [feed_to_json(feed, f"{path}: iteration {i}") for i, feed in enumerate(feeds)])
        return
    directory = prepare_iteration_dir(path)
    for index, feed in enumerate(feeds):
        file = iteration_file(directory, index)
        write_json(file, feed_to_json(feed, f"{file}: iteration {index}"))


def read_outputs(path: str | os.PathLike[str]) -> list[RunnerIterations]:
    """``[(runner_name, iterations)]`` from a RunResults file or a directory of single-iteration ones."""
    if not os.path.isdir(path):
        return run_results_from_json(read_json(path), str(path))
    merged: dict[str, list[dict[str, np.ndarray]]] = {}
    for file in iteration_files(path):
        for runner, iterations in run_results_from_json(read_json(file), str(file)):
            merged.setdefault(runner, []).extend(iterations)
    return list(merged.items())


def write_outputs(path: str | os.PathLike[str], runs: Sequence[RunnerIterations]) -> None:
    """Write runners' outputs: one RunResults file, or a directory of single-iteration RunResults (every runner)."""
    if not is_directory_path(path):
        write_json(path, run_results_to_json(runs, str(path)))
        return
    directory = prepare_iteration_dir(path)
    for index in range(max(len(its) for _, its in runs)):
        file = iteration_file(directory, index)
        write_json(file, run_results_to_json([(r, its[index : index + 1]) for r, its in runs], str(file)))
