"""On-demand detail for one compared tensor: its full error distribution, recomputed from a fresh fetch.

The streaming compare keeps no tensors and skips order statistics (see :mod:`.metrics`); a detail view
(the app's detail pane, a script) calls :func:`tensor_detail` for the one tensor it shows: order
statistics and the abs/rel error histograms (:mod:`.histogram`). The
tensor is fetched again from both sides on the same input sample, with the same ONNX Runtime
optimization level as the original run, so the numbers are those of the original comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from engine_core.comparator.engine import TensorResult
from engine_core.comparator.histogram import ErrorHistogram, error_histograms
from engine_core.comparator.metrics import TensorStats, error_distribution
from engine_core.comparator.request import CompareRequest, _open_model, prepare, resolve_marks
from engine_core.errors import TrtdbgError


@dataclass(frozen=True, slots=True)
class TensorDetail:
    """One tensor's full error picture."""

    stats: TensorStats
    """The result's statistics completed with median, p90/p95/p99, std and the robust relative error."""
    abs_hist: ErrorHistogram
    rel_hist: ErrorHistogram


def tensor_detail(request: CompareRequest, result: TensorResult) -> TensorDetail:
    """``result``'s order statistics and error histograms.

    ``request`` is the request that produced ``result``; the model runs once more on each side (a
    saved side is read from its file), for this tensor and this input sample only.
    """
    _, index = _open_model(request.model)
    wanted, _ = resolve_marks(index, request.marks, request.mark_ops, request.exclude)
    outputs_only = set(wanted) <= set(index.outputs)
    level = request.ort_opt_level or ("all" if outputs_only or request.settings.polygraphy_defaults else "disable")
    one = replace(
        request,
        marks=[result.slot.name],
        mark_ops=[],
        exclude=[],
        ort_opt_level=level,
        save_inputs=None,
        save_outputs=None,
        fail_fast=False,
        mem_budget=None,
    )
    job = prepare(one).job
    if not job.slots or result.iteration >= len(job.feeds):
        raise TrtdbgError(f"cannot fetch '{result.slot.name}' (iteration {result.iteration}) again")
    slot, feed, it = job.slots[0], job.feeds[result.iteration], result.iteration
    sources = [job.reference, job.subject] if job.subject is not job.reference else [job.reference]
    for src in sources:
        src.open()
    try:
        ref = job.reference.fetch(it, feed, [slot.name])[slot.name]
        sub = job.subject.fetch(it, feed, [slot.subject_name])[slot.subject_name]
    finally:
        for src in sources:
            src.close()
    stats = error_distribution(result.stats, sub, ref, request.settings)
    return TensorDetail(stats, *error_histograms(result.slot.name, sub, ref, request.settings))
