"""The streaming compare job: batches of marked tensors under a memory budget, results as they come.

For every batch of marked tensors (sized so that both sides' outputs plus comparison temporaries
fit ``mem_budget``), every iteration's feed is run through the reference and the subject, and the
batch is compared in chunks; each tensor's result is yielded as soon as its chunk is done. Verdicts
do not depend on the batching: each tensor is compared on the same data either way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from engine_core.comparator.metrics import TensorStats, compare_tensors
from engine_core.comparator.sources import OutputSource
from engine_core.comparator.tolerances import CompareSettings

TEMP_FACTOR = 8
"""Comparison temporaries per tensor, in multiples of its size (diffs, partitions, float64 chunks)."""
CHUNK_TENSORS = 2048
CHUNK_BYTES = 64 << 20


@dataclass(slots=True)
class TensorSlot:
    """One tensor to compare: its reference name, the subject's name for it, and where it sits."""

    name: str
    subject_name: str
    node: str | None
    topo_index: int
    match: str = "exact"
    est_bytes: int | None = None


@dataclass(slots=True)
class TensorResult:
    """The comparison of one tensor in one iteration."""

    iteration: int
    slot: TensorSlot
    stats: TensorStats

    def to_dict(self) -> dict[str, object]:
        """The report's per-tensor object (stable keys first)."""
        d = self.stats.to_dict()
        head = {
            "name": self.slot.name,
            "node": self.slot.node,
            "topo_index": self.slot.topo_index,
            "iteration": self.iteration,
            "shape": d.pop("shape"),
            "dtype": d.pop("dtype"),
        }
        if self.slot.subject_name != self.slot.name or self.slot.match != "exact":
            head["subject_name"] = self.slot.subject_name
            head["match"] = self.slot.match
        d.pop("name")
        head.update(d)
        return head


@dataclass
class Progress:
    """How far a job has come (tensor comparisons done out of the total)."""

    done: int
    total: int
    batch: int
    batches: int


FIRST_FAILING_KINDS = ("any", "float")


@dataclass
class CompareSummary:
    """What a finished (or cancelled) job found.

    ``first_failing`` is the topologically first failing tensor of the kind ``first_failing_kind`` names
    (``any``, or ``float``: floating-point tensors only, so an off-by-one quantized integer does not hide
    the real divergence); ``first_failing_any`` / ``first_failing_float`` hold both.
    """

    compared: int = 0
    failed: int = 0
    first_failing_any: TensorResult | None = None
    first_failing_float: TensorResult | None = None
    first_nonfinite: TensorResult | None = None
    matched_inf_tensors: int = 0
    """Tensor comparisons where both sides hold the same ±inf at the same positions."""
    first_failing_kind: str = "any"
    batches: int = 0
    cancelled: bool = False
    stopped_early: bool = False
    elapsed_s: float = 0.0
    peak_batch_bytes: int = 0
    """The largest batch of reference tensors fetched at once (measured)."""
    batch_note: str = ""
    """How many batches ran and why (memory budget, data-dependent sizes)."""

    @property
    def passed(self) -> bool:
        """True when every compared tensor passed and the job ran to completion."""
        return self.failed == 0 and not self.cancelled

    @property
    def first_failing(self) -> TensorResult | None:
        """The first failing tensor of the kind ``first_failing_kind`` asks for."""
        return self.first_failing_float if self.first_failing_kind == "float" else self.first_failing_any

    def note(self, result: TensorResult) -> None:
        """Fold one result into the summary (topologically first wins; earlier iteration on ties)."""
        self.compared += 1
        key = (result.slot.topo_index, result.iteration)
        if result.stats.inf_matched:
            self.matched_inf_tensors += 1
        if not result.stats.passed:
            self.failed += 1
            ff = self.first_failing_any
            if ff is None or key < (ff.slot.topo_index, ff.iteration):
                self.first_failing_any = result
            ff = self.first_failing_float
            if result.stats.is_float and (ff is None or key < (ff.slot.topo_index, ff.iteration)):
                self.first_failing_float = result
        if result.stats.nonfinite:
            fn = self.first_nonfinite
            if fn is None or key < (fn.slot.topo_index, fn.iteration):
                self.first_nonfinite = result


