"""From user options to a finished report: what the CLI's ``compare`` and the UI's compare screen drive.

:class:`CompareRequest` holds the options; :func:`prepare` loads models, data and sources and plans
the job; :func:`execute` runs it and builds the :class:`CompareReport`. Sides:

* reference: a backend run of MODEL (``--ref``, default ``ort``), a second model (``--ref-model``), or
  saved outputs (``--ref-outputs``);
* subject: a backend run of MODEL (``--subject``), a second model (``--subject-model``, run on
  ``--subject-backend``), or saved outputs (``--load-outputs``). Without a subject only the reference
  runs (useful with ``--save-outputs``).

A saved file may hold several runners (Polygraphy ``run --onnxrt --trt --save-outputs``):
``ref_runner``/``subject_runner`` pick one by name or index; by default the reference is the file's
last runner and the subject its first (Polygraphy's order: the later runner is the reference), with
a warning. A multi-runner file given alone is compared like ``polygraphy run --load-outputs``:
runner i against runner i+1 (:func:`comparisons` makes one request per pair).

Tensors are named, ordered and located by MODEL's index; other models and saved files are matched to
it (exact name first, then structure/Polygraphy's fallback — reported as not exact).
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from engine_core.backend.base import Runner
from engine_core.comparator.checks import ExtraChecks
from engine_core.comparator.engine import CompareJob, Progress, TensorResult, TensorSlot
from engine_core.comparator.matching import Match, Meta, NodeDesc, Unmatched, match_models, match_saved
from engine_core.comparator.report import REFERENCE_ONLY, CompareReport
from engine_core.comparator.restore import model_stamp
from engine_core.comparator.sources import OutputSource, RunnerSource, SavedSource
from engine_core.comparator.tolerances import CompareSettings
from engine_core.data.store import SavedOutputs, load_runs, pick_runner, runner_index, save_inputs, save_runs
from engine_core.errors import TrtdbgError
from engine_core.jobs import JobEvents
from engine_core.model.index import ModelIndex
from engine_core.model.loader import check_external_data, check_runtime_support, load_model
from engine_core.model.weights import estimate_memory, require_memory
from engine_core.options import DataOptions, ToleranceOptions
from engine_core.precision.runner import PrecisionRunner
from engine_core.runners import make_runner
from engine_core.sysinfo import default_mem_budget
from engine_core.types import TensorMeta
from engine_core.workspace import Workspace, atomic_write_text


@dataclass
class CompareRequest:
    """Everything a compare needs, as the user gave it."""

    model: str
    ref: str | None = None
    ref_model: str | None = None
    ref_outputs: str | None = None
    subject: str | None = None
    subject_model: str | None = None
    subject_outputs: str | None = None
    subject_backend: str = "ort"
    ref_runner: str | None = None
    """Runner of a multi-runner ``ref_outputs`` file (name or index); default: its last."""
    subject_runner: str | None = None
    """Runner of a multi-runner ``subject_outputs`` file (name or index); default: its first."""
    marks: list[str] = field(default_factory=list)
    mark_ops: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    tolerances: ToleranceOptions = field(default_factory=ToleranceOptions)
    data: DataOptions = field(default_factory=DataOptions)
    save_inputs: str | None = None
    save_outputs: str | None = None
    fail_fast: bool = False
    mem_budget: int | None = None
    ort_opt_level: str | None = None
    """ONNX Runtime graph optimization level; default: ``disable`` when intermediate tensors are
    compared (fusions would otherwise depend on which tensors are marked), else ``all``."""
    workspace: str | None = None
    plan: str | None = None
    """Precision plan file run by the subject backend (``--plan``; subject default ``ort``)."""
    trt_options: Any = None
    """TensorRT settings for ``trt*`` sides (:class:`~engine_core.backend.trt.runner.TrtOptions`; ``--trt-*``)."""
    checks: ExtraChecks = field(default_factory=ExtraChecks)
    """``--validate``, ``--postprocess``, ``--compare-func``, ``--check-metric``, ``--compare-func-script``."""
    loaded: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """Saved output files already read (path → runners), shared by the requests of :func:`comparisons`."""
    first_failing: str = "any"
    """What the summary's first failing tensor is: ``any`` or ``float`` (``--first-failing``)."""
    order_stats: bool = False
    """Also compute order statistics (median, p90/p95/p99, std) of every tensor (``--order-stats``)."""
    external_data_dir: str | None = None
    """The folder of MODEL's external data files (``--external-data-dir``; default: beside MODEL). The runs of
    MODEL read its weights there; a second model's data stays beside that model."""

    def __post_init__(self) -> None:
        if self.mem_budget is not None and self.mem_budget <= 0:
            raise TrtdbgError(f"--mem-budget must be more than 0 bytes (got {self.mem_budget}); e.g. 512M or 2G")

    @property
    def settings(self) -> CompareSettings:
        """The parsed tolerances."""
        return self.tolerances.settings()


