"""Pass/fail of one plan: the comparison verdict against the FP32 reference over every sample, or a ``--check``
command.

The reference (the original model on the subject's backend) runs once per sample and is reused by every
evaluation; only the model outputs are compared. A check command (exit code 0 = pass) gets in its environment
``TRTDBG_MODEL`` (the candidate ONNX with real low-precision types and Q/DQ), ``TRTDBG_OUTPUTS`` (its outputs on the
subject backend), ``TRTDBG_INPUTS``, ``TRTDBG_REFERENCE_OUTPUTS`` (Polygraphy JSON), ``TRTDBG_PLAN`` and
``TRTDBG_STEP``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from engine_core.backend.ort import OrtRunner
from engine_core.check import CheckCommand
from engine_core.comparator.metrics import compare_tensors
from engine_core.comparator.tolerances import CompareSettings
from engine_core.data.store import save_inputs, save_outputs
from engine_core.errors import TrtdbgError, require_one_of
from engine_core.jobs import StageCallback
from engine_core.model.save import save_rewritten
from engine_core.precision.build import PlanBuilder
from engine_core.precision.plan import PrecisionPlan
from engine_core.precision.rewrite import ORT_OPT_LEVEL

SUBJECTS = {"ort": "cpu", "ort-cuda": "cuda"}


@dataclass
class Evaluation:
    """The verdict on one configuration and the error it showed."""

    passed: bool
    max_abs: float = 0.0
    max_rel: float = 0.0
    worst: str | None = None
    """Output with the largest absolute error."""
    failing: list[str] = field(default_factory=list)
    nonfinite: int = 0
    """NaN/Inf values in the subject's outputs (all samples)."""
    seconds: float = 0.0
    judged_by: str = "compare"
    """``compare`` (tolerances), ``check`` (the --check command), ``user`` (interactive verdict), ``identity``."""
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("max_abs", "max_rel"):
            if not np.isfinite(d[k]):
                d[k] = str(d[k])
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Evaluation:
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        for k in ("max_abs", "max_rel"):
            if isinstance(kw.get(k), str):
                kw[k] = float(kw[k])
        return cls(**kw)

    def summary(self) -> str:
        """``FAIL  max_abs 0.12 max_rel 3.4 (probs), 12 NaN/Inf``."""
        text = f"{'PASS' if self.passed else 'FAIL'}  max_abs {self.max_abs:.3g}  max_rel {self.max_rel:.3g}"
        if self.worst:
            text += f" ({self.worst})"
        if self.nonfinite:
            text += f", {self.nonfinite} NaN/Inf"
        if self.judged_by in ("check", "user"):
            text += f"  [{'check command' if self.judged_by == 'check' else 'your verdict'}]"
        if self.detail:
            text += f"  {self.detail}"
        return text


class Evaluator:
    """Evaluates plans of one model on one subject backend over fixed feeds."""

    def __init__(
        self,
        builder: PlanBuilder,
        subject: str,
        feeds: Sequence[Mapping[str, np.ndarray]],
        settings: CompareSettings,
        workdir: str | os.PathLike[str],
        check: CheckCommand | None = None,
    ) -> None:
        require_one_of("--subject", subject, SUBJECTS, " for precision work")
        if not feeds:
            raise TrtdbgError("the data source gave no inputs; check the data loader script or the inputs file")
        self.builder = builder
        self.subject = subject
        self.provider = SUBJECTS[subject]
        self.feeds = [dict(f) for f in feeds]
        self.settings = settings
        self.workdir = Path(workdir)
        self.check = check
        self.outputs = list(builder.analysis.graph_outputs)
        self._reference: list[dict[str, np.ndarray]] | None = None
        self.on_stage: StageCallback | None = None
        """Where the ONNX Runtime session builds are reported (a job's ``JobEvents.on_stage``)."""

    @property
    def emulated(self) -> bool:
        """True when low precision is emulated (CPU) rather than run in real types."""
        return self.provider == "cpu"

    def _run(self, model: onnx.ModelProto, label: str) -> list[dict[str, np.ndarray]]:
        runner = OrtRunner(
            model,
            self.builder.path,
            provider=self.provider,
            opt_level=ORT_OPT_LEVEL,
            name=label,
            data_dir=self.builder.data_dir,
        )
        runner.on_stage = self.on_stage
        with runner:
            return [runner.infer(feed, self.outputs) for feed in self.feeds]

    def reference(self) -> list[dict[str, np.ndarray]]:
        """The FP32 model's outputs on every feed (computed once, at the same optimization level as the subjects)."""
        if self._reference is None:
            self._reference = self._run(self.builder.model, f"{self.subject} fp32 reference")
        return self._reference

    def evaluate(self, plan: PrecisionPlan, step: int = 0) -> Evaluation:
        """Build, run and judge ``plan``."""
        start = time.perf_counter()
        refs = self.reference()
        model, _ = self.builder.build(plan, emulated=self.emulated)
        subs = self._run(model, f"{self.subject} candidate")
        ev = self._compare(subs, refs)
        if self.check is not None:
            real = model if not self.emulated else self.builder.build(plan, emulated=False)[0]
            outcome = self.check.run(self._check_files(real, plan, subs, step), self.workdir / "check.log")
            ev.passed, ev.detail, ev.judged_by = outcome.passed, outcome.detail, "check"
        ev.seconds = time.perf_counter() - start
        return ev

    def _compare(
        self, subs: Sequence[Mapping[str, np.ndarray]], refs: Sequence[Mapping[str, np.ndarray]]
    ) -> Evaluation:
        ev = Evaluation(passed=True)
        worst = -1.0
        for sub, ref in zip(subs, refs):
            for st in compare_tensors(
                self.outputs, [sub[n] for n in self.outputs], [ref[n] for n in self.outputs], self.settings
            ):
                ev.nonfinite += st.nan + st.inf
                if not st.passed:
                    ev.passed = False
                    if st.name not in ev.failing:
                        ev.failing.append(st.name)
                a = st.max_abs if st.max_abs == st.max_abs else float("inf")
                r = st.max_rel if st.max_rel == st.max_rel else float("inf")
                if a > worst:
                    worst, ev.worst = a, st.name
                ev.max_abs = max(ev.max_abs, a)
                ev.max_rel = max(ev.max_rel, r)
        return ev

    def _check_files(
        self, model: onnx.ModelProto, plan: PrecisionPlan, subs: Sequence[Mapping[str, np.ndarray]], step: int
    ) -> dict[str, str]:
        """The check's values: ``{model}``/``TRTDBG_MODEL`` and the other files of this step."""
        d = self.workdir
        files = {
            "model": d / "candidate.onnx",
            "outputs": d / "candidate_outputs.json",
            "inputs": d / "inputs.json",
            "reference_outputs": d / "reference_outputs.json",
            "plan": d / "candidate_plan.json",
        }
        # the unchanged weights are copied beside the candidate once, then shared by every candidate written there
        save_rewritten(model, files["model"], self.builder.data_dir, self.builder.path or "", reuse="copy")
        save_outputs(files["outputs"], f"{self.subject} candidate", subs)
        if not files["inputs"].exists():
            save_inputs(files["inputs"], self.feeds)
        if not files["reference_outputs"].exists():
            save_outputs(files["reference_outputs"], f"{self.subject} fp32", self.reference())
        plan.save(files["plan"])
        values = {k: str(v.resolve()) for k, v in files.items()}
        values["step"] = str(step)
        return values
