"""``reduce``: shrink a failing model to a minimal sub-graph that still fails, judged over every data sample.

Delta debugging as Polygraphy's ``debug reduce``, on the model with ``Constant`` nodes lowered to initializers and
its top-level nodes in topological order:

1. **outputs** — candidate *i* computes the outputs of node *i* from the graph inputs; bisection (or a linear scan)
   finds the earliest node whose outputs still fail.
2. **inputs** — on that result, candidate *i* starts at node *i*: its non-constant inputs become graph inputs;
   bisection (or a linear scan from the end) finds the latest start that still fails.

A candidate keeps the nodes between its inputs and outputs that depend on an input. What it reads from other
branches is frozen from the data: every tensor's value comes from one ONNX Runtime FP32 run of the original model
per sample; a tensor with the same value in every sample becomes a constant, one that varies becomes an extra
input fed per sample (a constant cannot stand for several samples). ``Shape``/``Size`` outputs equal in every sample
count as frozen too, so shape sub-graphs fold away. The candidate's graph inputs are fed the reference values, so
the candidate shows only the error its own nodes make.

"Still fails" is decided by a judge over all samples: :class:`CompareJudge` (the compare verdict of reference FP32
ONNX Runtime against any subject backend spec, or against the matching sub-graph of a second model) or
:class:`CommandJudge` (an external command; exit code 0 means it passes).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnx
from onnx import ModelProto, helper, numpy_helper

from engine_core.backend.ort import OrtRunner
from engine_core.check import CheckCommand
from engine_core.errors import TrtdbgError
from engine_core.jobs import JobEvents, Progress
from engine_core.model.index import ModelIndex
from engine_core.model.save import save_rewritten
from engine_core.options import DataOptions, ToleranceOptions
from engine_core.safetext import printable_lines
from engine_core.surgeon.changes import describe_value_info
from engine_core.surgeon.graph import (
    arrays_equal,
    backward_cone,
    lower_constants,
    make_value_info,
    rebuild,
    rename_reads,
    top_level_deps,
    top_level_tensors,
)

MODES = ("bisect", "linear")
LARGE_RESULT = 0.25
"""A bisection result with at least this share of the original nodes suggests ``--mode linear``."""

Feed = dict[str, np.ndarray]


@dataclass(frozen=True)
class Candidate:
    """A self-contained sub-model and the per-sample feeds for its graph inputs."""

    model: ModelProto = field(repr=False)
    feeds: list[Feed] = field(repr=False)
    positions: tuple[int, ...]
    """Kept nodes, as top-level positions in the working model's index (topological order)."""
    nodes: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    frozen: tuple[str, ...]
    """Tensors from other branches frozen to constants (same value in every sample)."""
    fed: tuple[str, ...]
    """Tensors from other branches that vary across samples, fed as extra graph inputs."""
    data_dir: str | None = None
    """The folder of the weights the model keeps in external data files (those of the reduced model)."""

    def save(self, path: str | os.PathLike[str], *, reuse: str) -> list[Path]:
        """Write the model; external weights stay external, their files reused as ``reuse`` says
        (:func:`~engine_core.model.save.save_model`: ``copy`` for files other tools read, ``link`` for a candidate
        only trtdbg reads)."""
        return save_rewritten(self.model, path, self.data_dir, "", reuse=reuse)


class Judge(Protocol):
    """Decides whether a candidate still fails (``True``) over all its samples."""

    description: str

    def __call__(self, candidate: Candidate) -> bool: ...


@dataclass(frozen=True)
class ReduceStep:
    """One judged candidate."""

    phase: str
    index: int
    total: int
    node: str
    nodes: int
    fails: bool