@dataclass
class PreparedCompare:
    """A planned compare: the job plus what the report needs to say about it."""

    job: CompareJob
    reference: OutputSource
    subject: OutputSource | None
    index: ModelIndex
    feeds: list[dict[str, np.ndarray]]
    data: str
    unobservable: dict[str, str]
    unmatched: list[Unmatched]
    warnings: list[str]
    workspace: Workspace
    coverage: Any = None
    """The subject's :class:`~engine_core.precision.coverage.Coverage` when it is a precision subject."""


def unobservable_tensors(index: ModelIndex) -> dict[str, str]:
    """Tensors produced inside If/Loop/Scan subgraphs, with why a runner cannot return them."""
    hidden: dict[str, str] = {}
    for node in index.nodes():
        if node.top_level:
            continue
        for out in node.outputs:
            if out:
                hidden.setdefault(out, f"inside subgraph {node.parent}: only top-level tensors can be outputs")
    return hidden


def _producer_name(index: ModelIndex, tensor: str) -> str | None:
    p = index.producer(tensor)
    return index.name(p) if p is not None else None


def _position(index: ModelIndex, tensor: str) -> int:
    p = index.producer(tensor)
    return p if p is not None else -1


def resolve_marks(
    index: ModelIndex, marks: Sequence[str], mark_ops: Sequence[str], exclude: Sequence[str]
) -> tuple[list[str], dict[str, str]]:
    """Tensors to compare (MODEL's names, graph order) and requested-but-unobservable ones with reasons.

    No marks → the model outputs. ``all``/``*`` → every markable top-level tensor. Other items are
    names or fnmatch patterns; a name that exists nowhere is an error with close matches.
    """
    markable = index.markable()
    markable_set = set(markable)
    unobservable = unobservable_tensors(index)
    chosen: set[str] = set()
    skipped: dict[str, str] = {}
    if not marks and not mark_ops:
        chosen.update(index.outputs)
    for item in marks:
        if item in ("all", "*"):
            chosen.update(markable)
            skipped.update(unobservable)
        elif item in markable_set or item in index.outputs:  # exact names first: `/attn[scale]/Mul` is a name
            chosen.add(item)
        elif item in unobservable:
            skipped[item] = unobservable[item]
        elif any(c in item for c in "*?["):
            hits = [n for n in markable if fnmatch.fnmatchcase(n, item)]
            hidden = {n: r for n, r in unobservable.items() if fnmatch.fnmatchcase(n, item)}
            if not hits and not hidden:
                raise TrtdbgError(f"--mark '{item}' matches no tensor in {index.path or 'the model'}")
            chosen.update(hits)
            skipped.update(hidden)
        else:
            close = difflib.get_close_matches(item, markable, n=3)
            hint = (
                f"; did you mean {', '.join(close)}?" if close else "; `trtdbg inspect MODEL --show layers` lists them"
            )
            raise TrtdbgError(f"--mark: tensor '{item}' does not exist in {index.path or 'the model'}{hint}")
    if mark_ops:
        ops = {o.lower() for o in mark_ops}
        histogram = index.op_histogram(top_level_only=True)
        known_ops = {op.lower() for op in histogram}
        unknown = sorted(ops - known_ops)
        if unknown:
            raise TrtdbgError(
                f"--mark-op: no node of type {', '.join(unknown)} in the model; it has {', '.join(sorted(histogram))}"
            )
        chosen.update(n for n in markable if (p := index.producer(n)) is not None and index.op_type(p).lower() in ops)
    for item in exclude:
        chosen = {n for n in chosen if not (n == item or (item not in markable_set and fnmatch.fnmatchcase(n, item)))}
    ordered = [n for n in markable if n in chosen]
    ordered += [n for n in index.outputs if n in chosen and n not in markable_set]
    return ordered, skipped


