"""On-demand detail for one compared tensor: its full error distribution, recomputed from a fresh fetch.

The streaming compare keeps no tensors and skips order statistics (see :mod:`.metrics`); a detail view
(the app's detail pane, a script) asks for the one tensor it shows: order statistics and the abs/rel error
histograms (:mod:`.histogram`). The tensor is fetched again from both sides on the same input sample, with the
same ONNX Runtime optimization level as the original run, so the numbers are those of the original comparison.

:class:`DetailFetcher` prepares a compare's sides once (models, precision rewrites, sessions exposing every
compared tensor, input data) and fetches tensor after tensor on them; :func:`tensor_detail` is a one-off fetch
(prepared for that tensor alone).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

import numpy as np

from engine_core.comparator.engine import CompareJob, TensorResult
from engine_core.comparator.histogram import ErrorHistogram, error_histograms
from engine_core.comparator.metrics import TensorStats, error_distribution
from engine_core.comparator.request import (
    CompareRequest,
    PreparedCompare,
    _open_model,
    low_precisions,
    prepare,
    resolve_marks,
)
from engine_core.errors import TrtdbgError
from engine_core.model.weights import estimate_memory
from engine_core.sysinfo import available_memory


@dataclass(frozen=True, slots=True)
class TensorDetail:
    """One tensor's full error picture."""

    stats: TensorStats
    """The result's statistics completed with median, p90/p95/p99, std and the robust relative error."""
    abs_hist: ErrorHistogram
    rel_hist: ErrorHistogram


class DetailFetcher:
    """Tensor details of one compare's results, its sides prepared once and reused for every tensor.

    The first :meth:`detail` prepares ``request`` as the compare did (same marks, so the same ONNX Runtime
    optimization level; the same input data and batches under the same memory budget) with no output files and
    opens both sides; each fetch exposes the compare's batch of its tensor on them
    (:meth:`~engine_core.comparator.sources.OutputSource.expose`), so the next tensors of that batch run the kept
    sessions (ONNX Runtime still runs the whole graph, keeping the batch's tensors: a batch is what the budget
    allows at once). :meth:`close` releases them (a later :meth:`detail` prepares again);
    they are released by themselves when less memory is left free than they hold (the compare's
    :func:`~engine_core.model.weights.estimate_memory` of the weights and their low-precision copies).

    Thread-safe: one fetch runs at a time (a lock); :meth:`close` never waits for a fetch in flight, which then
    releases when it ends.
    """

    def __init__(self, request: CompareRequest) -> None:
        self.request = request
        """The request that produced the results asked about."""
        self.preparations = 0
        """How many times the sides were prepared (1 while they stay open)."""
        self._lock = threading.Lock()
        self._prepared: PreparedCompare | None = None
        self._held = 0
        self._release = False
        self._batch_of: dict[str, int] = {}
        self._exposed: int | None = None

    def detail(self, result: TensorResult) -> TensorDetail:
        """``result``'s order statistics and error histograms (``result`` is one of the request's results)."""
        with self._lock:
            self._release = False
            try:
                prep = self._prepared or self._prepare()
                job = prep.job
                if result.iteration >= len(job.feeds):
                    raise TrtdbgError(f"cannot fetch '{result.slot.name}' (iteration {result.iteration}) again")
                it, feed = result.iteration, job.feeds[result.iteration]
                self._expose(job, self._batch_of.get(result.slot.name))
                ref = job.reference.fetch(it, feed, [result.slot.name])[result.slot.name]
                sub = job.subject.fetch(it, feed, [result.slot.subject_name])[result.slot.subject_name]
            finally:
                avail = available_memory()
                if self._release or (avail is not None and avail < self._held):
                    self._close()
        return _detail(self.request, result, sub, ref)

    def close(self) -> None:
        """Release the prepared sides now, or when the fetch in flight ends."""
        self._release = True
        if self._lock.acquire(blocking=False):
            try:
                self._close()
            finally:
                self._lock.release()

    def _prepare(self) -> PreparedCompare:
        request = self.request
        once = replace(request, save_inputs=None, save_outputs=None, fail_fast=False)
        prep = prepare(once)
        job = prep.job
        self._batch_of = {s.name: b for b, batch in enumerate(job.batches) for s in batch}
        self._exposed = None
        for src in job.sources:
            src.open()
        self._prepared = prep
        self._held = estimate_memory(prep.index.model, low_precisions(request))
        self.preparations += 1
        return prep

    def _expose(self, job: CompareJob, batch: int | None) -> None:
        """Expose the compare's batch ``batch`` on both sides (a tensor in no batch gets a session of its own)."""
        if batch is None or batch == self._exposed:
            return
        slots = job.batches[batch]
        for src, names in zip(job.sources, ([s.name for s in slots], [s.subject_name for s in slots])):
            src.expose(names)
        self._exposed = batch

    def _close(self) -> None:
        prep, self._prepared = self._prepared, None
        if prep is not None:
            for src in prep.job.sources:
                src.close()

    def __enter__(self) -> DetailFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tensor_detail(request: CompareRequest, result: TensorResult) -> TensorDetail:
    """``result``'s order statistics and error histograms, from a one-off fetch (a :class:`DetailFetcher` serves
    several tensors of one compare faster).

    ``request`` is the request that produced ``result``; the model runs once more on each side (a
    saved side is read from its file), for this tensor and this input sample only.
    """
    _, index = _open_model(request.model, request.external_data_dir)
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
    for src in job.sources:
        src.open()
    try:
        ref = job.reference.fetch(it, feed, [slot.name])[slot.name]
        sub = job.subject.fetch(it, feed, [slot.subject_name])[slot.subject_name]
    finally:
        for src in job.sources:
            src.close()
    return _detail(request, result, sub, ref)


def _detail(request: CompareRequest, result: TensorResult, sub: np.ndarray, ref: np.ndarray) -> TensorDetail:
    stats = error_distribution(result.stats, sub, ref, request.settings)
    return TensorDetail(stats, *error_histograms(result.slot.name, sub, ref, request.settings))