@dataclass
class ReduceResult:
    """The minimal failing candidate (``None`` when the model does not fail at all) and how it was found."""

    candidate: Candidate | None
    original_nodes: int
    samples: int
    judge: str
    mode: str
    steps: list[ReduceStep]
    removed: list[str]
    notes: list[str]

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly report."""
        c = self.candidate
        return {
            "reproduced": c is not None,
            "judge": self.judge,
            "mode": self.mode,
            "samples": self.samples,
            "original_nodes": self.original_nodes,
            "nodes": list(c.nodes) if c else [],
            "inputs": [describe_value_info(vi) for vi in c.model.graph.input] if c else [],
            "outputs": [describe_value_info(vi) for vi in c.model.graph.output] if c else [],
            "frozen": list(c.frozen) if c else [],
            "fed": list(c.fed) if c else [],
            "removed": self.removed,
            "notes": self.notes,
            "steps": [
                {
                    "phase": s.phase,
                    "index": s.index,
                    "total": s.total,
                    "node": s.node,
                    "nodes": s.nodes,
                    "fails": s.fails,
                }
                for s in self.steps
            ],
        }

    def to_text(self) -> str:
        """A short human-readable summary."""
        c = self.candidate
        if c is None:
            return (
                f"reduce: nothing to reduce: the whole model passes on all {self.samples} sample(s) (it would fail "
                f"if: {self.judge}); check the subject, tolerances or command"
            )
        lines = [
            f"reduce: {self.original_nodes} -> {len(c.nodes)} node(s), still failing over {self.samples} "
            f"sample(s) ({self.judge}); {len(self.steps)} candidates judged",
            f"  nodes:   {', '.join(c.nodes[:12])}{' ...' if len(c.nodes) > 12 else ''}",
            f"  inputs:  {'; '.join(describe_value_info(vi) for vi in c.model.graph.input) or '(none)'}",
            f"  outputs: {'; '.join(describe_value_info(vi) for vi in c.model.graph.output)}",
        ]
        if c.frozen:
            lines.append(f"  frozen to constants: {', '.join(c.frozen[:8])}{' ...' if len(c.frozen) > 8 else ''}")
        if c.fed:
            lines.append(f"  fed per sample (vary across samples): {', '.join(c.fed)}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return printable_lines(lines)


class _Reference:
    """FP32 ONNX Runtime values of top-level tensors of the working model, per sample, computed on demand."""

    def __init__(
        self, model: ModelProto, path: str | None, feeds: Sequence[Mapping[str, np.ndarray]], data_dir: str | None
    ) -> None:
        self.runner = OrtRunner(model, path, opt_level="disable", data_dir=data_dir)
        self.feeds = [dict(f) for f in feeds]
        self.cache: list[Feed] = [dict(f) for f in feeds]

    def get(self, names: Sequence[str]) -> list[Feed]:
        missing = list(dict.fromkeys(n for n in names if n not in self.cache[0]))
        if missing:
            for k, feed in enumerate(self.feeds):
                self.cache[k].update(self.runner.infer(feed, missing))
        return [{n: c[n] for n in names} for c in self.cache]


def check_reducible(model: ModelProto, path: str | None) -> None:
    """Refuse a model that has nothing to judge (no graph outputs)."""
    if not model.graph.output:
        raise TrtdbgError(f"reduce: {path or 'the model'} has no graph outputs; there is nothing to compare or reduce")


class Reducer:
    """Runs the two phases over one model, its samples and a judge."""

    def __init__(
        self,
        model: ModelProto,
        path: str | None,
        feeds: Sequence[Mapping[str, np.ndarray]],
        judge: Judge,
        *,
        events: JobEvents | None = None,
        data_dir: str | None = None,
    ) -> None:
        """``events``: each judged candidate as an item (:class:`ReduceStep`) and progress; a cancel stops before
        the next candidate is judged (:class:`~engine_core.jobs.Cancelled`, nothing written). ``data_dir``: the
        folder of the model's external data (default: beside ``path``)."""
        check_reducible(model, path)
        if not feeds:
            raise TrtdbgError("reduce: the data source gave no samples; check the data options")
        self.original = model
        self.model, self.lowered = lower_constants(model)
        self.index = ModelIndex(self.model, path, data_dir)
        self.deps = top_level_deps(self.index)
        self.inputs = tuple(feeds[0])
        self.consts = {t.name for t in self.model.graph.initializer} - set(self.inputs)
        self.ref = _Reference(self.model, path, feeds, str(self.index.data_dir) if self.index.data_dir else None)
        self.samples = len(feeds)
        self.judge = judge
        self.events = events or JobEvents()
        self.steps: list[ReduceStep] = []
        self._verdicts: dict[tuple[Any, ...], bool] = {}
        self.static_shapes = self._static_shape_nodes()

    def _static_shape_nodes(self) -> set[int]:
        """``Shape``/``Size`` nodes whose value is the same in every sample."""
        idx = self.index
        found = [i for i in range(idx.num_top_level) if idx.op_type(i) in ("Shape", "Size")]
        outs = [idx.node_outputs(i)[0] for i in found]
        values = self.ref.get(outs) if outs else []
        return {i for i, t in zip(found, outs) if arrays_equal([v[t] for v in values])}

    # ---------------------------------------------------------------- candidates
    def candidate(self, inputs: Sequence[str], outputs: Sequence[str]) -> Candidate | None:
        """The sub-model computing ``outputs`` from ``inputs``; ``None`` when no kept node computes an output."""
        idx, deps = self.index, self.deps
        stop = set(inputs)
        cone, _ = backward_cone(idx, deps, outputs, stop)
        dynamic = set(inputs)
        kept: list[int] = []
        for i in sorted(cone):
            if i not in self.static_shapes and any(d in dynamic for d in deps[i]):
                kept.append(i)
                dynamic.update(o for o in idx.node_outputs(i) if o)
        produced = {o for i in kept for o in idx.node_outputs(i) if o}
        outs = [o for o in dict.fromkeys(outputs) if o in produced]
        if not outs:
            return None
        reads = list(dict.fromkeys(d for i in kept for d in deps[i]))
        graph_inputs = [t for t in dict.fromkeys(inputs) if t in reads and t not in produced]
        others = [t for t in reads if t not in stop and t not in produced and t not in self.consts]
        values = self.ref.get(graph_inputs + others)
        frozen = [t for t in others if arrays_equal([v[t] for v in values])]
        fed = [t for t in others if t not in frozen]
        fed_names = graph_inputs + fed
        in_vis = [make_value_info(t, values[0][t].dtype, _common_shape([v[t] for v in values])) for t in fed_names]
        out_vis = [self._output_info(t) for t in outs]
        extra = [numpy_helper.from_array(values[0][t], t) for t in frozen]
        model = rebuild(self.model, (idx.node_proto(i) for i in kept), in_vis, out_vis, extra_initializers=extra)
        feeds = [{t: v[t] for t in fed_names} for v in values]
        return Candidate(
            model,
            feeds,
            tuple(kept),
            tuple(idx.name(i) for i in kept),
            tuple(graph_inputs),
            tuple(outs),
            tuple(frozen),
            tuple(fed),
            str(self.index.data_dir) if self.index.data_dir else None,
        )

    def _output_info(self, name: str) -> onnx.ValueInfoProto:
        meta = self.index.tensor_meta(name)
        if meta is not None and meta.shape is not None:
            return make_value_info(name, meta.dtype, meta.shape)
        values = self.ref.get([name])
        return make_value_info(name, values[0][name].dtype, _common_shape([v[name] for v in values]))

    def fails(self, cand: Candidate | None, phase: str, index: int, total: int, node: str) -> bool:
        """Judge a candidate (cached); an empty candidate passes."""
        if cand is None:
            return False
        key = (cand.positions, cand.inputs, cand.outputs)
        if key not in self._verdicts:
            self.events.stop_if_cancelled("reduce cancelled; nothing written")
            self._verdicts[key] = bool(self.judge(cand))
            step = ReduceStep(phase, index, total, node, len(cand.nodes), self._verdicts[key])
            self.steps.append(step)
            self.events.item(step)
            self.events.progress(Progress(index + 1, total, "candidates", phase))
        return self._verdicts[key]

    # ---------------------------------------------------------------- phases
    def run(self, mode: str = "bisect", reduce_outputs: bool = True, reduce_inputs: bool = True) -> ReduceResult:
        """Check that the whole model fails, then shrink outputs, then inputs."""
        if mode not in MODES:
            raise TrtdbgError(f"reduce: unknown mode '{mode}'; choose {' or '.join(MODES)}")
        notes = [f"{self.lowered} Constant node(s) lowered to initializers"] if self.lowered else []
        graph_outputs = [vi.name for vi in self.model.graph.output]
        full = self.candidate(self.inputs, graph_outputs)
        if not self.fails(full, "whole model", 0, 1, "(all)"):
            return self._result(None, mode, notes)
        best = full
        assert best is not None
        if reduce_outputs:
            best = self._reduce_outputs(best, mode)
        if reduce_inputs:
            best = self._reduce_inputs(best, mode)
        if mode == "bisect" and len(best.nodes) >= LARGE_RESULT * len(self.original.graph.node) and len(best.nodes) > 1:
            notes.append(
                "bisection assumes one contiguous failing region; if the result looks too large, try --mode linear"
            )
        return self._result(best, mode, notes)

    def _reduce_outputs(self, full: Candidate, mode: str) -> Candidate:
        order = list(full.positions)
        n = len(order)

        def probe(k: int) -> tuple[bool, Candidate | None]:
            outs = [o for o in self.index.node_outputs(order[k]) if o]
            cand = self.candidate(self.inputs, outs)
            return self.fails(cand, "outputs", k, n, self.index.name(order[k])), cand

        found = _search(n, probe, mode, fails_above=True)  # index n: the whole model, known to fail
        return full if found is None else found

    def _reduce_inputs(self, start: Candidate, mode: str) -> Candidate:
        order = list(start.positions)
        n = len(order)
        dynamic = set(start.inputs) | {o for i in order for o in self.index.node_outputs(i) if o}

        def probe(k: int) -> tuple[bool, Candidate | None]:
            ins = [d for d in dict.fromkeys(self.deps[order[k]]) if d in dynamic]
            cand = self.candidate(ins, start.outputs)
            return self.fails(cand, "inputs", k, n, self.index.name(order[k])), cand

        found = _search(n, probe, mode, fails_above=False)  # index -1: the outputs phase's result, known to fail
        return start if found is None else found

    def _result(self, best: Candidate | None, mode: str, notes: list[str]) -> ReduceResult:
        kept = set(best.nodes) if best else set()
        removed = [self.index.name(i) for i in range(self.index.num_top_level) if self.index.name(i) not in kept]
        if best is not None:
            lowered = [n.name or n.output[0] for n in self.original.graph.node if n.op_type == "Constant"]
            removed += [f"{name} (Constant, lowered)" for name in lowered]
        return ReduceResult(
            best,
            len(self.original.graph.node),
            self.samples,
            self.judge.description,
            mode,
            list(self.steps),
            removed,
            notes,
        )


