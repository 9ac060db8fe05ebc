"""Precision bisection: which nodes must stay in higher precision so the low-precision model passes.

:class:`Search` is the pure state machine over the ordered candidate nodes of a phase (one target precision and its
fallback). A configuration keeps some candidates at the fallback precision ("high") and the rest low. Invariant while
narrowing: keeping ``kept + context + region`` high passes, keeping ``kept + context`` high fails, so ``region`` holds
a culprit. Each split step proposes two halves of ``region``; the caller picks the half that falls back; pass ->
``region`` = that half, fail -> it joins ``context`` and ``region`` = the other half. A region of one node is a
culprit; then ``kept`` alone is verified: pass ends the phase, fail searches the old ``context`` for the next
culprit (delta debugging). One culprit among N costs 1 (all low) + ceil(log2 N) + 1 (verify) evaluations; the
verify is free when it repeats a cached configuration. Each further culprit costs about log2(context) again,
however close it lies: c culprits among N cost about c·log2 N.

A sweep (stage ``sweep``) resolves ``region`` one node at a time in exactly ``len(region)`` evaluations, whatever the
number of culprits. Invariant: ``kept + region`` high passes (``context`` is empty). Each step lowers one node, the
end of ``region`` for ``forward`` (where the bisection found its culprits): pass drops it, fail makes it a culprit;
the last node is decided by ``kept`` alone, so no verify follows. ``linear`` sweeps what remains after its first
culprit. ``auto`` bisects; once a culprit is found it sweeps the context instead of verifying when
:func:`sweep_pays` at the latest culprits' density, and a sweep goes back to bisecting (through a verify) when its
run of nodes not needed since the last culprit exceeds log2(suspects), what bisecting the next culprit costs.

INT8 with an FP16/BF16 fallback runs two phases: first FP16 against FP32 over every FP16 candidate (what must stay
FP32), then INT8 against the fallback over the quantizable nodes (what must not be quantized).

:class:`BisectSession` drives a search: it evaluates configurations (cached by content hash), records steps, supports
undo, and persists everything in the workspace after every step so ``resume`` continues after a crash.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
import weakref
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine_core.check import DEFAULT_TIMEOUT, CheckCommand
from engine_core.comparator.tolerances import CompareSettings
from engine_core.errors import TrtdbgError, require_one_of
from engine_core.jobs import JobEvents, Progress
from engine_core.options import DataOptions, ToleranceOptions
from engine_core.precision.evaluate import SUBJECTS, Evaluation, Evaluator
from engine_core.precision.plan import FALLBACKS, PrecisionPlan
from engine_core.precision.state import backup_state, file_sha256, load_state, pack, save_state, state_path, unpack
from engine_core.types import json_fields, json_value
from engine_core.workspace import Workspace, lock_job

MODES = ("auto", "bisect", "linear")
DIRECTIONS = ("forward", "reverse")
TARGETS = ("fp16", "bf16", "int8")
DEFAULT_TOLERANCE = {"fp16": "2e-2", "bf16": "1e-1", "int8": "1e-1"}
"""atol and rtol when none are given (elementwise: an element fails only when both are exceeded)."""
SPARSE_PRIOR = 8
"""Clean nodes assumed resolved before any evidence: the density estimate of :func:`sweep_pays` starts sparse."""
RECENT_CULPRITS = 6
"""How many of the latest culprits the density estimate looks back over (culprits cluster: attention blocks)."""
MIN_CULPRITS = 2
"""Culprits the estimate needs before it may call the suspects dense (a first culprit found next to the end the
search started from says little of the rest)."""


def sweep_pays(suspects: int, culprits: int, resolved: int) -> bool:
    """Is sweeping ``suspects`` unresolved nodes (``suspects`` evaluations) cheaper than bisecting them, where
    ``culprits`` of the latest ``resolved`` nodes were culprits?

    Bisecting costs about log2(suspects) per remaining culprit (its halvings and verify, fewer as the suspects
    shrink: c·log2 N matches the simulated cost within 5% from 34 culprits of 48 to 100 of 1000); the remaining
    culprits are estimated at the recent density, ``culprits / (resolved + SPARSE_PRIOR)``."""
    expected = suspects * culprits / (resolved + SPARSE_PRIOR)
    return expected * math.log2(suspects) > suspects


# ---------------------------------------------------------------------- state machine
@dataclass
class Phase:
    """One search: ``precision`` is tried on ``candidates``; culprits fall back to ``fallback``."""

    precision: str
    fallback: str
    candidates: list[str]


@dataclass
class Proposal:
    """What the next step evaluates: ``all-low``/``verify`` (no choice) or ``split`` (choose a half to fall back)."""

    kind: str
    high: list[int]
    """Candidates kept high whatever the choice."""
    halves: tuple[list[int], list[int]] | None = None

    def config(self, choice: int) -> list[int]:
        """Candidates at the fallback precision for ``choice`` (0 or 1)."""
        return self.high + (list(self.halves[choice]) if self.halves else [])


class Search:
    """The bisection state machine over a list of phases (JSON round trip via :meth:`snapshot`/:meth:`restore`)."""

    def __init__(self, phases: Sequence[Phase], mode: str = "bisect", direction: str = "forward") -> None:
        require_one_of("--mode", mode, MODES)
        require_one_of("--direction", direction, DIRECTIONS)
        self.phases = list(phases)
        self.mode = mode
        self.direction = direction
        self.phase = 0
        self.stage = "all-low"
        self.candidates: list[str] = []
        self.kept: list[int] = []
        self.context: list[int] = []
        self.region: list[int] = []
        self.culprits: dict[str, str] = {}
        self.problem: str | None = None
        self._start_phase()

    # ------------------------------------------------------------------ queries
    @property
    def done(self) -> bool:
        return self.stage == "done"

    @property
    def current(self) -> Phase:
        return self.phases[min(self.phase, len(self.phases) - 1)]

    def proposal(self) -> Proposal | None:
        """The next step (``None`` when done)."""
        if self.stage == "done":
            return None
        if self.stage in ("all-low", "verify") or (self.stage == "sweep" and len(self.region) == 1):
            return Proposal("verify" if self.stage == "sweep" else self.stage, list(self.kept))
        r = self.region
        if self.stage == "sweep":
            node = r[-1] if self.direction == "forward" else r[0]
            return Proposal("split", list(self.kept), ([i for i in r if i != node], [node]))
        if self.mode == "linear":
            halves = (r[:1], r[1:]) if self.direction == "forward" else (r[-1:], r[:-1])
        else:
            mid = len(r) // 2
            halves = (r[:mid], r[mid:]) if self.direction == "forward" else (r[mid:], r[:mid])
        return Proposal("split", self.kept + self.context, halves)

    def plan(self, high: Iterable[int]) -> PrecisionPlan:
        """The current phase's configuration with candidates ``high`` at the fallback precision."""
        ph = self.current
        nodes = dict(self.culprits)
        for i in high:
            nodes[self.candidates[i]] = ph.fallback
        if ph.precision == "int8":
            return PrecisionPlan("int8", nodes, fallback=ph.fallback)
        return PrecisionPlan(ph.precision, nodes)

    def final_plan(self) -> PrecisionPlan:
        """Everything low except the culprits found so far (the plan a finished search verified)."""
        return self.plan(self.kept)

    def all_high_plan(self) -> PrecisionPlan:
        """The current phase with every candidate at its fallback (assumed or checked to pass)."""
        return self.plan(range(len(self.candidates)))

    def names(self, indices: Iterable[int]) -> list[str]:
        return [self.candidates[i] for i in indices]

    # ------------------------------------------------------------------ transitions
    def advance(self, prop: Proposal, choice: int, passed: bool) -> str:
        """Apply the verdict on ``prop`` (with ``choice`` for splits); return what was learnt."""
        if self.stage == "sweep":
            return self._sweep(prop, choice, passed)
        if prop.kind == "all-low":
            if passed:
                return self._phase_done(f"everything in {self.current.precision} passes")
            self.region = [i for i in range(len(self.candidates)) if i not in set(self.kept)]
            self.context = []
            self.stage = "split"
            return self._settle(f"all {self.current.precision} fails")
        if prop.kind == "verify":
            if passed:
                return self._phase_done("the culprits found so far suffice")
            if not self.context:
                self.problem = (
                    "a configuration that passed before now fails: the check is not reproducible "
                    "(nondeterministic backend or data?)"
                )
                self.stage = "done"
                return self.problem
            self.region, self.context = sorted(self.context), []
            self.stage = "sweep" if self.mode == "linear" and len(self.region) > 1 else "split"
            return self._settle("more culprits remain")
        assert prop.halves is not None
        chosen, other = prop.halves[choice], prop.halves[1 - choice]
        if passed:
            self.region = list(chosen)
            text = f"a culprit is among the {len(chosen)} node(s) that fell back"
        else:
            self.context = self.context + list(chosen)
            self.region = list(other)
            text = f"a culprit is among the other {len(other)} node(s)"
        if not self.region:
            self.problem = "the search ran out of suspects: results are not consistent"
            self.stage = "done"
            return self.problem
        return self._settle(text)

    def _settle(self, text: str) -> str:
        if self.stage == "split" and len(self.region) == 1:
            culprit = self.region[0]
            self.kept.append(culprit)
            self.region = []
            self.stage = "verify"
            text = f"{text}; culprit: {self.candidates[culprit]}"
            if self._dense(self.context):
                self.region, self.context = sorted(self.context), []
                self.stage = "sweep"
                return f"{text}; dense: one node at a time now"
        return text

    def _sweep(self, prop: Proposal, choice: int, passed: bool) -> str:
        """A sweep step: ``verify`` decides the last node, ``split`` one node (choice 0: every other suspect falls
        back, the node is lowered; choice 1: only the node falls back)."""
        if prop.kind == "verify":
            (node,) = self.region
            self.region = []
            if passed:
                return self._phase_done(f"{self.candidates[node]} is not needed; the culprits found suffice")
            self.kept.append(node)
            return self._phase_done(f"culprit: {self.candidates[node]}; the culprits found suffice")
        assert prop.halves is not None
        rest, (node,) = prop.halves
        name = self.candidates[node]
        if choice == 1:
            if passed:
                self.region = [node]
                return f"{name} suffices among the suspects; the others are not needed"
            self.region = [node, *rest] if self.direction == "forward" else [*rest, node]
            return f"a culprit is among the other {len(rest)} suspect(s); {name} is tried last"
        self.region = list(rest)
        if not passed:
            self.kept.append(node)
            return f"culprit: {name}"
        if self.mode == "auto" and len(self.region) > 1 and self._clean_run() > math.log2(len(self.region)):
            self.context, self.region = self.region, []
            self.stage = "verify"
            return f"{name} is not needed; sparse: bisecting again"
        return f"{name} is not needed"

    def _dense(self, unresolved: list[int]) -> bool:
        """Does ``auto`` sweep ``unresolved``? :func:`sweep_pays` over the latest :data:`RECENT_CULPRITS` culprits
        and the nodes resolved from the search's frontier (the nearest unresolved node) back to the culprit before
        them, or to the end the search started from (``forward`` resolves from the last candidate backwards)."""
        if self.mode != "auto" or len(unresolved) < 2:
            return False
        recent = len(self.kept[-RECENT_CULPRITS:])
        earlier = self.kept[-RECENT_CULPRITS - 1] if len(self.kept) > RECENT_CULPRITS else None
        if self.direction == "forward":
            resolved = (len(self.candidates) if earlier is None else earlier) - max(unresolved) - 1
        else:
            resolved = min(unresolved) - (-1 if earlier is None else earlier) - 1
        return recent >= MIN_CULPRITS and sweep_pays(len(unresolved), recent, max(resolved, 0))

    def _clean_run(self) -> int:
        """Nodes a sweep found not needed since its last culprit: past log2(suspects) (what bisecting costs to find
        the next culprit) the sweep has spent more on this gap than bisecting would (ski rental)."""
        if not self.kept:
            return 0
        if self.direction == "forward":
            return max(self.kept[-1] - max(self.region) - 1, 0)
        return max(min(self.region) - self.kept[-1] - 1, 0)

    def _phase_done(self, text: str) -> str:
        ph = self.current
        self.culprits.update({self.candidates[i]: ph.fallback for i in self.kept})
        self.phase += 1
        self._start_phase()
        return text

    def _start_phase(self) -> None:
        self.kept, self.context, self.region = [], [], []
        if self.phase >= len(self.phases):
            self.stage = "done"
            self.phase = len(self.phases) - 1
            self.kept = [i for i, n in enumerate(self.candidates) if n in self.culprits]
            return
        self.candidates = [c for c in self.phases[self.phase].candidates if c not in self.culprits]
        self.stage = "all-low"
        if not self.candidates:
            self._phase_done("no candidates")

    # ------------------------------------------------------------------ persistence
    def snapshot(self) -> dict[str, Any]:
        """The dynamic state (candidates of the current phase as indices into the phase's list)."""
        pool = {n: i for i, n in enumerate(self.current.candidates)}
        return {
            "phase": self.phase,
            "stage": self.stage,
            "candidates": pack(pool[n] for n in self.candidates),
            "kept": self.kept,
            "context": pack(self.context),
            "region": pack(self.region),
            "culprits": self.culprits,
            "problem": self.problem,
        }

    def restore(self, snap: dict[str, Any]) -> None:
        """Return to a snapshot taken from a search over the same phases."""
        self.phase = int(snap["phase"])
        self.stage = str(snap["stage"])
        pool = self.phases[self.phase].candidates
        self.candidates = [pool[i] for i in unpack(snap["candidates"])]
        self.kept = [int(i) for i in snap["kept"]]
        self.context = unpack(snap["context"])
        self.region = unpack(snap["region"])
        self.culprits = dict(snap["culprits"])
        self.problem = snap.get("problem")


