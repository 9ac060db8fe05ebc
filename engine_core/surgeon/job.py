"""The surgeon job both front ends run: load the model, apply one edit, check it, write the result.

``trtdbg surgeon extract|sanitize|insert|prune`` and the app's surgeon dialogs build a :class:`SurgeryRequest` (the
user's text as typed) and call :func:`run_surgery`. The model's weights are loaded only when they live in external
files (they must be copied); the output is written atomically and never over the model or its data files; a
sanitized model must give the original's outputs on the request's input data, else nothing is written.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onnx import ModelProto

from engine_core.errors import TrtdbgError
from engine_core.options import DataOptions
from engine_core.surgeon.changes import ChangeSummary, EditResult

KINDS = ("extract", "sanitize", "insert", "prune")


@dataclass
class SurgeryRequest:
    """One edit as the user gave it (strings as typed; :func:`run_surgery` parses and checks them)."""

    kind: str
    """``extract``, ``sanitize``, ``insert`` or ``prune``."""
    model: str
    output: str
    inputs: Sequence[str] = ()
    """extract: ``NAME[:SHAPE[:DTYPE]]`` cut points (none: the model inputs needed); insert: tensors read."""
    outputs: Sequence[str] = ()
    """extract: ``NAME[:DTYPE]``; insert: tensors written."""
    shapes: Sequence[str] = ()
    """extract, prune: input shapes for the fallback ONNX Runtime run that measures unknown tensors."""
    op: str = ""
    attrs: Sequence[str] = ()
    """insert: ``K=V`` attributes, values as Python literals."""
    name: str = ""
    domain: str = ""
    nodes: Sequence[str] = ()
    """prune: node names."""
    as_inputs: bool = False
    """prune: needed outputs of removed nodes become graph inputs (else readers are bypassed to the first input)."""
    fold_constants: bool = False
    cleanup: bool = False
    toposort: bool = False
    input_shapes: Sequence[str] = ()
    """sanitize: ``NAME:1x3x640x640`` overrides of the model's input shapes."""
    fold_shapes: bool = True
    fold_size_threshold: int | None = None
    max_passes: int | None = None
    verify: bool = True
    """sanitize: run both models on ``data`` and refuse a result whose outputs differ."""
    data: DataOptions = field(default_factory=DataOptions)
    external_data: bool = False
    """Write weights to ``OUTPUT.data`` beside the model (required above 2 GB)."""
    external_data_threshold: int = 1024
    external_data_dir: str | None = None
    """Folder of the model's external data (default: beside the model)."""
    save_inputs: str | None = None
    """extract: also write the real values of the piece's inputs here (Polygraphy inputs JSON, a folder or .npz),
    computed by running the full model on ``data``; ``""``: beside the output, ``<OUT stem>_inputs.json``."""


@dataclass
class Verification:
    """The sanitized model gave the original's outputs on these samples."""

    samples: int
    data: str
    max_abs: dict[str, float]
    """Output name → largest absolute difference."""

    def to_json(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "data": self.data,
            "outputs": [{"name": k, "max_abs": v} for k, v in self.max_abs.items()],
        }

    def to_text(self) -> str:
        worst = max(self.max_abs.values(), default=0.0)
        return f"outputs equal to the original on {self.samples} sample(s) ({self.data}); max |diff| {worst:.3g}"


@dataclass
class SurgeryResult:
    """What was written and what changed."""

    kind: str
    written: list[Path]
    changes: ChangeSummary
    verified: Verification | None
    seconds: float
    inputs_saved: Path | None = None
    """extract with ``save_inputs``: the piece's real input values."""
    inputs_data: str = ""
    """What data those values were computed from."""

    @property
    def compare_command(self) -> str | None:
        """The command that compares the extracted piece alone on its real inputs (``None`` without them)."""
        if self.inputs_saved is None:
            return None
        return f"trtdbg compare {shlex.quote(str(self.written[0]))} --load-inputs {shlex.quote(str(self.inputs_saved))}"


def inputs_path(output: str) -> str:
    """Where ``save_inputs=""`` writes: ``piece.onnx`` → ``piece_inputs.json`` beside it."""
    out = Path(output)
    return str(out.with_name(out.stem + "_inputs.json"))


def run_surgery(request: SurgeryRequest, on_warning: Callable[[str], None] | None = None) -> SurgeryResult:
    """Load, edit, check and write; raises :class:`TrtdbgError` (one line) on bad input, nothing written then.

    ``on_warning`` receives what the input data source warns about (sanitize's equal-outputs check).
    """
    from engine_core.model.save import save_model

    start = time.perf_counter()
    if request.kind not in KINDS:
        raise TrtdbgError(f"unknown surgery '{request.kind}'; choose one of {', '.join(KINDS)}")
    if request.max_passes is not None and request.max_passes < 1:
        raise TrtdbgError("--num-passes must be at least 1")
    model, protect = _load(request)
    if request.save_inputs is not None and request.kind != "extract":
        raise TrtdbgError("--save-inputs applies to extract only")
    saves = inputs_path(request.output) if request.save_inputs == "" else request.save_inputs
    if saves is not None and any(Path(saves).resolve() == Path(p).resolve() for p in [*protect, request.output]):
        raise TrtdbgError(
            f"--save-inputs {saves} would overwrite the model, its data or the output; choose another file"
        )
    verified = None
    feeds: list[dict[str, Any]] = []
    data_text = ""
    if request.kind == "extract":
        result = _extract(request, model)
        if saves is not None:
            from engine_core.surgeon.extract import piece_inputs

            feeds, data_text = piece_inputs(model, request.model, result.model, request.data)
    elif request.kind == "sanitize":
        result = _sanitize(request, model)
        if request.verify:
            verified = _verify(request, model, result.model, on_warning)
    elif request.kind == "insert":
        result = _insert(request, model)
    else:
        result = _prune(request, model)
    written = save_model(
        result.model,
        request.output,
        external_data=request.external_data,
        threshold=request.external_data_threshold,
        protect=protect,
        base=request.external_data_dir or Path(request.model).resolve().parent,
    )
    if saves is not None:
        from engine_core.data.store import save_inputs

        save_inputs(saves, feeds)
    return SurgeryResult(
        request.kind,
        list(written),
        result.changes,
        verified,
        time.perf_counter() - start,
        Path(saves) if saves is not None else None,
        data_text,
    )