def _search(
    n: int, probe: Callable[[int], tuple[bool, Candidate | None]], mode: str, *, fails_above: bool
) -> Candidate | None:
    """The failing candidate closest to the known-failing end among probes ``0..n-1`` (``None``: none fails).

    ``fails_above``: probe ``n`` is known to fail and failures are assumed to extend downwards from it (else probe
    ``-1`` is, and they extend upwards). ``linear`` tries each index from the other end and stops at the first
    failure; ``bisect`` binary-searches the boundary (one contiguous failing range assumed)."""
    if mode == "linear":
        for k in range(n) if fails_above else range(n - 1, -1, -1):
            bad, cand = probe(k)
            if bad and cand is not None:
                return cand
        return None
    found: dict[int, Candidate] = {}
    lo, hi = -1, n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        bad, cand = probe(mid)
        if bad and cand is not None:
            found[mid] = cand
        if (bad and cand is not None) == fails_above:
            hi = mid
        else:
            lo = mid
    return found.get(hi if fails_above else lo)


def _common_shape(arrays: Sequence[np.ndarray]) -> tuple[int | None, ...]:
    """The arrays' shape, with ``None`` where samples differ."""
    first = arrays[0].shape
    if any(a.ndim != len(first) for a in arrays):
        raise TrtdbgError("reduce: a tensor changes rank between samples; give samples of one shape")
    return tuple(d if all(a.shape[k] == d for a in arrays) else None for k, d in enumerate(first))