def _node_descs(index: ModelIndex) -> list[NodeDesc]:
    return [NodeDesc(n.name, n.op_type, tuple(n.outputs)) for n in index.nodes(top_level_only=True)]


def _open_model(path: str, data_dir: str | None = None) -> tuple[onnx.ModelProto, ModelIndex]:
    """``path`` (weights left external, their files checked in ``data_dir``, default beside it) and its index."""
    model = load_model(path, load_external_data=False)
    check_runtime_support(model, path)
    check_external_data(model, path, data_dir)
    return model, ModelIndex(model, path, data_dir)


def _side(
    spec: str | None,
    other_model: str | None,
    saved: SavedOutputs | None,
    *,
    model: onnx.ModelProto,
    index: ModelIndex,
    wanted: Sequence[str],
    wanted_meta: Callable[[Sequence[str]], dict[str, Meta]],
    check_shapes: bool,
    backend_for_other: str,
    opt_level: str,
    plan: str | None = None,
    trt_options: Any = None,
    data_dir: str | None = None,
) -> tuple[OutputSource, dict[str, Match], dict[str, str], Runner | None]:
    """The source for one side, how MODEL's tensor names map onto it, and why the rest has no counterpart.

    ``plan``: a precision plan for ``spec``; ``wanted_meta`` gives dtype/shape of wanted tensors for
    the compatibility check of fallback matches in saved files; ``data_dir``: where a run of MODEL reads its
    external data (``--external-data-dir``).
    """
    if saved is not None:
        source = SavedSource(saved.path, saved.iterations, saved.runner_name)
        names = source.available() or []
        held = set(names)
        inexact = [n for n in wanted if n not in held]
        first = saved.iterations[0]
        saved_meta = {n: (a.dtype, tuple(a.shape)) for n, a in first.items()} if inexact else {}
        found, missing = match_saved(wanted, names, wanted_meta(inexact), saved_meta, check_shapes)
        where = f"{saved.path} (runner '{saved.runner_name}')"
        return source, found, {n: f"{where}: {why}" for n, why in missing.items()}, None
    if other_model and os.path.splitext(other_model)[1].lower() in (".plan", ".engine", ".trt"):
        from engine_core.backend.trt.plan_runner import TrtPlanRunner

        plan_runner = TrtPlanRunner(other_model, trt_options, inputs=_declared_inputs(index))
        outputs = set(plan_runner.output_names())  # deserializes: needs the engine's GPU
        why = f"{other_model}: not an output of the engine (an engine exposes only its I/O tensors)"
        found = {n: Match(n, "exact") for n in wanted if n in outputs}
        return RunnerSource(plan_runner), found, {n: why for n in wanted if n not in found}, plan_runner
    if other_model:
        m2, idx2 = _open_model(other_model)
        runner = make_runner(
            backend_for_other,
            m2,
            other_model,
            observable=idx2.markable(),
            unobservable=unobservable_tensors(idx2),
            opt_level=opt_level,
            trt_options=trt_options,
        )
        runner.name = f"{backend_for_other}:{other_model}"
        available = set(idx2.markable()) | set(idx2.outputs)
        mapping = match_models(wanted, _node_descs(index), _node_descs(idx2), available)
        why = f"{other_model}: no tensor of that name, nor at the same place in the aligned compute nodes"
        return RunnerSource(runner), mapping, {n: why for n in wanted if n not in mapping}, runner
    runner = make_runner(
        spec or "ort",
        model,
        index.path,
        observable=index.markable(),
        unobservable=unobservable_tensors(index),
        opt_level=opt_level,
        plan=plan,
        trt_options=trt_options,
        data_dir=data_dir,
    )
    return RunnerSource(runner), {n: Match(n, "exact") for n in wanted}, {}, runner


def _loaded_runs(request: CompareRequest, path: str) -> list[tuple[str, list[dict[str, np.ndarray]]]]:
    runs = request.loaded.get(path)
    if runs is None:
        runs = request.loaded[path] = load_runs(path)
    return runs


