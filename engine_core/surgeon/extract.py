"""``surgeon extract``: cut the sub-graph between given tensors into a model of its own.

Input and output metadata (dtype, shape) comes from the user's spec, else ONNX shape inference, else one
ONNX Runtime run of the original model on generated data (dynamic dims then become that run's sizes).
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
from onnx import ModelProto, ValueInfoProto, helper

from engine_core.errors import TrtdbgError
from engine_core.model.index import ModelIndex
from engine_core.options import DataOptions
from engine_core.surgeon.changes import EditResult, summarize
from engine_core.surgeon.graph import (
    check_top_level,
    make_value_info,
    rebuild,
    top_level_deps,
    top_level_tensors,
    unknown_tensor_error,
    validate,
)
from engine_core.types import Dim, TensorMeta

SPEC_SYNTAX = "NAME[:SHAPE[:DTYPE]] with SHAPE like 1x3x224x224, [1,3,h,w] or auto, DTYPE like float32 or auto"
_X_SHAPE = re.compile(r"\d+(?:x\d+)*")


@dataclass(frozen=True)
class TensorSpec:
    """A tensor to cut at; ``None`` shape/dtype means "find out"."""

    name: str
    shape: tuple[Dim, ...] | None = None
    dtype: np.dtype | None = None


def split_items(values: Sequence[str]) -> list[str]:
    """Split comma-separated specs, keeping commas inside ``[...]``."""
    items: list[str] = []
    for value in values:
        depth, start = 0, 0
        for i, ch in enumerate(value):
            depth += ch == "["
            depth -= ch == "]"
            if ch == "," and depth == 0:
                items.append(value[start:i])
                start = i + 1
        items.append(value[start:])
    return [s.strip() for s in items if s.strip()]


def _parse_shape(text: str, item: str) -> tuple[Dim, ...] | None:
    text = text.strip()
    if text == "auto":
        return None
    if _X_SHAPE.fullmatch(text):
        return tuple(int(d) for d in text.split("x"))
    if text.startswith("[") and text.endswith("]"):
        body = text[1:-1].strip()
        dims: list[Dim] = []
        for part in (p.strip().strip("'\"") for p in body.split(",")) if body else ():
            if re.fullmatch(r"\d+", part):
                dims.append(int(part))
            elif part in ("?", "-1"):
                dims.append(None)
            elif re.fullmatch(r"[A-Za-z_][\w.]*", part):
                dims.append(part)
            else:
                raise TrtdbgError(f"bad dimension '{part}' in {item!r}; use an integer, a name or ?")
        return tuple(dims)
    raise TrtdbgError(f"bad shape '{text}' in {item!r}; expected {SPEC_SYNTAX}")


def parse_dtype(text: str, item: str) -> np.dtype | None:
    """``auto`` → ``None``; else a numpy dtype ONNX can store."""
    text = text.strip()
    if text == "auto":
        return None
    try:
        dtype = np.dtype(text)
        helper.np_dtype_to_tensor_dtype(dtype)
    except (TypeError, KeyError, ValueError):
        raise TrtdbgError(
            f"unknown dtype '{text}' in {item!r}; use e.g. float32, float16, int64, bool or auto"
        ) from None
    return dtype


def _looks_like_dtype(text: str) -> bool:
    return text == "auto" or bool(re.fullmatch(r"[a-z]+\d*", text.strip()))


def parse_tensor_specs(
    items: Sequence[str], known: Collection[str], option: str, where: str, *, with_shape: bool
) -> list[TensorSpec]:
    """Parse ``NAME[:SHAPE[:DTYPE]]`` (inputs) or ``NAME[:DTYPE]`` (outputs); names may contain ``:``."""
    specs: list[TensorSpec] = []
    for item in split_items(items):
        if item in known:
            specs.append(TensorSpec(item))
            continue
        spec = None
        for cut in (2, 1) if with_shape else (1,):
            parts = item.rsplit(":", cut)
            if len(parts) != cut + 1 or parts[0] not in known:
                continue
            rest = parts[1:]
            if cut == 2:
                spec = TensorSpec(parts[0], _parse_shape(rest[0], item), parse_dtype(rest[1], item))
            elif with_shape and not _looks_like_dtype(rest[0]):
                spec = TensorSpec(parts[0], _parse_shape(rest[0], item))
            else:
                spec = TensorSpec(parts[0], None, parse_dtype(rest[0], item))
            break
        if spec is None:
            raise unknown_tensor_error(_guess_name(item), known, option, where)
        specs.append(spec)
    return specs


def _guess_name(item: str) -> str:
    """The part of an unknown spec that is meant as the name (trailing shape/dtype parts dropped)."""
    name = item
    for _ in range(2):
        head, sep, tail = name.rpartition(":")
        if (
            not sep
            or not head
            or not (
                tail == "auto" or _X_SHAPE.fullmatch(tail) or tail.startswith("[") or re.fullmatch(r"[a-z]+\d*", tail)
            )
        ):
            break
        name = head
    return name


def _conflict(spec_shape: Sequence[Dim], known: Sequence[Dim]) -> bool:
    if len(spec_shape) != len(known):
        return True
    return any(
        isinstance(a, int) and isinstance(b, int) and a >= 0 and b >= 0 and a != b for a, b in zip(spec_shape, known)
    )


def _fmt(shape: Sequence[Dim] | None) -> str:
    return "unknown" if shape is None else "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def merge_meta(index: ModelIndex, spec: TensorSpec, option: str) -> TensorMeta:
    """The user's spec completed by what the graph knows; contradictions are errors. May leave parts ``None``."""
    known = index.tensor_meta(spec.name)
    dtype, shape = spec.dtype, spec.shape
    if known is not None:
        if dtype is not None and np.dtype(dtype) != np.dtype(known.dtype):
            raise TrtdbgError(
                f"{option}: dtype {np.dtype(dtype).name} for '{spec.name}' contradicts the graph "
                f"({np.dtype(known.dtype).name}); use {np.dtype(known.dtype).name} or auto"
            )
        if shape is not None and known.shape is not None and _conflict(shape, known.shape):
            raise TrtdbgError(
                f"{option}: shape {_fmt(shape)} for '{spec.name}' contradicts the graph "
                f"({_fmt(known.shape)}); keep its rank and fixed dims, or use auto"
            )
        dtype = dtype if dtype is not None else known.dtype
        shape = shape if shape is not None else known.shape
    return TensorMeta(spec.name, dtype, shape)


