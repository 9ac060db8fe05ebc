"""The one shape policy: concrete input shapes for every command (compare, bisect, convert, reduce, template, TensorRT).

:func:`choose_shapes` starts from the user's ``--shapes`` (checked against the model: names, rank, fixed dims) and
the default rules of :func:`engine_core.data.shapes.resolve_shapes` for the dims nobody gave. When some dim was
guessed and the model file is known, the guess is checked with one CPU run of the model (ONNX Runtime, random
inputs); if the model fails, other guesses follow, at most :data:`MAX_ATTEMPTS` runs in all:

* a dim between two fixed dims (``state: [2, ?, 128]``, an RNN state's batch): 1;
* spatial dims (NCHW dims 2-3, ``height``/``width`` names): 32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 448, 512, 640;
* sequence dims (rank-2/3 dims, ``seq``/``len``/``token`` names): 16, 32, 64, 256, 512;
* anything else: 1.

Guessed groups (dims sharing a symbol form one group) are varied one at a time, round robin, the others at their
default; dims between fixed dims go first (a state's batch is the likeliest culprit). The shapes that ran are cached in the workspace (``shapes.json``, atomic), keyed by the model file and the
``--shapes`` given, so the next command skips the search. If nothing runs, one line names each guessed dim and the
``--shapes`` that would fix it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine_core.data.shapes import (
    SEQUENCE_LENGTH,
    SPATIAL_SIZE,
    _role_value,
    _symbol,
    format_dims,
    parse_shapes,
    resolve_shapes,
)
from engine_core.errors import TrtdbgError
from engine_core.types import TensorMeta

MAX_ATTEMPTS = 8
SPATIAL_SIZES = (32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 448, 512, 640)
SEQUENCE_SIZES = (16, 32, 64, 256, 512)
CACHE_FILE = "shapes.json"
Shapes = dict[str, tuple[int, ...]]


@dataclass
class DimGroup:
    """Guessed dims that take one value: ``(input, dim index)`` places, their label and the values to try."""

    label: str
    places: list[tuple[str, int]]
    values: list[int]
    between_fixed: bool = False


@dataclass
class ShapeChoice:
    """Concrete shapes and how they were found."""

    shapes: Shapes
    groups: list[DimGroup] = field(default_factory=list)
    """Guessed dims (none when every dim was fixed or given)."""
    tried: list[tuple[Shapes, str]] = field(default_factory=list)
    """Failed attempts before :attr:`shapes`, with the first line of the model's error."""
    cached: bool = False

    def note(self) -> str | None:
        """One line saying which shapes were chosen when guessed dims had to change (``None`` otherwise)."""
        if not self.tried:
            return None
        shapes = " ".join(f"{n}:{format_dims(s)}" for n, s in self.shapes.items())
        first = " ".join(f"{n}:{format_dims(s)}" for n, s in self.tried[0][0].items())
        source = " (cached)" if self.cached else ""
        return (
            f"default input shapes chosen{source}: {shapes} — the model failed with {first} "
            f"({self.tried[0][1]}); {len(self.tried)} guess(es) failed before; give --shapes to choose"
        )


def _place_label(meta: TensorMeta, index: int) -> str:
    dim = meta.shape[index] if meta.shape else None
    sym = _symbol(dim)
    return f"{meta.name} dim {index} ('{sym}')" if sym else f"{meta.name} dim {index} (anonymous)"


def _between(meta: TensorMeta, index: int) -> bool:
    """True for a dim with fixed dims on both sides (``[2, ?, 128]``)."""
    shape = meta.shape or ()
    fixed = [isinstance(d, int) and d >= 0 for d in shape]
    return 0 < index < len(shape) - 1 and fixed[index - 1] and fixed[index + 1]


def _values(meta: TensorMeta, index: int, default: int) -> list[int]:
    """The default guess, then the other guesses for this dim (module docstring)."""
    shape = meta.shape or ()
    rank = len(shape)
    sym = _symbol(shape[index])
    role = _role_value(sym) if sym else None
    if _between(meta, index):
        others = [1]
    elif role == SPATIAL_SIZE or (role is None and rank == 4 and index >= 2):
        others = list(SPATIAL_SIZES)
    elif role == SEQUENCE_LENGTH or (role is None and rank in (2, 3) and index >= 1):
        others = list(SEQUENCE_SIZES)
    else:
        others = [1]
    return [default] + [v for v in others if v != default]


def guessed_groups(
    metas: Sequence[TensorMeta], overrides: Mapping[str, tuple[int, ...]], first: Shapes
) -> list[DimGroup]:
    """The guessed dims of ``first`` (resolved without probing), grouped by shared symbol."""
    groups: dict[str, DimGroup] = {}
    for meta in metas:
        if meta.name in overrides or meta.shape is None:
            continue
        for index, dim in enumerate(meta.shape):
            if isinstance(dim, int) and dim >= 0:
                continue
            sym = _symbol(dim)
            key = f"sym:{sym}" if sym else f"anon:{meta.name}:{index}"
            if key not in groups:
                values = _values(meta, index, first[meta.name][index])
                groups[key] = DimGroup(
                    _place_label(meta, index), [], values, values[1:] == [1] and _between(meta, index)
                )
            groups[key].places.append((meta.name, index))
    return sorted(groups.values(), key=lambda g: not g.between_fixed)