def _saved_side(request: CompareRequest, role: str, warn: Callable[[str], None]) -> SavedOutputs | None:
    """The chosen runner of the saved file for ``role`` (``reference``/``subject``), or ``None``."""
    path = request.ref_outputs if role == "reference" else request.subject_outputs
    if not path:
        return None
    runs = _loaded_runs(request, path)
    names = [n for n, _ in runs]
    selector, option = (
        (request.ref_runner, "--ref-runner") if role == "reference" else (request.subject_runner, "--subject-runner")
    )
    if selector is not None:
        k = runner_index(names, selector, path, option)
    else:
        k = len(names) - 1 if role == "reference" else 0
        if len(names) > 1:
            listing = ", ".join(f"{i}: {n}" for i, n in enumerate(names))
            warn(
                f"{path} holds {len(names)} runners ({listing}); the {role} is runner {k} '{names[k]}' "
                f"(the {'last' if k else 'first'}: in Polygraphy's order the later runner is the reference); "
                f"choose with {option} NAME|INDEX"
            )
    return pick_runner(runs, path, k)


def comparisons(request: CompareRequest) -> list[CompareRequest]:
    """The requests to run: one, or one per runner pair when a multi-runner file is given alone.

    Alone = saved outputs on one side and no reference/subject option on the other. As
    ``polygraphy run --load-outputs F`` does, runner i (subject) is compared with runner i+1
    (reference); ``--subject-runner``/``--ref-runner`` pick one pair instead.
    """
    from dataclasses import replace

    path = request.subject_outputs or request.ref_outputs
    other = (
        (request.ref or request.ref_model) if request.subject_outputs else (request.subject or request.subject_model)
    )
    if not path or other or (request.subject_outputs and request.ref_outputs) or request.plan:
        return [request]
    runs = _loaded_runs(request, path)
    if len(runs) < 2:
        return [request]
    names = [n for n, _ in runs]
    base = replace(request, ref_outputs=path, subject_outputs=path)
    if request.ref_runner is None and request.subject_runner is None:
        return [
            replace(base, subject_runner=str(i), ref_runner=str(i + 1), loaded=request.loaded)
            for i in range(len(runs) - 1)
        ]
    if request.subject_runner is not None:
        sub = runner_index(names, request.subject_runner, path, "--subject-runner")
        ref = (
            request.ref_runner if request.ref_runner is not None else str(sub + 1 if sub + 1 < len(names) else sub - 1)
        )
        return [replace(base, subject_runner=str(sub), ref_runner=ref, loaded=request.loaded)]
    ref_k = runner_index(names, request.ref_runner, path, "--ref-runner")  # type: ignore[arg-type]
    return [replace(base, subject_runner=str(ref_k - 1 if ref_k else 1), loaded=request.loaded)]


def _declared_inputs(index: ModelIndex) -> list[TensorMeta]:
    """MODEL's inputs as declared (for checking loaded inputs when nothing runs the model)."""
    return [index.tensor_meta(n, infer=False) or TensorMeta(n, np.dtype(np.float32), None) for n in index.inputs]


def _saved_names(index: ModelIndex, saved: Mapping[str, np.ndarray], exclude: Sequence[str]) -> list[str]:
    """A saved file's tensors in MODEL's graph order (names the model lacks last), minus ``exclude``."""
    position: dict[str, int] = {}
    for n in [*index.markable(), *index.outputs]:
        position.setdefault(n, len(position))
    names = [n for n in saved if not any(n == e or fnmatch.fnmatchcase(n, e) for e in exclude)]
    return sorted(names, key=lambda n: position.get(n, len(position)))


def _estimate_bytes(
    model: onnx.ModelProto,
    feed: Mapping[str, np.ndarray],
    names: Sequence[str],
    pinned: Mapping[str, tuple[tuple[int, ...], np.dtype]] | None = None,
) -> dict[str, int]:
    """Size of each tensor for this feed's input shapes (ONNX shape inference with measured shapes
    ``pinned``; unknown sizes omitted)."""
    from engine_core.model.shapes import infer_concrete_sizes

    return infer_concrete_sizes(model, {k: (tuple(v.shape), v.dtype) for k, v in feed.items()}, names, pinned)