# -------------------------------------------------------------------- judges
class CompareJudge:
    """Fails when the compare of reference FP32 ONNX Runtime against the subject fails on any sample.

    The subject is a backend spec (passed to ``make_runner`` as is: ``ort``, ``ort-cuda``, precision subjects, ...)
    or a second model (e.g. an FP16/INT8 copy with the same tensor names), cut to the candidate's boundary.
    ``opt_level`` is the ONNX Runtime graph optimization level of both sides (``None``: what compare picks). ORT CPU
    runs most FP16 nodes in FP32 behind Cast pairs that its optimizations may merge, so whether an FP16 copy shows
    FP16 overflow there depends on it.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        tolerances: ToleranceOptions,
        *,
        subject: str | None = None,
        subject_model: ModelProto | None = None,
        subject_model_path: str | None = None,
        subject_backend: str = "ort",
        opt_level: str | None = None,
    ) -> None:
        if (subject is None) == (subject_model is None):
            raise TrtdbgError("reduce: give exactly one of --subject SPEC, --subject-model M2 or --check CMD")
        self.workdir = Path(workdir)
        self.tolerances = tolerances
        self.subject = subject
        self.subject_model = subject_model
        self.subject_backend = subject_backend
        self.opt_level = opt_level
        self._subject_index = ModelIndex(subject_model, subject_model_path) if subject_model is not None else None
        self.subject_dir = str(Path(subject_model_path or ".").resolve().parent)
        """The folder of the subject model's external data."""
        self.description = (
            f"compare of ort vs {subject} fails"
            if subject is not None
            else f"compare of ort vs {subject_backend}:{subject_model_path or 'subject model'} fails"
        )

    def __call__(self, candidate: Candidate) -> bool:
        from engine_core.comparator.request import CompareRequest, execute
        from engine_core.data.store import save_inputs

        model_path = self.workdir / "candidate.onnx"
        inputs_path = self.workdir / "candidate_inputs.npz"
        candidate.save(model_path, reuse="link")
        save_inputs(inputs_path, candidate.feeds)
        request = CompareRequest(
            model=str(model_path),
            subject=self.subject,
            tolerances=self.tolerances,
            data=DataOptions(load_inputs=(str(inputs_path),)),
            workspace=str(self.workdir / "compare"),
            ort_opt_level=self.opt_level,
        )
        if self.subject_model is not None:
            subject_path = self.workdir / "candidate_subject.onnx"
            save_rewritten(self.subject_candidate(candidate), subject_path, self.subject_dir, "", reuse="link")
            request.subject_model = str(subject_path)
            request.subject_backend = self.subject_backend
        return not execute(request).passed

    def subject_candidate(self, candidate: Candidate) -> ModelProto:
        """The second model cut at the candidate's boundary: same graph inputs (cast where its dtypes differ), same
        frozen constants (in its dtypes), same outputs."""
        model, index = self.subject_model, self._subject_index
        assert model is not None and index is not None
        known = top_level_tensors(model)
        frozen = {
            t.name: numpy_helper.to_array(t) for t in candidate.model.graph.initializer if t.name in candidate.frozen
        }
        fed = [vi for vi in candidate.model.graph.input]
        boundary = [vi.name for vi in fed] + list(frozen)
        for t in boundary + list(candidate.outputs):
            if t not in known:
                raise TrtdbgError(
                    f"the subject model has no tensor '{t}'; --subject-model needs a model with the same "
                    f"tensor names (e.g. an FP16 copy that keeps names); use --subject or --check instead"
                )
        deps = top_level_deps(index)
        stop = set(boundary)
        nodes, seen = backward_cone(index, deps, candidate.outputs, stop)
        own_inputs = {vi.name for vi in model.graph.input} - set(index.initializer_names)
        leaked = sorted((seen & own_inputs) - stop)
        if leaked:
            raise TrtdbgError(
                f"in the subject model the candidate's outputs also depend on {', '.join(leaked)}; "
                f"--subject-model needs a model with the same structure; use --subject or --check"
            )
        kept = [_copy_node(index.node_proto(i)) for i in sorted(nodes)]
        casts: list[onnx.NodeProto] = []
        renames: dict[str, str] = {}
        for vi in fed:
            meta = index.tensor_meta(vi.name)
            want = vi.type.tensor_type.elem_type
            if meta is not None and helper.np_dtype_to_tensor_dtype(np.dtype(meta.dtype)) != want:
                inner = f"{vi.name}__subject_cast"
                renames[vi.name] = inner
                casts.append(
                    helper.make_node(
                        "Cast",
                        [vi.name],
                        [inner],
                        f"{vi.name}__subject_cast",
                        to=helper.np_dtype_to_tensor_dtype(np.dtype(meta.dtype)),
                    )
                )
        rename_reads(kept, renames)
        extra = []
        for name, value in frozen.items():
            meta = index.tensor_meta(name)
            extra.append(numpy_helper.from_array(value.astype(meta.dtype) if meta is not None else value, name))
        outputs = [_subject_output(index, t) for t in candidate.outputs]
        return rebuild(model, casts + kept, fed, outputs, extra_initializers=extra)