def measure_tensors(
    model: ModelProto, path: str | os.PathLike[str] | None, names: Sequence[str], shapes: Sequence[str] = ()
) -> dict[str, TensorMeta]:
    """dtype and concrete shape of top-level tensors from one ONNX Runtime run on generated inputs."""
    from engine_core.backend.ort import OrtRunner
    from engine_core.data.source import make_data_source

    with OrtRunner(model, path, opt_level="disable") as runner:
        feed = next(iter(make_data_source(runner.input_metadata(), shapes=shapes)))
        computed = [n for n in names if n not in feed]
        values = runner.infer(feed, computed) if computed else {}
    values.update({n: feed[n] for n in names if n in feed})
    return {n: TensorMeta(n, values[n].dtype, tuple(values[n].shape)) for n in names}


def piece_inputs(
    model: ModelProto, path: str | os.PathLike[str] | None, piece: ModelProto, data: DataOptions
) -> tuple[list[dict[str, np.ndarray]], str]:
    """The real values of ``piece``'s graph inputs, one feed per sample of ``data``, and a description of the data.

    Each sample runs the full ``model`` once in ONNX Runtime (no graph optimisation, as every trtdbg
    reference run of intermediate tensors) with the piece's inputs marked; a piece input that is a graph input
    of ``model`` is taken from the sample itself. Values that do not fit the piece's declared dtype or static
    dims raise one line (the piece was cut with other shapes than the data has).
    """
    from engine_core.backend.ort import OrtRunner

    init = {t.name for t in piece.graph.initializer}
    wanted = [vi for vi in piece.graph.input if vi.name not in init]
    names = [vi.name for vi in wanted]
    feeds: list[dict[str, np.ndarray]] = []
    with OrtRunner(model, path, opt_level="disable") as runner:
        source = data.source(runner.input_metadata(), model=path)
        for feed in source:
            computed = [n for n in names if n not in feed]
            values = runner.infer(feed, computed) if computed else {}
            feeds.append({n: np.asarray(feed[n] if n in feed else values[n]) for n in names})
    for vi in wanted:
        _check_fits(vi, feeds[0][vi.name] if feeds else None)
    return feeds, source.describe()