def plan_batches(
    slots: Sequence[TensorSlot], mem_budget: int | None, unknown_bytes: int | None = None
) -> list[list[TensorSlot]]:
    """Split ``slots`` (in order) into batches whose outputs on both sides plus temporaries fit the budget.

    A tensor of unknown size counts as ``unknown_bytes`` (default: the largest known one, else 1 MiB);
    a tensor that alone exceeds the budget gets a batch of its own.
    """
    if not slots:
        return []
    if mem_budget is None:
        return [list(slots)]
    if unknown_bytes is None:
        known = [s.est_bytes for s in slots if s.est_bytes]
        unknown_bytes = max(known) if known else 1 << 20
    batches: list[list[TensorSlot]] = []
    cur: list[TensorSlot] = []
    cur_bytes = cur_max = 0
    for s in slots:
        b = s.est_bytes or unknown_bytes
        if cur and 2 * (cur_bytes + b) + TEMP_FACTOR * max(cur_max, b) > mem_budget:
            batches.append(cur)
            cur, cur_bytes, cur_max = [], 0, 0
        cur.append(s)
        cur_bytes += b
        cur_max = max(cur_max, b)
    batches.append(cur)
    return batches


class CompareJob:
    """Compare ``subject`` against ``reference`` on each feed, for each slot, streaming results.

    ``cancel`` (a ``threading.Event``) stops the job between chunks; ``on_progress`` is called after
    each chunk. ``first_failing`` (``any``/``float``) picks what the summary calls the first failing
    tensor; ``order_stats`` also computes median/p90/p95/p99/std for every tensor. ``resize`` re-sizes
    tensors from measured shapes; ``probe_unknown`` (for a budget the user set) fetches the first
    tensor of unknown size in a batch of its own before planning the rest. Iterate :meth:`results` (or call :meth:`run`) from any thread; the job never touches UI.
    """

    def __init__(
        self,
        reference: OutputSource,
        subject: OutputSource,
        feeds: Sequence[Mapping[str, np.ndarray]],
        slots: Sequence[TensorSlot],
        settings: CompareSettings,
        *,
        mem_budget: int | None = None,
        fail_fast: bool = False,
        cancel: threading.Event | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        first_failing: str = "any",
        order_stats: bool = False,
        resize: Callable[[Mapping[str, tuple[tuple[int, ...], np.dtype]]], Mapping[str, int]] | None = None,
        probe_unknown: bool = True,
    ) -> None:
        self.reference = reference
        self.subject = subject
        self.feeds = list(feeds)
        self.slots = list(slots)
        self.settings = settings
        self.mem_budget = mem_budget
        self.fail_fast = fail_fast
        self.cancel = cancel or threading.Event()
        self.on_progress = on_progress
        self.order_stats = order_stats
        self.judge: Callable[[list[str], list[np.ndarray], list[np.ndarray], list[TensorStats]], None] | None = None
        """Optional hook that revises a chunk's verdicts in place (compare functions, metric checks, scripts)."""
        self.batches = plan_batches(self.slots, mem_budget)
        """The plan from estimated sizes; :meth:`iter_batches` re-plans as real sizes are measured."""
        self.summary = CompareSummary(batches=0, first_failing_kind=first_failing)
        self._unknown = [s for s in self.slots if not s.est_bytes]
        self._unknown_ids = {id(s) for s in self._unknown}
        self._unknown_bytes: int | None = None
        self._resize = resize
        self.probe_unknown = probe_unknown
        self._pinned: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        self._new_pins = False

    @property
    def sources(self) -> list[OutputSource]:
        """The distinct sides: ``[reference]`` when the subject is the reference itself, else both."""
        return [self.reference] if self.subject is self.reference else [self.reference, self.subject]

    def iter_batches(self) -> Iterator[tuple[int, list[TensorSlot], int]]:
        """``(index, batch, planned total)``, re-planning the rest after each batch from measured sizes.

        Shape inference cannot size data-dependent tensors (NonZero, Range, Expand, …): the first batch
        holding one ends with it (a probe); once fetched, tensors count at their real size, ``resize``
        (shape inference with the measured shapes pinned) sizes the ones that depend on them, and any
        still unknown counts at twice the largest real one seen, so batches keep to the budget.
        """
        remaining = list(self.slots)
        bi = 0
        while remaining:
            guess = None if self._unknown_bytes is None else 2 * self._unknown_bytes
            plan = plan_batches(remaining, self.mem_budget, guess)
            batch = plan[0]
            if self.probe_unknown and self.mem_budget is not None and self._unknown_bytes is None:
                probe = next((i for i, s in enumerate(batch) if s.est_bytes is None), None)
                if probe is not None and probe + 1 < len(batch):  # nothing measured yet: one unknown size at a time
                    batch = batch[: probe + 1]
                    plan = [batch, *plan_batches(remaining[len(batch) :], self.mem_budget, guess)]
            remaining = remaining[len(batch) :]
            self.summary.batches = bi + 1
            yield bi, batch, bi + len(plan)
            bi += 1
            if self._new_pins and self._resize is not None and any(not s.est_bytes for s in remaining):
                self._new_pins = False
                sizes = self._resize(self._pinned)
                for s in remaining:
                    if not s.est_bytes and sizes.get(s.name):
                        s.est_bytes = sizes[s.name]
        self.summary.batch_note = self._batch_note()

    def measure(self, batch: Sequence[TensorSlot], tensors: Mapping[str, np.ndarray], subject: bool = False) -> None:
        """Record the real sizes of a fetched batch (the larger of estimate and measurement wins)."""
        batch_bytes = 0
        for slot in batch:
            arr = tensors.get(slot.subject_name if subject else slot.name)
            if arr is None:
                continue
            nbytes = int(arr.nbytes)
            if slot.est_bytes is None or nbytes > slot.est_bytes:
                slot.est_bytes = nbytes
            if id(slot) in self._unknown_ids:
                self._unknown_bytes = max(self._unknown_bytes or 0, nbytes)
                if slot.name not in self._pinned:
                    self._pinned[slot.name] = (tuple(arr.shape), arr.dtype)
                    self._new_pins = True
            batch_bytes += nbytes
        self.summary.peak_batch_bytes = max(self.summary.peak_batch_bytes, batch_bytes)

    def _batch_note(self) -> str:
        """Why the job ran as many batches as it did (one line for the report)."""
        n = self.summary.batches
        if self.mem_budget is None or n <= 1 and not self._unknown:
            return "one batch: every marked tensor fits the memory budget"
        why = f"memory budget {self.mem_budget / (1 << 20):.0f} MiB"
        if self._unknown:
            why += (
                f"; {len(self._unknown)} tensor(s) have data-dependent sizes that shape inference cannot give, "
                f"sized from the real outputs as batches ran (largest {(self._unknown_bytes or 0) / (1 << 20):.1f} MiB)"
            )
        return f"{n} batch(es): {why}"

    @property
    def total(self) -> int:
        """Number of tensor comparisons the job will make (slots × iterations)."""
        return len(self.slots) * len(self.feeds)

    def run(self) -> CompareSummary:
        """Run to completion, discarding per-tensor results; return the summary."""
        for _ in self.results():
            pass
        return self.summary

    def reference_batches(
        self,
    ) -> Iterator[tuple[int, int, int, Mapping[str, np.ndarray], list[TensorSlot], dict[str, np.ndarray]]]:
        """``(batch index, batches planned, iteration, feed, batch, reference tensors)`` for each batch and feed,
        the reference's tensors fetched and measured; a cancel ends it (and marks the summary cancelled)."""
        for bi, batch, planned in self.iter_batches():
            for it, feed in enumerate(self.feeds):
                if self.cancel.is_set():
                    self.summary.cancelled = True
                    return
                refs = self.reference.fetch(it, feed, [s.name for s in batch])
                self.measure(batch, refs)
                yield bi, planned, it, feed, batch, refs

    def results(self) -> Iterator[TensorResult]:
        """Yield each tensor's result as soon as it is computed."""
        start = time.perf_counter()
        done = 0
        try:
            for bi, planned, it, feed, batch, refs in self.reference_batches():
                subs = self.subject.fetch(it, feed, [s.subject_name for s in batch])
                for chunk in _chunks(batch, refs):
                    if self.cancel.is_set():
                        self.summary.cancelled = True
                        return
                    names = [s.name for s in chunk]
                    sub_arrays = [subs.pop(s.subject_name) for s in chunk]
                    ref_arrays = [refs.pop(s.name) for s in chunk]
                    stats = compare_tensors(names, sub_arrays, ref_arrays, self.settings, order_stats=self.order_stats)
                    if self.judge is not None:
                        self.judge(names, sub_arrays, ref_arrays, stats)
                    del sub_arrays, ref_arrays
                    for slot, st in zip(chunk, stats):
                        result = TensorResult(it, slot, st)
                        self.summary.note(result)
                        done += 1
                        yield result
                        if self.fail_fast and not st.passed:
                            self.summary.stopped_early = True
                            return
                    if self.on_progress:
                        self.on_progress(Progress(done, self.total, bi, planned))
                del refs, subs
        finally:
            self.summary.elapsed_s = time.perf_counter() - start


def _chunks(batch: Sequence[TensorSlot], refs: Mapping[str, np.ndarray]) -> Iterator[list[TensorSlot]]:
    """Consecutive pieces of ``batch`` of at most CHUNK_TENSORS tensors / CHUNK_BYTES bytes."""
    cur: list[TensorSlot] = []
    nbytes = 0
    for s in batch:
        b = refs[s.name].nbytes
        if cur and (len(cur) >= CHUNK_TENSORS or nbytes + b > CHUNK_BYTES):
            yield cur
            cur, nbytes = [], 0
        cur.append(s)
        nbytes += b
    if cur:
        yield cur