def _attempts(first: Shapes, groups: Sequence[DimGroup]) -> list[Shapes]:
    """``first``, then one group at a time at its next value (round robin), at most :data:`MAX_ATTEMPTS`."""
    out = [first]
    depth = max((len(g.values) for g in groups), default=0)
    for k in range(1, depth):
        for g in groups:
            if k >= len(g.values):
                continue
            shapes = {n: list(s) for n, s in first.items()}
            for name, index in g.places:
                shapes[name][index] = g.values[k]
            out.append({n: tuple(s) for n, s in shapes.items()})
            if len(out) == MAX_ATTEMPTS:
                return out
    return out


def _cache_key(model_path: str, specs: Sequence[str], metas: Sequence[TensorMeta]) -> str:
    st = os.stat(model_path)
    sig = [(m.name, str(m.dtype), [str(d) for d in (m.shape or ())]) for m in metas]
    return repr((str(Path(model_path).resolve()), st.st_size, st.st_mtime_ns, list(specs), sig))


class _CannotProbe(Exception):
    """ONNX Runtime CPU cannot load the model, so guesses cannot be checked (the default guess stands)."""


def _ort_probe(model_path: str, metas: Sequence[TensorMeta]) -> Callable[[Shapes], str | None]:
    """A function that runs the model once on CPU with random inputs of the given shapes; the error line or None."""
    import onnxruntime as ort

    from engine_core.data.generate import RandomDataLoader

    so = ort.SessionOptions()
    so.log_severity_level = 4
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    session: list[object] = []

    def run(shapes: Shapes) -> str | None:
        if not session:
            try:
                session.append(ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"]))
            except Exception as exc:  # custom ops, unsupported opsets: the guess cannot be checked here
                raise _CannotProbe(str(exc)) from exc
        try:
            feed = RandomDataLoader(metas, shapes).feed(0)
            session[0].run(None, feed)  # type: ignore[attr-defined]
        except Exception as exc:  # onnxruntime raises its own exception types
            text = " ".join(str(exc).split())
            cut = text.find("Status Message:")
            return (text[cut + 16 :] if cut >= 0 else text)[:160] or type(exc).__name__
        return None

    return run


def choose_shapes(
    metas: Sequence[TensorMeta],
    specs: Sequence[str] = (),
    model_path: str | os.PathLike[str] | None = None,
    *,
    probe: bool = True,
    workspace: object | None = None,
    run: Callable[[Shapes], str | None] | None = None,
) -> ShapeChoice:
    """Shapes for ``metas`` from ``--shapes`` ``specs`` and the default rules, checked by running ``model_path``
    (when ``probe`` and some dim was guessed). ``run`` replaces the ONNX Runtime probe (tests)."""
    overrides = parse_shapes(specs)
    first = resolve_shapes(metas, overrides)
    groups = guessed_groups(metas, overrides, first)
    if not groups or not probe or (model_path is None and run is None):
        return ShapeChoice(first, groups)
    ws = None
    key = ""
    if model_path is not None and os.path.isfile(model_path):
        from engine_core.workspace import Workspace

        ws = workspace if workspace is not None else Workspace.for_model(model_path)
        key = _cache_key(str(model_path), specs, metas)
        hit = _read_cache(ws).get(key)
        if hit is not None:
            shapes = {n: tuple(s) for n, s in hit["shapes"].items()}
            before = [({n: tuple(s) for n, s in t.items()}, e) for t, e in hit.get("tried", [])]
            return ShapeChoice(shapes, groups, before, cached=True)
    run = run or _ort_probe(str(model_path), metas)
    tried: list[tuple[Shapes, str]] = []
    for shapes in _attempts(first, groups):
        try:
            error = run(shapes)
        except _CannotProbe:
            return ShapeChoice(first, groups)
        if error is None:
            if ws is not None:
                _write_cache(ws, key, shapes, tried)
            return ShapeChoice(shapes, groups, tried)
        tried.append((shapes, error))
    raise TrtdbgError(_give_up(metas, first, groups, tried))


def _give_up(metas: Sequence[TensorMeta], first: Shapes, groups: Sequence[DimGroup], tried: Sequence) -> str:
    """One line: the model ran with none of the guesses; each guessed dim and the ``--shapes`` that fixes it."""
    guessed = {place: g for g in groups for place in g.places}
    specs = []
    for meta in metas:
        if not any(name == meta.name for name, _ in guessed):
            continue
        dims = [
            f"<{_symbol(meta.shape[i]) or 'dim' + str(i)}>" if (meta.name, i) in guessed else str(d)  # type: ignore[index]
            for i, d in enumerate(first[meta.name])
        ]
        specs.append(f"{meta.name}:{'x'.join(dims)}")
    labels = ", ".join(g.label for g in groups)
    return (
        f"the model failed with every guessed input shape ({len(tried)} tried, first: {tried[0][1]}); guessed dims: "
        f"{labels}; give their sizes with --shapes {','.join(specs)}"
    )


def _read_cache(ws: object) -> dict:
    try:
        doc = ws.read_json(CACHE_FILE)  # type: ignore[attr-defined]
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _write_cache(ws: object, key: str, shapes: Shapes, tried: Sequence[tuple[Shapes, str]]) -> None:
    doc = _read_cache(ws)
    doc[key] = {
        "shapes": {n: list(s) for n, s in shapes.items()},
        "tried": [[{n: list(s) for n, s in t.items()}, e] for t, e in tried],
    }
    try:
        ws.write_json(CACHE_FILE, doc)  # type: ignore[attr-defined]
    except (OSError, TrtdbgError):
        pass  # a read-only workspace only costs the search next time