def _check_fits(vi: ValueInfoProto, value: np.ndarray | None) -> None:
    if value is None:
        return
    t = vi.type.tensor_type
    dtype = helper.tensor_dtype_to_np_dtype(t.elem_type) if t.elem_type else None
    dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim] if t.HasField("shape") else None
    fits = (dtype is None or value.dtype == dtype) and (
        dims is None or (len(dims) == value.ndim and all(d is None or d == v for d, v in zip(dims, value.shape)))
    )
    if not fits:
        declared = f"{dtype}{dims}" if dims is not None else str(dtype)
        raise TrtdbgError(
            f"input '{vi.name}' of the extracted model is declared {declared}, but the data gives "
            f"{value.dtype}{list(value.shape)}; cut with the data's shapes (SHAPE auto) or give matching --shapes"
        )


def extract(
    model: ModelProto,
    inputs: Sequence[TensorSpec] | None,
    outputs: Sequence[TensorSpec],
    *,
    path: str | None = None,
    fallback_shapes: Sequence[str] = (),
) -> EditResult:
    """The sub-graph computing ``outputs`` from ``inputs`` (initializers and constants come along).

    ``inputs=None`` cuts at the model's own graph inputs that the outputs need.
    ``fallback_shapes`` (``NAME:1x3x224x224``) shape the generated inputs of the fallback ONNX Runtime run.
    Raises when a name is unknown or inside a subgraph, when the outputs need a graph input not listed in
    ``inputs``, or when the result does not pass the ONNX checker and load in ONNX Runtime.
    """
    where = path or "the model"
    if not outputs:
        raise TrtdbgError("extract: give at least one output tensor with --outputs")
    known = top_level_tensors(model)
    index = ModelIndex(model, path)
    for option, specs in (("--inputs", inputs or ()), ("--outputs", outputs)):
        names = [s.name for s in specs]
        for name in names:
            if name not in known:
                check_top_level(index, name, known, option, where)
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise TrtdbgError(f"{option}: '{dup}' is given twice; list each tensor once")
    deps = top_level_deps(index)
    init = set(index.initializer_names)
    graph_inputs = {vi.name for vi in model.graph.input} - init
    input_set = {s.name for s in inputs or ()}
    for s in outputs:
        if s.name in init and s.name not in input_set:
            raise TrtdbgError(
                f"--outputs: '{s.name}' is an initializer (a constant), not a computed tensor; choose a node output"
            )
    nodes: set[int] = set()
    reached: set[str] = set()
    missing: list[str] = []
    seen: set[str] = set()
    stack = [s.name for s in outputs]
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        if t in input_set:
            reached.add(t)
            continue
        p = index.producer(t)
        if p is None:
            if t in graph_inputs:
                missing.append(t)
            continue
        if p not in nodes:
            nodes.add(p)
            stack.extend(deps[p])
    clash = next(((i, o) for i in sorted(nodes) for o in index.node_outputs(i) if o in input_set), None)
    if clash is not None:
        raise TrtdbgError(
            f"--inputs '{clash[1]}' is also computed inside the cut: node '{index.name(clash[0])}' makes it "
            f"and another tensor the outputs need; list its other outputs in --inputs too, or cut at its inputs"
        )
    if inputs is None:
        inputs = [TensorSpec(vi.name) for vi in model.graph.input if vi.name in missing]
        reached.update(missing)
    elif missing:
        raise TrtdbgError(
            f"the outputs need graph input(s) {', '.join(sorted(missing))}, which --inputs does not list; "
            f"add them to --inputs"
        )
    metas = {s.name: merge_meta(index, s, "--inputs") for s in inputs}
    metas.update({s.name: merge_meta(index, s, "--outputs") for s in outputs if s.name not in metas})
    unknown = [n for n, m in metas.items() if m.dtype is None or m.shape is None]
    notes: list[str] = []
    if unknown:
        measured = measure_tensors(model, path, unknown, fallback_shapes)
        for n in unknown:
            m = metas[n]
            metas[n] = TensorMeta(
                n,
                m.dtype if m.dtype is not None else measured[n].dtype,
                m.shape if m.shape is not None else measured[n].shape,
            )
        notes.append(f"shape/dtype of {', '.join(unknown)} measured with ONNX Runtime on generated inputs")
    unused = [s.name for s in inputs if s.name not in reached]
    if unused:
        notes.append(f"input(s) {', '.join(unused)} feed none of the outputs (kept as graph inputs)")
    new = rebuild(
        model,
        (index.node_proto(i) for i in sorted(nodes)),
        [make_value_info(s.name, metas[s.name].dtype, metas[s.name].shape) for s in inputs],
        [make_value_info(s.name, metas[s.name].dtype, metas[s.name].shape) for s in outputs],
    )
    notes += validate(new, "the extracted model", "check the --inputs/--outputs names, shapes and dtypes", path)
    return EditResult(new, summarize("extract", model, new, notes))