def _load(request: SurgeryRequest) -> tuple[ModelProto, list[str]]:
    """The model (external weights stay in their files, read on demand) and the files the output must not
    overwrite."""
    from engine_core.model.loader import check_external_data, load_model
    from engine_core.model.save import check_output_path, external_data_files
    from engine_core.model.weights import PROTOBUF_LIMIT, estimate_memory, require_memory, weights_bytes

    model = load_model(request.model, load_external_data=False, external_data_dir=request.external_data_dir)
    base = request.external_data_dir or Path(request.model).parent
    check_external_data(model, request.model, base)
    protect = [request.model, *map(str, external_data_files(model, base))]
    check_output_path(request.output, protect, external_data=request.external_data)
    # an output without --external-data (below 2 GB) is one protobuf: its weights are gathered, then serialized
    embedded = not request.external_data and weights_bytes(model) <= PROTOBUF_LIMIT
    require_memory(
        f"surgeon {request.kind} of {request.model}",
        estimate_memory(model, copies=2 * embedded),
        "free memory" + ("" if request.external_data else ", or write the weights apart with --external-data"),
    )
    return model, protect


def _extract(request: SurgeryRequest, model: ModelProto) -> EditResult:
    from engine_core.surgeon.extract import extract, parse_tensor_specs
    from engine_core.surgeon.graph import top_level_tensors

    known = top_level_tensors(model)
    where = request.model
    inputs = parse_tensor_specs(request.inputs, known, "--inputs", where, with_shape=True) if request.inputs else None
    outputs = parse_tensor_specs(request.outputs, known, "--outputs", where, with_shape=False)
    return extract(model, inputs, outputs, path=where, fallback_shapes=request.shapes)


def _sanitize(request: SurgeryRequest, model: ModelProto) -> EditResult:
    from engine_core.data.shapes import parse_shapes
    from engine_core.surgeon.sanitize import SanitizeOptions, sanitize

    options = SanitizeOptions(
        fold_constants=request.fold_constants,
        cleanup=request.cleanup,
        toposort=request.toposort,
        override_input_shapes=parse_shapes(request.input_shapes),
        fold_shapes=request.fold_shapes,
        fold_size_threshold=request.fold_size_threshold,
        max_passes=request.max_passes,
    )
    return sanitize(model, options, path=request.model)


def _verify(
    request: SurgeryRequest, original: ModelProto, edited: ModelProto, on_warning: Callable[[str], None] | None
) -> Verification:
    """Run the original and the edited model on the request's data; raise when an output differs."""
    from engine_core.backend.ort import OrtRunner
    from engine_core.surgeon.verify import compare_models

    with OrtRunner(edited, request.model, opt_level="disable") as runner:
        metas = runner.input_metadata()
    source = request.data.source(metas, model=request.model)  # guessed shapes checked by running the original
    feeds = list(source)
    for w in source.warnings:
        if on_warning is not None:
            on_warning(w)
    diffs = compare_models(original, request.model, edited, feeds)
    bad = next((d for d in diffs if not d.equal), None)
    if bad is not None:
        raise TrtdbgError(
            f"the sanitized model's output '{bad.name}' differs from the original ({bad.reason}); nothing written — "
            f"turn off constant folding, or skip the equal-outputs check (--no-verify)"
        )
    return Verification(len(feeds), source.describe(), {d.name: d.max_abs for d in diffs})


def _insert(request: SurgeryRequest, model: ModelProto) -> EditResult:
    from engine_core.surgeon.extract import split_items
    from engine_core.surgeon.insert import insert_node, parse_attrs

    if not request.op.strip():
        raise TrtdbgError("insert: give the op type, e.g. Identity or Clip")
    return insert_node(
        model,
        request.op.strip(),
        split_items(request.inputs),
        split_items(request.outputs),
        attrs=parse_attrs(request.attrs),
        name=request.name.strip() or None,
        domain=request.domain,
        path=request.model,
    )


def _prune(request: SurgeryRequest, model: ModelProto) -> EditResult:
    from engine_core.surgeon.extract import split_items
    from engine_core.surgeon.prune import prune_nodes

    return prune_nodes(
        model,
        split_items(request.nodes),
        as_inputs=request.as_inputs,
        path=request.model,
        fallback_shapes=request.shapes,
    )
