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


@dataclass
class CompareSummary:
    """What a finished (or cancelled) job found."""

    compared: int = 0
    failed: int = 0
    first_failing: TensorResult | None = None
    first_nonfinite: TensorResult | None = None
    batches: int = 0
    cancelled: bool = False
    stopped_early: bool = False
    elapsed_s: float = 0.0
    peak_batch_bytes: int = 0

    @property
    def passed(self) -> bool:
        """True when every compared tensor passed and the job ran to completion."""
        return self.failed == 0 and not self.cancelled

    def note(self, result: TensorResult) -> None:
        """Fold one result into the summary (topologically first wins; earlier iteration on ties)."""
        self.compared += 1
        key = (result.slot.topo_index, result.iteration)
        if not result.stats.passed:
            self.failed += 1
            ff = self.first_failing
            if ff is None or key < (ff.slot.topo_index, ff.iteration):
                self.first_failing = result
        if result.stats.nonfinite:
            fn = self.first_nonfinite
            if fn is None or key < (fn.slot.topo_index, fn.iteration):
                self.first_nonfinite = result


def plan_batches(slots: Sequence[TensorSlot], mem_budget: int | None) -> list[list[TensorSlot]]:
    """Split ``slots`` (in order) into batches whose outputs on both sides plus temporaries fit the budget.

    A tensor of unknown size counts as the largest known one; a tensor that alone exceeds the budget
    gets a batch of its own.
    """
    if not slots:
        return []
    if mem_budget is None:
        return [list(slots)]
    known = [s.est_bytes for s in slots if s.est_bytes]
    fallback = max(known) if known else 1 << 20
    batches: list[list[TensorSlot]] = []
    cur: list[TensorSlot] = []
    cur_bytes = cur_max = 0
    for s in slots:
        b = s.est_bytes or fallback
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
    each chunk. Iterate :meth:`results` (or call :meth:`run`) from any thread; the job never touches UI.
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
        self.batches = plan_batches(self.slots, mem_budget)
        self.summary = CompareSummary(batches=len(self.batches))

    @property
    def total(self) -> int:
        """Number of tensor comparisons the job will make (slots × iterations)."""
        return len(self.slots) * len(self.feeds)

    def run(self) -> CompareSummary:
        """Run to completion, discarding per-tensor results; return the summary."""
        for _ in self.results():
            pass
        return self.summary

    def results(self) -> Iterator[TensorResult]:
        """Yield each tensor's result as soon as it is computed."""
        start = time.perf_counter()
        done = 0
        try:
            for bi, batch in enumerate(self.batches):
                batch_bytes = sum(s.est_bytes or 0 for s in batch)
                self.summary.peak_batch_bytes = max(self.summary.peak_batch_bytes, batch_bytes)
                for it, feed in enumerate(self.feeds):
                    if self.cancel.is_set():
                        self.summary.cancelled = True
                        return
                    refs = self.reference.fetch(it, feed, [s.name for s in batch])
                    subs = self.subject.fetch(it, feed, [s.subject_name for s in batch])
                    for chunk in _chunks(batch, refs):
                        if self.cancel.is_set():
                            self.summary.cancelled = True
                            return
                        names = [s.name for s in chunk]
                        stats = compare_tensors(
                            names,
                            [subs.pop(s.subject_name) for s in chunk],
                            [refs.pop(s.name) for s in chunk],
                            self.settings,
                        )
                        for slot, st in zip(chunk, stats):
                            result = TensorResult(it, slot, st)
                            self.summary.note(result)
                            done += 1
                            yield result
                            if self.fail_fast and not st.passed:
                                self.summary.stopped_early = True
                                return
                        if self.on_progress:
                            self.on_progress(Progress(done, self.total, bi, len(self.batches)))
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