def _copy_node(node: onnx.NodeProto) -> onnx.NodeProto:
    n = onnx.NodeProto()
    n.CopyFrom(node)
    return n


def _subject_output(index: ModelIndex, name: str) -> onnx.ValueInfoProto:
    meta = index.tensor_meta(name)
    return (
        make_value_info(name, meta.dtype, meta.shape) if meta is not None else helper.make_empty_tensor_value_info(name)
    )


class CommandJudge:
    """Fails when an external check command fails (non-zero exit, a timeout, a crash or a ``--fail-regex`` match).

    Before each run the candidate is written to ``artifact`` and its per-sample inputs to ``<artifact>.inputs.json``
    (Polygraphy JSON); ``{model}`` and ``{inputs}`` in the command are replaced by those paths, which are also in
    the environment as ``TRTDBG_MODEL`` and ``TRTDBG_INPUTS`` (and, as before, ``TRTDBG_REDUCE_MODEL`` and
    ``TRTDBG_REDUCE_INPUTS``). Its output goes to ``<artifact>.check.log``.
    """

    def __init__(self, check: CheckCommand, artifact: str | os.PathLike[str]) -> None:
        self.check = check
        self.artifact = Path(artifact)
        self.inputs_path = self.artifact.with_name(self.artifact.name + ".inputs.json")
        self.log = self.artifact.with_name(self.artifact.name + ".check.log")
        self.description = f"command `{check.text}` fails"

    def __call__(self, candidate: Candidate) -> bool:
        from engine_core.data.store import save_inputs

        candidate.save(self.artifact, reuse="copy")  # the weights are copied beside it once, not per candidate
        save_inputs(self.inputs_path, candidate.feeds)
        model, inputs = str(self.artifact), str(self.inputs_path)
        env = {"TRTDBG_REDUCE_MODEL": model, "TRTDBG_REDUCE_INPUTS": inputs}
        return not self.check.run({"model": model, "inputs": inputs}, self.log, env).passed