def prepare(request: CompareRequest, events: JobEvents | None = None) -> PreparedCompare:
    """Load everything, resolve marks, plan batches; nothing has run yet (warnings go to ``events``, each step to
    ``events.stage``; the runners made here report their own set-up steps there too)."""
    events = events or JobEvents()
    warnings = events.warnings
    warn = events.warn

    workspace = Workspace.for_model(request.model, request.workspace)
    if workspace.note:
        warn(workspace.note)
    events.stage(f"loading {os.path.basename(request.model)}")
    model, index = _open_model(request.model, request.external_data_dir)
    if request.plan and (request.subject_model or request.subject_outputs):
        raise TrtdbgError("--plan applies to a --subject backend run of MODEL, not to --subject-model/--load-outputs")
    ref_saved = _saved_side(request, "reference", warn)
    sub_saved = _saved_side(request, "subject", warn)
    unobservable: dict[str, str] = {}
    if ref_saved and sub_saved and not (request.marks or request.mark_ops):
        # Saved outputs on both sides: compare what the subject file holds, as Polygraphy walks runner 0's outputs.
        wanted = _saved_names(index, sub_saved.iterations[0], request.exclude)
    else:
        events.stage("choosing the tensors to compare", len(index), None, "nodes")
        wanted, unobservable = resolve_marks(index, request.marks, request.mark_ops, request.exclude)
    if not wanted:
        raise TrtdbgError("nothing to compare: the marks select no observable tensor")
    outputs_only = set(wanted) <= set(index.outputs)
    opt_level = request.ort_opt_level or ("all" if outputs_only or request.settings.polygraphy_defaults else "disable")

    def wanted_meta(names: Sequence[str]) -> dict[str, Meta]:
        """dtype/shape of MODEL's tensors: from a saved side holding them, else the model's shape inference."""
        out: dict[str, Meta] = {}
        held = [saved.iterations[0] for saved in (sub_saved, ref_saved) if saved is not None]
        for n in names:
            arr = next((h[n] for h in held if n in h), None)
            meta: Meta | None = (arr.dtype, tuple(arr.shape)) if arr is not None else None
            if meta is None and (m := index.tensor_meta(n)) is not None and m.dtype is not None:
                meta = (m.dtype, m.shape)
            if meta is not None:
                out[n] = meta
        return out

    common = {
        "model": model,
        "index": index,
        "wanted": wanted,
        "wanted_meta": wanted_meta,
        "check_shapes": request.settings.check_shapes,
        "opt_level": opt_level,
        "trt_options": request.trt_options,
        "data_dir": request.external_data_dir,
    }
    events.stage(f"preparing the reference ({_side_text(request.ref, request.ref_model, ref_saved)})")
    ref_src, ref_map, ref_missing, ref_runner = _side(
        request.ref, request.ref_model, ref_saved, backend_for_other=request.ref or "ort", **common
    )
    sub_src: OutputSource | None = None
    sub_map: dict[str, Match] = {}
    sub_missing: dict[str, str] = {}
    sub_runner: Runner | None = None
    if request.subject or request.subject_model or sub_saved or request.plan:
        events.stage(f"preparing the subject ({_side_text(request.subject, request.subject_model, sub_saved)})")
        sub_src, sub_map, sub_missing, sub_runner = _side(
            request.subject,
            request.subject_model,
            sub_saved,
            backend_for_other=request.subject_backend,
            plan=request.plan,
            **common,
        )
        for w in getattr(sub_runner, "warnings", ()):
            warn(w)

    for runner in (ref_runner, sub_runner):
        if runner is not None:
            runner.on_stage = events.on_stage
    live = ref_runner or sub_runner
    metas: list[TensorMeta] = live.input_metadata() if live else _declared_inputs(index)
    if live is None and not request.data.load_inputs:
        feeds_n = len(ref_src.iterations) if isinstance(ref_src, SavedSource) else 1
        feeds: list[dict[str, np.ndarray]] = [{} for _ in range(feeds_n)]
        data_text = "saved outputs on both sides"
    else:
        source, feeds = request.data.read(metas, request.model, events)
        if isinstance(sub_runner, PrecisionRunner):
            sub_runner.set_calibration(feeds)  # INT8 subjects calibrate on these inputs
        for w in source.warnings:
            warn(w)
        data_text = source.describe()
        if not feeds:
            raise TrtdbgError("the data source gave no inputs; check the data loader script or the inputs file")
    if request.save_inputs and feeds and feeds[0]:
        save_inputs(request.save_inputs, feeds)

    unmatched: list[Unmatched] = []
    slots: list[TensorSlot] = []
    explicit = set(index.outputs) | {m for m in request.marks if m not in ("all", "*")}
    for name in wanted:
        r = ref_map.get(name)
        s = sub_map.get(name) if sub_src is not None else Match(name, "exact")
        if r is None or s is None:
            reason = ref_missing.get(name) if r is None else sub_missing.get(name)
            unmatched.append(Unmatched(name, reason or "no counterpart", name in explicit))
            continue
        kind = r.kind if r.kind != "exact" else s.kind
        slots.append(
            TensorSlot(r.subject_name, s.subject_name, _producer_name(index, name), _position(index, name), kind)
        )

    budget = request.mem_budget or default_mem_budget()
    resize = None
    activations = 0
    if len(slots) > 1 and feeds and feeds[0]:
        events.stage("estimating activation sizes", len(slots), None, "tensors")
        slot_names = [s.name for s in slots]
        sizes = _estimate_bytes(model, feeds[0], slot_names)
        for slot in slots:
            slot.est_bytes = sizes.get(slot.name)
        feed0 = feeds[0]
        resize = lambda pinned: _estimate_bytes(model, feed0, slot_names, pinned)  # noqa: E731
        activations = min(budget, 2 * sum(v for v in sizes.values() if v))  # both sides of a batch
    require_memory(f"compare of {request.model}", estimate_memory(model, low_precisions(request), activations))

    job = CompareJob(
        ref_src,
        sub_src or ref_src,
        feeds,
        slots,
        request.settings,
        mem_budget=budget,
        fail_fast=request.fail_fast,
        first_failing=request.first_failing,
        order_stats=request.order_stats,
        resize=resize,
        probe_unknown=request.mem_budget is not None,
    )
    return PreparedCompare(
        job,
        ref_src,
        sub_src,
        index,
        feeds,
        data_text,
        unobservable,
        unmatched,
        warnings,
        workspace,
        getattr(sub_runner, "coverage", None),
    )