# ---------------------------------------------------------------------- options
@dataclass
class BisectOptions:
    """Everything a bisection session depends on (saved with its state)."""

    model: str
    precision: str = "fp16"
    fallback: str = "fp32"
    subject: str = "ort"
    mode: str = "auto"
    direction: str = "forward"
    check: str | None = None
    check_timeout: float = DEFAULT_TIMEOUT
    fail_regex: tuple[str, ...] = ()
    """``--fail-regex`` patterns: a match in the check's output makes that run fail."""
    tolerances: ToleranceOptions = field(default_factory=ToleranceOptions)
    """Empty atol/rtol: :data:`DEFAULT_TOLERANCE` of the precision."""
    data: DataOptions = field(default_factory=DataOptions)
    calibration_cache: str | None = None
    write_calibration_cache: str | None = None
    workspace: str | None = None
    external_data_dir: str | None = None
    """The folder of the model's external data files (default: beside the model)."""

    def validate(self) -> None:
        require_one_of("--precision", self.precision, TARGETS)
        require_one_of("--fallback", self.fallback, FALLBACKS)
        if self.precision != "int8" and self.fallback != "fp32":
            raise TrtdbgError(
                f"--fallback {self.fallback} must be a higher precision than --precision "
                f"{self.precision}; use --fallback fp32"
            )
        require_one_of("--subject", self.subject, SUBJECTS)
        if self.calibration_cache and self.precision != "int8":
            raise TrtdbgError("--calibration-cache applies to --precision int8 only")
        self.check_command()  # timeout and --fail-regex validated here; the program in start()

    def absolute(self) -> None:
        """Make file options absolute, so a resume from another directory finds the same files."""
        self.model = os.path.abspath(self.model)
        self.data = self.data.absolute()
        for name in ("calibration_cache", "write_calibration_cache", "external_data_dir"):
            if getattr(self, name):
                setattr(self, name, os.path.abspath(getattr(self, name)))

    def ignored_by_resume(self, saved: BisectOptions, asked: Collection[str] | None = None) -> dict[str, Any]:
        """The options asked for with a resume of the bisection ``saved`` that it ignores: name → the value asked
        for, for each of :data:`RESUMED_OPTIONS` that differs from the saved one (data and tolerances that differ
        are refused instead: :meth:`BisectSession.resume`).

        ``asked``: the options the user set (default: those not at their defaults, as on a command line)."""
        default = BisectOptions(model=self.model)
        return {
            k: getattr(self, k)
            for k in RESUMED_OPTIONS
            if (k in asked if asked is not None else getattr(self, k) != getattr(default, k))
            and getattr(self, k) != getattr(saved, k)
        }

    def settings(self) -> CompareSettings:
        return self.tolerances.settings(DEFAULT_TOLERANCE[self.precision])

    def check_command(self) -> CheckCommand | None:
        """The ``--check`` command (``None``: the outputs are compared with the FP32 model)."""
        if self.check is None:
            return None
        return CheckCommand(self.check, self.check_timeout, tuple(self.fail_regex))

    def phases(self, analysis: Any) -> list[Phase]:
        if self.precision != "int8":
            return [Phase(self.precision, "fp32", analysis.candidates(self.precision))]
        int8 = Phase("int8", self.fallback, analysis.candidates("int8"))
        if self.fallback == "fp32":
            return [int8]
        return [Phase(self.fallback, "fp32", analysis.candidates(self.fallback)), int8]

    # ------------------------------------------------------------------ saved state
    def to_state(self) -> dict[str, Any]:
        """``options`` in the state file: the flat layout every trtdbg version reads (newer fields are in
        :meth:`to_state_v2`, which older versions ignore)."""
        legacy = {k: v for k, v in asdict(self).items() if k in _LEGACY_KEYS}
        legacy.update({k: list(getattr(self.tolerances, k)) for k in ("atol", "rtol", "check_error_stat")})
        legacy.update({k: json_value(getattr(self.data, k)) for k in _LEGACY_DATA_KEYS})
        return legacy

    def to_state_v2(self) -> dict[str, Any]:
        """``options_v2`` in the state file: every field, data and tolerances nested."""
        return json_fields(self)

    @classmethod
    def from_state(cls, doc: dict[str, Any], workspace: str | None) -> BisectOptions:
        """The options of a saved state (``options_v2`` when present, else the flat layout of older versions)."""
        if "options_v2" in doc:
            saved = dict(doc["options_v2"])
            saved["data"] = DataOptions(**saved.get("data", {}))
            saved["tolerances"] = ToleranceOptions(**saved.get("tolerances", {}))
        else:
            flat = dict(doc["options"])
            saved = {k: v for k, v in flat.items() if k not in _LEGACY_DATA_KEYS + ("atol", "rtol", "check_error_stat")}
            saved["data"] = DataOptions(**{k: flat[k] for k in _LEGACY_DATA_KEYS if k in flat})
            saved["tolerances"] = ToleranceOptions(
                **{k: flat[k] for k in ("atol", "rtol", "check_error_stat") if k in flat}
            )
        saved["workspace"] = workspace
        return cls(**saved)


