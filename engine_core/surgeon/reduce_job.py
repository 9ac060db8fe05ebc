"""The reduce job ``trtdbg reduce`` drives: load the model, check memory, build the judge, reduce over every sample,
write the result.

:func:`run_reduce` takes a :class:`ReduceRequest` (the user's options) and writes OUT, its inputs (``.inputs.json``),
with ``subject_model`` the same cut of the second model (``.subject.onnx``), and always the report
(``.reduce.json``); never over the models. The algorithm and the judges are in :mod:`engine_core.surgeon.reduce`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onnx import ModelProto

from engine_core.check import DEFAULT_TIMEOUT, CheckCommand, check_command
from engine_core.errors import TrtdbgError
from engine_core.jobs import JobEvents
from engine_core.options import DataOptions, ToleranceOptions
from engine_core.surgeon.reduce import CommandJudge, CompareJudge, Judge, Reducer, ReduceResult, check_reducible


@dataclass
class ReduceRequest:
    """One reduce as the user gave it; exactly one judge: ``subject``, ``subject_model`` or ``check``."""

    model: str
    output: str
    subject: str | None = None
    """A backend spec compared against ONNX Runtime FP32 (``ort-cuda``, ``ort:fp16``, ...)."""
    subject_model: str | None = None
    """A second model with the same tensor names (e.g. an FP16 copy), run on ``subject_backend``."""
    subject_backend: str = "ort"
    check: str | Sequence[str] | None = None
    """A command that fails (non-zero exit) while the candidate still fails."""
    check_timeout: float = DEFAULT_TIMEOUT
    fail_regex: tuple[str, ...] = ()
    tolerances: ToleranceOptions = field(default_factory=ToleranceOptions)
    data: DataOptions = field(default_factory=DataOptions)
    mode: str = "bisect"
    reduce_outputs: bool = True
    reduce_inputs: bool = True
    ort_opt_level: str | None = None
    """ONNX Runtime graph optimization level of both compared sides (``None``: what compare picks)."""
    artifact: str | None = None
    """Where ``check`` candidates are written (default: in the workspace)."""
    external_data_dir: str | None = None
    """The folder of the model's external data (default: beside the model)."""
    workspace: str | None = None

    def files(self) -> tuple[Path, Path, Path, Path]:
        """``(OUT, its inputs, its report, the subject model's cut)``."""
        out = Path(self.output)
        inputs, report, subject = (
            out.with_name(out.stem + s) for s in (".inputs.json", ".reduce.json", ".subject.onnx")
        )
        return out, inputs, report, subject


@dataclass
class ReduceOutcome:
    """A finished reduce: the result and the report written to ``report_path``."""

    result: ReduceResult
    report: dict[str, Any]
    """The report as written (``written``: the files, when the model fails)."""
    report_path: Path
    coverage: Any
    """The precision subject's :class:`~engine_core.precision.coverage.Coverage` on the whole model, else ``None``."""


def run_reduce(request: ReduceRequest, events: JobEvents | None = None) -> ReduceOutcome:
    """Reduce and write; raises :class:`TrtdbgError` (one line) on bad input, before anything is run or written.

    ``events``: the data source's warnings and each judged candidate (:class:`~engine_core.surgeon.reduce.Reducer`).
    """
    from engine_core.backend.ort import OrtRunner
    from engine_core.data.store import save_inputs
    from engine_core.model.loader import check_external_data, load_model
    from engine_core.model.save import check_output_path, save_model
    from engine_core.model.weights import estimate_memory, require_memory, weights_bytes
    from engine_core.workspace import Workspace, atomic_write_json

    events = events or JobEvents()
    judges = (("--subject", request.subject), ("--subject-model", request.subject_model))
    chosen = [flag for flag, given in (*judges, ("--check", request.check is not None)) if given]
    if len(chosen) != 1:
        raise TrtdbgError(
            f"reduce: give exactly one of --subject SPEC, --subject-model M2 or --check CMD "
            f"(got {', '.join(chosen) or 'none'})"
        )
    check = check_command(request.check, request.check_timeout, request.fail_regex)
    out, inputs_out, report_out, subject_out = request.files()
    protect = [request.model] + ([request.subject_model] if request.subject_model else [])
    for path in (out, inputs_out, report_out, subject_out):
        check_output_path(path, protect, external_data=False)
    model = load_model(request.model, load_external_data=False, external_data_dir=request.external_data_dir)
    check_external_data(model, request.model, request.external_data_dir)
    check_reducible(model, request.model)
    subject_model = None
    if request.subject_model:
        subject_model = load_model(request.subject_model, load_external_data=False)
        check_external_data(subject_model, request.subject_model)
    low = [request.subject.partition(":")[2]] if request.subject else []
    other = weights_bytes(subject_model) if subject_model is not None else 0
    require_memory(f"reduce of {request.model}", estimate_memory(model, low, extra=other))
    workspace = Workspace.for_model(request.model, request.workspace)
    workspace.check_writable()
    judge = _judge(request, check, subject_model, workspace.path("reduce"))
    with OrtRunner(model, request.model, opt_level="disable") as runner:
        metas = runner.input_metadata()
    source = request.data.source(metas, model=request.model)
    feeds = list(source)
    for w in source.warnings:
        events.warn(w)
    reducer = Reducer(model, request.model, feeds, judge, events=events, data_dir=request.external_data_dir)
    result = reducer.run(request.mode, reduce_outputs=request.reduce_outputs, reduce_inputs=request.reduce_inputs)
    doc = result.to_json()
    doc["data"] = source.describe()
    coverage = _subject_coverage(request, model)
    doc["precision_coverage"] = coverage.to_json() if coverage else None
    if result.candidate is not None:
        written = save_model(result.candidate.model, out, protect=protect, base=result.candidate.data_dir)
        if isinstance(judge, CompareJudge) and judge.subject_model is not None:
            subject = judge.subject_candidate(result.candidate)
            written += save_model(subject, subject_out, protect=protect, base=judge.subject_dir)
        save_inputs(inputs_out, result.candidate.feeds)
        written.append(inputs_out)
        doc["written"] = [str(p) for p in written]
    atomic_write_json(report_out, doc)
    return ReduceOutcome(result, doc, report_out, coverage)


def _judge(
    request: ReduceRequest, check: CheckCommand | None, subject_model: ModelProto | None, workdir: Path
) -> Judge:
    if check is not None:
        return CommandJudge(check, request.artifact or workdir / "candidate.onnx")
    return CompareJudge(
        workdir,
        request.tolerances,
        subject=request.subject,
        subject_model=subject_model,
        subject_model_path=request.subject_model,
        subject_backend=request.subject_backend,
        opt_level=request.ort_opt_level,
    )


def _subject_coverage(request: ReduceRequest, model: ModelProto) -> Any:
    """The precision subject's coverage on the whole model (``None`` for other judges; TensorRT runners have none)."""
    from engine_core.precision.runner import is_precision_spec
    from engine_core.runners import is_tensorrt_spec, make_runner

    spec = (request.subject or "").strip().lower()
    if not is_precision_spec(spec) or is_tensorrt_spec(spec):
        return None
    return getattr(make_runner(spec, model, request.model, data_dir=request.external_data_dir), "coverage", None)