def low_precisions(request: CompareRequest) -> list[str]:
    """The low precisions ``request``'s sides convert MODEL's weights to (``ort:fp16`` → ``fp16``; a plan: fp16)."""
    return [spec.partition(":")[2] for spec in (request.ref, request.subject) if spec] + ["fp16"] * bool(request.plan)


def _side_text(spec: str | None, other_model: str | None, saved: SavedOutputs | None) -> str:
    """How a side is named while it is prepared: ``ort:fp16``, a model file, or a saved outputs file."""
    if saved is not None:
        return f"loaded from {os.path.basename(saved.path)}"
    return os.path.basename(other_model) if other_model else spec or "ort"


def execute(request: CompareRequest, events: JobEvents | None = None) -> CompareReport:
    """Prepare and run a compare; return its report (also written to the workspace).

    ``events``: progress (:class:`Progress` per chunk), warnings, each :class:`TensorResult` as an item; setting its
    cancel token stops after the current chunk with a report marked cancelled."""
    events = events or JobEvents()
    prep = prepare(request, events)
    job = prep.job
    job.cancel = events.cancel
    job.on_progress = events.progress
    reference_only = prep.subject is None
    keep_ref: list[dict[str, np.ndarray]] = [{} for _ in prep.feeds]
    keep_sub: list[dict[str, np.ndarray]] = [{} for _ in prep.feeds]
    results: list[TensorResult] = []
    sources = [job.reference] if reference_only else [job.reference, job.subject]
    for k, src in enumerate(sources, 1):
        events.stage(f"starting {src.label}", k, len(sources))
        src.open()
    checks = request.checks
    invalid: list[dict[str, Any]] = []
    to_model = {s.subject_name: s.name for s in job.slots}
    try:
        if reference_only:
            if checks.validate:
                _validate(job.reference, "reference", invalid, {})
            _run_reference(job, keep_ref)
        else:
            if request.save_outputs:
                _keep(job.reference, keep_ref, {s.name: s.name for s in job.slots})
                _keep(job.subject, keep_sub, to_model)
            if checks.validate:
                _validate(job.reference, "reference", invalid, {})
                _validate(job.subject, "subject", invalid, to_model)
            if checks.postprocess:
                _postprocess(job.reference, checks, {})
                _postprocess(job.subject, checks, to_model)
            if checks.active:
                job.judge = checks.judge
            for result in job.results():
                results.append(result)
                events.item(result)
    finally:
        for src in sources:
            src.close()
    if request.save_outputs:
        _save_sides(request.save_outputs, job, keep_ref, None if reference_only else keep_sub, prep)
    report = CompareReport(
        reference=job.reference.label,
        subject=job.subject.label if not reference_only else REFERENCE_ONLY,
        results=results,
        summary=job.summary,
        model=request.model,
        data=prep.data,
        iterations=len(prep.feeds),
        settings={**request.settings.describe(), **checks.describe()},
        validation=invalid if checks.validate else None,
        unobservable=prep.unobservable,
        unmatched=prep.unmatched,
        warnings=prep.warnings,
        precision_coverage=prep.coverage.to_json() if prep.coverage else None,
        coverage_text=prep.coverage.text() if prep.coverage else "",
    )
    atomic_write_text(prep.workspace.path("last_compare.json"), _summary_json(report))
    return report