RESUMED_OPTIONS = ("precision", "fallback", "subject", "mode", "direction", "check", "calibration_cache")
"""Options a resumed bisection takes from its saved state (a different value asked for is ignored, with a warning)."""
_LEGACY_KEYS = (
    "model",
    "precision",
    "fallback",
    "subject",
    "mode",
    "direction",
    "check",
    "check_timeout",
    "calibration_cache",
    "write_calibration_cache",
    "workspace",
)
"""Fields of the flat ``options`` layout that are not data or tolerances (read by every trtdbg version)."""
_LEGACY_DATA_KEYS = ("shapes", "seed", "val_range", "iterations", "data_loader_script", "load_inputs")


# ---------------------------------------------------------------------- session
class BisectSession:
    """A bisection in a workspace: evaluate, step, undo, resume; every step is persisted before it is reported."""

    def __init__(
        self, options: BisectOptions, *, resume_doc: dict[str, Any] | None = None, events: JobEvents | None = None
    ) -> None:
        """Validate the options; nothing is loaded or run until :meth:`start`."""
        options.validate()
        options.absolute()
        self.options = options
        self.events = events or JobEvents()
        self.warnings = self.events.warnings
        self._resume_doc = resume_doc

    def start(self) -> BisectSession:
        """Load the model and data, calibrate (INT8), then check the baseline and save the state — or, for a
        resumed session, load the saved state. Returns the session."""
        from engine_core.backend.ort import OrtRunner
        from engine_core.model.loader import check_external_data, check_runtime_support, load_model
        from engine_core.model.weights import estimate_memory, require_memory
        from engine_core.precision.build import PlanBuilder
        from engine_core.precision.int8 import feeds_digest

        options, resume_doc = self.options, self._resume_doc
        self.workspace = Workspace.for_model(options.model, options.workspace)
        if self.workspace.note:
            self._warn(self.workspace.note)
        self.workspace.check_writable()
        self.workdir = self.workspace.path("bisect")
        self._lock = lock_job(self.workspace, "bisect")
        weakref.finalize(self, self._lock.release)
        self.model_sha = file_sha256(options.model) if os.path.isfile(options.model) else ""
        if resume_doc is not None and resume_doc["model"].get("sha256") != self.model_sha:
            raise TrtdbgError(
                f"{options.model} changed since this bisection started (its SHA-256 differs); start "
                "over without --resume"
            )
        stage = self.events.stage
        stage(f"loading {os.path.basename(options.model)}")
        model = load_model(options.model, load_external_data=False)
        check_runtime_support(model, options.model)
        check_external_data(model, options.model, options.external_data_dir)
        require_memory(f"bisect of {options.model}", estimate_memory(model, [options.precision, options.fallback]))
        from engine_core.precision.opset import analyse

        stage("analysing the nodes", len(model.graph.node), None, "nodes")
        model, analysis, self.notes = analyse(
            model, options.model, [options.precision, options.fallback], options.external_data_dir
        )
        if options.subject.startswith("ort-cuda"):
            import onnxruntime

            from engine_core.precision.cuda_kernels import keep_without_kernel, session_probe

            keep_without_kernel(
                analysis, [options.precision, options.fallback], session_probe(), "CUDA", onnxruntime.__version__
            )
        self.builder = PlanBuilder(model, options.model, self.workdir, analysis)
        analysis = self.builder.analysis
        if not any(ph.candidates for ph in options.phases(analysis)):
            demoted = len(analysis.demotions(options.precision))
            raise TrtdbgError(
                f"bisect: {options.model} has no node that can run in {options.precision} ({len(analysis.pos)} "
                f"node(s), {demoted} kept in higher precision by the rules); nothing to bisect"
            )
        metas = OrtRunner(model, options.model, data_dir=options.external_data_dir).input_metadata()
        source, feeds = options.data.read(metas, options.model, self.events)
        for w in source.warnings:
            self._warn(w)
        self.data_text = source.describe()
        self.feeds_sha = feeds_digest(feeds)
        if resume_doc is not None and resume_doc.get("feeds_sha256") != self.feeds_sha:
            raise TrtdbgError(
                "the input data differs from the data this bisection started with (a data loader "
                "that is not deterministic?); start over without --resume"
            )
        self.calibration_cache: str | None = None
        int8_pool = analysis.candidates("int8")
        if options.precision == "int8":
            if options.calibration_cache:
                self.builder.import_cache(options.calibration_cache)
                int8_pool, missing = self.builder.quantizable(int8_pool)
                if missing:
                    self._warn(
                        f"{len(missing)} quantizable node(s) have no scale in the calibration cache (e.g. "
                        f"'{missing[0]}'); they stay at the fallback precision"
                    )
            else:
                stage("calibrating INT8 ranges", len(feeds), None, "samples")
                self.builder.calibrate(feeds)
            for w in self.builder.warnings:
                self._warn(w)
            self.calibration_cache = self._write_trt_cache()
        check = options.check_command()
        if check is not None:
            check.verify()
        self.evaluator = Evaluator(self.builder, options.subject, feeds, options.settings(), self.workdir, check)
        self.evaluator.on_stage = self.events.on_stage
        phases = options.phases(analysis)
        if options.precision == "int8":
            phases[-1].candidates = [c for c in phases[-1].candidates if c in set(int8_pool)]
        self.search = Search(phases, options.mode, options.direction)
        self.history: list[dict[str, Any]] = []
        self.cache: dict[str, dict[str, Any]] = {}
        self.evaluations = 0
        self.demoted = {n: r for p in {ph.precision for ph in phases} for n, r in analysis.demotions(p).items()}
        if resume_doc is not None:
            self._load(resume_doc)
        else:
            backup = backup_state(self.workspace)
            if backup is not None:
                self._warn(f"a previous bisection state was moved to {backup}")
            self._baseline()
            self.save()
        return self

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def resume(
        cls,
        model: str,
        workspace: str | None = None,
        *,
        events: JobEvents | None = None,
        data: DataOptions | None = None,
        tolerances: ToleranceOptions | None = None,
        external_data_dir: str | None = None,
    ) -> BisectSession:
        """The bisection saved in the workspace of ``model``, with the options it was started with (call
        :meth:`start` to load it).

        ``data``/``tolerances``: options given again with the resume; any difference from the saved ones is refused
        (the cached evaluations were judged on the old data and tolerances). ``external_data_dir``: where the
        model's external data is now (default: where it was when the bisection started)."""
        ws = Workspace.for_model(model, workspace)
        doc = load_state(ws)
        try:
            options = BisectOptions.from_state(doc, workspace)
        except (TypeError, ValueError, AttributeError) as exc:
            raise TrtdbgError(
                f"bisection state {state_path(ws)} is corrupted (options: {exc}); start over without --resume"
            ) from None
        if os.path.abspath(options.model) != os.path.abspath(model):
            raise TrtdbgError(f"the bisection in {ws.root} is for {options.model}, not {model}")
        if external_data_dir is not None:
            options.external_data_dir = external_data_dir
        changes = {
            "data": data.absolute().differences(options.data) if data is not None else [],
            "tolerance": tolerances.differences(options.tolerances) if tolerances is not None else [],
        }
        for what, changed in changes.items():
            if changed:
                raise TrtdbgError(
                    f"--resume: the bisection in {ws.root} started with other {what} options ({'; '.join(changed)}); "
                    f"leave them out to continue, or start over without --resume"
                )
        return cls(options, resume_doc=doc, events=events)

    def _warn(self, msg: str) -> None:
        self.events.warn(msg)

    def _load(self, doc: dict[str, Any]) -> None:
        try:
            phases = [Phase(p["precision"], p["fallback"], list(p["candidates"])) for p in doc["phases"]]
            self.search = Search(phases, self.options.mode, self.options.direction)
            self.search.restore(doc["search"])
            self.history = list(doc["history"])
            if not all(
                isinstance(h, dict) and "search" in h and "evaluation" in h.get("step", {}) for h in self.history
            ):
                raise ValueError("history entries need 'search' and 'step'")
            self.cache = {str(k): dict(v) for k, v in doc["cache"].items()}
            self.evaluations = int(doc["evaluations"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise TrtdbgError(
                f"bisection state {state_path(self.workspace)} is corrupted ({type(exc).__name__}: "
                f"{exc}); start over without --resume"
            ) from None

    def _write_trt_cache(self) -> str | None:
        from engine_core.precision.calib_cache import scales_from_ranges, write_trt_cache

        quantizer = self.builder.quantizer
        if quantizer is None:
            return None
        target = self.options.write_calibration_cache or str(self.workdir / "calibration.cache")
        return str(write_trt_cache(target, scales_from_ranges(quantizer.ranges())))

    def _baseline(self) -> None:
        """Every candidate at its fallback: the reference model itself when that is FP32 and the comparison judges
        (not run); a --check command is run on it first."""
        plan = self.search.all_high_plan()
        if self.evaluator.check is None and self.search.current.fallback == "fp32":
            self.cache[_hash(plan)] = Evaluation(True, judged_by="identity", detail="the FP32 model itself").to_json()
            return
        self.events.stage(f"checking the baseline: every candidate at {self.search.current.fallback}")
        ev = self._evaluate(plan, len(self.history) + 1)
        self.history.append(
            {
                "search": self.search.snapshot(),
                "step": self._record(
                    Proposal("baseline", list(range(len(self.search.candidates)))),
                    0,
                    ev,
                    cached=False,
                    outcome="baseline (every candidate at the fallback)" + ("" if ev.passed else " FAILS"),
                ),
            }
        )
        if not ev.passed:
            self.save()
            what = "--check command" if self.evaluator.check else "comparison"
            fix = (
                "raise --check-timeout if it needs longer"
                if (ev.detail or "").startswith("timed out")
                else "loosen --atol/--rtol or fix the check"
            )
            raise TrtdbgError(
                f"the {what} fails even with every node at {self.search.current.fallback} "
                f"({ev.summary()}); bisection needs a passing baseline: {fix}"
            )

    # ------------------------------------------------------------------ stepping
    def close(self) -> None:
        """Release the workspace's bisect lock (also done when the session is garbage-collected)."""
        lock = getattr(self, "_lock", None)  # absent when start() stopped before taking it
        if lock is not None:
            lock.release()

    def proposal(self) -> Proposal | None:
        """The next step, or ``None`` when the search is finished."""
        return self.search.proposal()

    def _evaluate(self, plan: PrecisionPlan, step: int) -> Evaluation:
        ev = self.evaluator.evaluate(plan, step)
        self.evaluations += 1
        return ev

    def step(self, choice: int = 0, verdict: bool | None = None) -> dict[str, Any]:
        """Evaluate the pending step (``choice``: which half falls back; ``verdict``: your own pass/fail instead of
        a measurement) and advance; the state is saved before this returns."""
        prop = self.search.proposal()
        if prop is None:
            raise TrtdbgError("the bisection is finished; nothing to step")
        if choice not in (0, 1) or (prop.halves is None and choice != 0):
            raise TrtdbgError(f"choice {choice} is not valid here; choose 0 or 1 for a split")
        plan = self.search.plan(prop.config(choice))
        key = _hash(plan)
        index = len(self.history) + 1
        cached = False
        if verdict is not None:
            ev = Evaluation(bool(verdict), judged_by="user")
        elif key in self.cache:
            ev, cached = Evaluation.from_json(self.cache[key]), True
        else:
            ev = self._evaluate(plan, index)
            self.cache[key] = ev.to_json()
        before = self.search.snapshot()
        record = self._record(prop, choice, ev, cached=cached, outcome="")
        record["outcome"] = self.search.advance(prop, choice, ev.passed)
        self.history.append({"search": before, "step": record})
        if self.search.done:
            self._finish()
        self.save()
        return record

    def undo(self) -> dict[str, Any] | None:
        """Take back the last step (its evaluation stays cached); ``None`` when there is nothing to undo."""
        if not self.history or self.history[-1]["step"]["kind"] == "baseline":
            return None
        last = self.history.pop()
        self.search.restore(last["search"])
        self.save()
        return last["step"]

    def back(self) -> list[dict[str, Any]]:
        """Undo up to and including the last split step (the last choice); the steps undone, latest first."""
        undone: list[dict[str, Any]] = []
        while True:
            step = self.undo()
            if step is None:
                return undone
            undone.append(step)
            if step["kind"] == "split":
                return undone

    def run(self) -> dict[str, Any]:
        """Step automatically (the first half falls back) until done or cancelled; return :meth:`result`.

        Each step is reported as an item (:meth:`render_step`) and as progress (evaluations so far of the bound for
        one culprit); a cancel stops after the step in flight, with every step saved (``--resume`` continues)."""
        while self.search.proposal() is not None and not self.events.cancelled:
            record = self.step(0)
            self.events.item(self.render_step(record))
            bound = self.evaluation_bound()
            self.events.progress(Progress(min(self.evaluations, bound), bound, "evaluations", record["outcome"]))
        return self.result()

    def evaluation_bound(self) -> int:
        """Evaluations one culprit costs at most: all low, ceil(log2 N) splits, one verify."""
        n = len(self.search.phases[0].candidates)
        return math.ceil(math.log2(n)) + 2 if n > 1 else 2

    def write_candidate(self, prop: Proposal, choice: int = 0) -> Path:
        """Write the model of a proposed configuration (real low-precision types, Q/DQ) for judging it yourself."""
        from engine_core.model.save import save_rewritten

        model, _ = self.builder.build(self.search.plan(prop.config(choice)), emulated=False)
        target = self.workdir / "candidate.onnx"
        save_rewritten(model, target, self.builder.data_dir, self.options.model, reuse="copy")
        return target

    def _record(self, prop: Proposal, choice: int, ev: Evaluation, *, cached: bool, outcome: str) -> dict[str, Any]:
        ph = self.search.current
        rec: dict[str, Any] = {
            "index": len(self.history) + 1,
            "kind": prop.kind,
            "phase": f"{ph.precision}->{ph.fallback}",
            "suspects": len(self.search.region) if prop.kind == "split" else None,
            "high": len(prop.config(choice)),
            "passed": ev.passed,
            "cached": cached,
            "evaluation": ev.to_json(),
            "outcome": outcome,
        }
        if prop.halves is not None:
            rec["choice"] = choice
            rec["halves"] = [pack(prop.halves[0]), pack(prop.halves[1])]
        rec["phase_index"] = self.search.phase
        return rec

    def _finish(self) -> None:
        analysis = self.builder.analysis
        plan = self.final_plan()
        plan.save(self.workdir / "plan.json", analysis)

    # ------------------------------------------------------------------ results
    def final_plan(self) -> PrecisionPlan:
        plan = self.search.final_plan()
        plan.model = self.options.model
        if self.builder.quantizer is not None and plan.default == "int8":
            plan.calibration = str(self.builder.quantizer.ranges_path.resolve())
        return plan

    def culprits(self) -> dict[str, str]:
        """``{node: precision it is kept at}`` in topological order (found so far, current phase included)."""
        found = dict(self.search.culprits)
        ph = self.search.current
        if not self.search.done:
            found.update({self.search.candidates[i]: ph.fallback for i in self.search.kept})
        order = self.builder.analysis.pos
        return dict(sorted(found.items(), key=lambda kv: order.get(kv[0], 0)))

    def passed(self) -> bool:
        """True when the search finished and its final plan was verified to pass."""
        if not self.search.done or self.search.problem:
            return False
        entry = self.cache.get(_hash(self.search.final_plan()))
        return bool(entry and entry.get("passed"))

    def render_step(self, record: dict[str, Any]) -> dict[str, Any]:
        """A step with node names (halves resolved against the candidates of its phase at that time)."""
        out = {k: v for k, v in record.items() if k not in ("halves", "phase_index")}
        if "halves" in record:
            idx = record["index"] - 1
            snap = self.history[idx]["search"] if idx < len(self.history) else self.search.snapshot()
            pool = self.search.phases[int(snap["phase"])].candidates
            cands = [pool[i] for i in unpack(snap["candidates"])]
            out["halves"] = [[cands[i] for i in unpack(h)] for h in record["halves"]]
            out["fallback"] = out["halves"][record["choice"]]
        return out

    def steps(self) -> list[dict[str, Any]]:
        return [self.render_step(h["step"]) for h in self.history]

    def result(self) -> dict[str, Any]:
        """The ``--json`` document: culprits, evaluations, passed, plan, steps (+ details)."""
        analysis = self.builder.analysis
        plan_path = self.workdir / "plan.json"
        plan = self.final_plan()
        return {
            "culprits": list(self.culprits()),
            "evaluations": self.evaluations,
            "passed": self.passed(),
            "plan": str(plan_path.resolve()) if self.search.done else None,
            "steps": self.steps(),
            "finished": self.search.done,
            "problem": self.search.problem,
            "model": self.options.model,
            "precision": self.options.precision,
            "fallback": self.options.fallback,
            "subject": self.options.subject,
            "emulated": self.evaluator.emulated,
            "mode": self.options.mode,
            "candidates": {f"{p.precision}->{p.fallback}": len(p.candidates) for p in self.search.phases},
            "evaluation_bound": self.evaluation_bound(),
            "culprit_precisions": self.culprits(),
            "demoted": self.demoted,
            "layer_precisions": plan.layer_precisions(analysis),
            "calibration_cache": self.calibration_cache,
            "data": self.data_text,
            "settings": self.evaluator.settings.describe(),
            "state": str(state_path(self.workspace).resolve()),
            "warnings": list(self.warnings),
            "precision_coverage": self.coverage(plan).to_json(),
        }

    def coverage(self, plan: PrecisionPlan | None = None) -> Any:
        """:class:`~engine_core.precision.coverage.Coverage` of ``plan`` (default: the final plan)."""
        from engine_core.precision.coverage import coverage

        plan = plan or self.final_plan()
        analysis = self.builder.analysis
        return coverage(analysis, plan.resolve(analysis), plan, self.notes)

    def save(self) -> Path:
        """Persist the whole session (atomic replace)."""
        return save_state(
            self.workspace,
            {
                "model": {"path": self.options.model, "sha256": self.model_sha},
                "options": self.options.to_state(),
                "options_v2": self.options.to_state_v2(),
                "feeds_sha256": self.feeds_sha,
                "phases": [asdict(p) for p in self.search.phases],
                "search": self.search.snapshot(),
                "history": self.history,
                "cache": self.cache,
                "evaluations": self.evaluations,
                "updated": time.time(),
            },
        )


def _hash(plan: PrecisionPlan) -> str:
    return hashlib.sha256(plan.key().encode()).hexdigest()[:24]