def _run_reference(job: CompareJob, keep: list[dict[str, np.ndarray]]) -> None:
    """Reference-only run: fetch every batch for every feed (nothing to compare against)."""
    done = 0
    for bi, planned, it, _, batch, fetched in job.reference_batches():
        keep[it].update(fetched)
        done += len(batch)
        if job.on_progress:
            job.on_progress(Progress(done, job.total, bi, planned))


def _after_fetch(source: OutputSource, after: Callable[[int, dict[str, np.ndarray]], dict[str, np.ndarray]]) -> None:
    """Make ``source.fetch`` hand what it fetched for an iteration through ``after(iteration, tensors)``."""
    original = source.fetch

    def fetch(iteration: int, feed: Mapping[str, np.ndarray], wanted: Sequence[str]) -> dict[str, np.ndarray]:
        return after(iteration, original(iteration, feed, wanted))

    source.fetch = fetch  # type: ignore[method-assign, assignment]


def _keep(source: OutputSource, keep: list[dict[str, np.ndarray]], names: Mapping[str, str]) -> None:
    """Keep ``source``'s tensors for ``--save-outputs``, under MODEL's names (``names``)."""

    def kept(iteration: int, out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        keep[iteration].update((names.get(k, k), v) for k, v in out.items())
        return out

    _after_fetch(source, kept)


def _validate(source: OutputSource, side: str, found: list[dict[str, Any]], names: Mapping[str, str]) -> None:
    """``--validate``: record every NaN/Inf that ``source`` returns (Polygraphy ``Comparator.validate``)."""

    def checked(iteration: int, out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for k, v in out.items():
            a = np.asarray(v)
            if a.dtype.kind in "fc":
                nan = int(np.count_nonzero(np.isnan(a)))
                inf = int(np.count_nonzero(np.isinf(a)))
                if nan or inf:
                    found.append(
                        {"side": side, "name": names.get(k, k), "iteration": iteration, "nan": nan, "inf": inf}
                    )
        return out

    _after_fetch(source, checked)


def _postprocess(source: OutputSource, checks: ExtraChecks, names: Mapping[str, str]) -> None:
    """``--postprocess``: replace fetched tensors by their Top-K indices before they are compared."""
    _after_fetch(source, lambda _, out: {k: checks.postprocessed(names.get(k, k), v) for k, v in out.items()})


def _runner_name(source: OutputSource) -> str:
    return source.runner_name if isinstance(source, SavedSource) else source.label


def _save_sides(
    path: str,
    job: CompareJob,
    keep_ref: list[dict[str, np.ndarray]],
    keep_sub: list[dict[str, np.ndarray]] | None,
    prep: PreparedCompare,
) -> None:
    """``--save-outputs``: one RunResults with the subject then the reference (Polygraphy's order, so
    ``polygraphy run --load-outputs F`` compares them as trtdbg did), each tensor under MODEL's name."""
    order = [s.name for s in job.slots]
    ref_name = _runner_name(job.reference)

    def ordered(its: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        return [{n: it[n] for n in order if n in it} for it in its]

    if keep_sub is None:
        save_runs(path, [(ref_name, ordered(keep_ref))])
        return
    sub_name = _runner_name(job.subject)
    if sub_name == ref_name:
        sub_name += " (subject)"
    if path.lower().endswith(".npz"):
        prep.warnings.append(f"{path}: an .npz holds one runner, so only the reference was saved; use .json for both")
        save_runs(path, [(ref_name, ordered(keep_ref))])
        return
    save_runs(path, [(sub_name, ordered(keep_sub)), (ref_name, ordered(keep_ref))])


def _summary_json(report: CompareReport) -> str:
    """The workspace's ``last_compare.json``: the report with its failing tensors only (at most 1000)."""
    failing = [r for r in report.results if not r.stats.passed][:1000]
    note = {
        "tensors_note": "failing tensors only (at most 1000); rerun with --json for all",
        "saved_at": time.time(),
        "model_stamp": model_stamp(report.model) if report.model else None,
    }
    return CompareReport(**{**report.__dict__, "results": failing}).dumps(extra=note) + "\n"
