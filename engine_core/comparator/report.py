"""The compare report: the stable JSON document and the human-readable text form."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from engine_core.cells import fit
from engine_core.comparator.engine import CompareSummary, TensorResult
from engine_core.comparator.matching import Unmatched
from engine_core.comparator.metrics import TensorStats
from engine_core.safetext import printable, printable_lines

REFERENCE_ONLY = "(none: reference only)"
"""The report's ``subject`` when only the reference ran (e.g. ``--save-outputs`` without a subject)."""


@dataclass
class CompareReport:
    """Everything a finished compare says: results in order, summary and context."""

    reference: str
    subject: str
    results: list[TensorResult]
    summary: CompareSummary
    model: str | None = None
    data: str = ""
    iterations: int = 1
    settings: dict[str, Any] = field(default_factory=dict)
    unobservable: dict[str, str] = field(default_factory=dict)
    unmatched: list[Unmatched] = field(default_factory=list)
    """Tensors to compare left without a (compatible) counterpart, with the reason."""
    warnings: list[str] = field(default_factory=list)
    validation: list[dict[str, Any]] | None = None
    """``--validate``: NaN/Inf found in any run (``side``, ``name``, ``iteration``, ``nan``, ``inf``); ``None`` = not asked."""
    precision_coverage: dict[str, Any] | None = None
    """A precision subject's coverage (``{precision, nodes_low, nodes_total, kept}``); ``None`` otherwise."""
    coverage_text: str = ""

    @property
    def passed(self) -> bool:
        """True when everything compared passed and every required tensor (outputs, named marks) was compared."""
        return self.summary.passed and not any(u.required for u in self.unmatched) and not self.validation

    def to_json(self) -> dict[str, Any]:
        """The stable JSON document (``passed, ref, subject, tensors, first_failing, first_nonfinite`` + context)."""
        return {
            "passed": self.passed,
            "ref": self.reference,
            "subject": self.subject,
            "tensors": [r.to_dict() for r in self.results],
            "first_failing": _locate(self.summary.first_failing),
            "first_failing_kind": self.summary.first_failing_kind,
            "first_failing_float": _locate(self.summary.first_failing_float),
            "first_nonfinite": _locate(self.summary.first_nonfinite),
            "model": self.model,
            "iterations": self.iterations,
            "data": self.data,
            "settings": self.settings,
            "summary": {
                "compared": self.summary.compared,
                "failed": self.summary.failed,
                "batches": self.summary.batches,
                "batch_note": self.summary.batch_note,
                "peak_batch_bytes": self.summary.peak_batch_bytes,
                "cancelled": self.summary.cancelled,
                "stopped_early": self.summary.stopped_early,
                "matched_inf_tensors": self.summary.matched_inf_tensors,
                "elapsed_s": round(self.summary.elapsed_s, 4),
            },
            "non_exact_matches": [
                {"name": r.slot.name, "subject_name": r.slot.subject_name, "match": r.slot.match}
                for r in self.results
                if r.slot.match != "exact" and r.iteration == 0
            ],
            "unobservable": [{"name": k, "reason": v} for k, v in self.unobservable.items()],
            "unmatched": [u.to_dict() for u in self.unmatched],
            "validation": self.validation,
            "warnings": list(self.warnings),
            "precision_coverage": self.precision_coverage,
        }

    def dumps(self, indent: bool = True, extra: dict[str, Any] | None = None) -> str:
        """JSON text (indented, or compact; ``extra`` keys added); non-finite floats become ``"NaN"``,
        ``"Infinity"``, ``"-Infinity"``."""
        doc = {**self.to_json(), **(extra or {})}
        tensors = doc.pop("tensors")
        doc = json_safe(doc)
        doc["tensors"] = [_safe_record(t) for t in tensors]
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2 if indent else 0).decode()

    def to_text(self, show_all: bool = False, top: int = 25) -> str:
        """Human-readable report: failing (or all) tensors in graph order, then the summary."""
        lines = [f"Compare | reference: {self.reference} | subject: {self.subject}"]
        lines.append(f"Data: {self.data} | {self.iterations} iteration(s) | {_settings_line(self.settings)}")
        if self.coverage_text:
            lines.append(f"[I] {self.coverage_text}")
        for w in self.warnings:
            lines.append(f"[W] {w}")
        shown = self.results if show_all else [r for r in self.results if not r.stats.passed]
        if shown:
            lines.append("")
            lines.append(
                f"{'#':>6}  {'it':>2}  {'tensor':<48} {'max_abs':>10} {'max_rel':>10} {'cosine':>9} {'nan/inf':>8}  verdict"
            )
            for r in shown[: None if show_all else top]:
                st = r.stats
                verdict = "PASS" if st.passed else ("FAIL: " + st.reason if st.reason else "FAIL")
                nf = f"{st.nan}/{st.inf}" if st.nan or st.inf else "-"
                lines.append(
                    f"{r.slot.topo_index:>6}  {r.iteration:>2}  {fit(printable(r.slot.name), 48)} {_g(st.max_abs):>10} {_g(st.max_rel):>10}"
                    f" {_g(st.cosine, 6):>9} {nf:>8}  {verdict}"
                )
            if not show_all and len(shown) > top:
                lines.append(f"        … {len(shown) - top} more failing (use --show-all or --json)")
        if self.unobservable:
            lines.append(
                f"[I] {len(self.unobservable)} tensor(s) not observable (e.g. {next(iter(self.unobservable))}: "
                f"{next(iter(self.unobservable.values()))})"
            )
        non_exact = [r for r in self.results if r.slot.match != "exact" and r.iteration == 0]
        if non_exact:
            r = non_exact[0]
            lines.append(
                f"[I] {len(non_exact)} tensor(s) matched by {r.slot.match}, not by name "
                f"(e.g. {r.slot.name} ↔ {r.slot.subject_name})"
            )
        if self.unmatched:
            required = sum(u.required for u in self.unmatched)
            level = "[E]" if required else "[W]"
            shown_u = "; ".join(f"{u.name}: {u.reason}" for u in self.unmatched[:3])
            more = f"; … {len(self.unmatched) - 3} more (--json lists all)" if len(self.unmatched) > 3 else ""
            lines.append(
                f"{level} {len(self.unmatched)} tensor(s) not compared, no compatible counterpart"
                f"{f' ({required} required)' if required else ''}: {shown_u}{more}"
            )
        if self.validation is not None:
            v = self.validation
            if v:
                shown_v = "; ".join(
                    f"{x['side']} {x['name']} it {x['iteration']}: {x['nan']} NaN, {x['inf']} Inf" for x in v[:3]
                )
                more = f"; … {len(v) - 3} more (--json lists all)" if len(v) > 3 else ""
                lines.append(f"[E] Validation: NaN/Inf in {len(v)} tensor(s): {shown_v}{more}")
            else:
                lines.append("[I] Validation: no NaN/Inf in any run")
        s = self.summary
        if s.matched_inf_tensors:
            rule = (
                "counted equal"
                if self.settings.get("infinities_compare_equal", True)
                else "NaN errors: Polygraphy's rule, --infinities-compare-equal counts them equal"
            )
            lines.append(f"[I] {s.matched_inf_tensors} tensor comparison(s) hold the same ±inf on both sides ({rule})")
        if s.batches > 1:
            lines.append(f"[I] {s.batch_note}")
        if self.subject == REFERENCE_ONLY:
            lines.append(
                "[I] reference only: nothing was compared (give --subject SPEC, --subject-model M2 or "
                "--load-outputs F to compare against it)"
            )
        lines.append("")
        if s.first_failing_kind == "float":
            lines.append(f"First failing (float tensors): {_where(s.first_failing)}")
        else:
            lines.append(f"First failing: {_where(s.first_failing)}")
            ff = s.first_failing_float
            if ff is not None and ff is not s.first_failing:
                lines.append(f"First failing float tensor: {_where(ff)}")
        lines.append(f"First NaN/Inf: {_where(s.first_nonfinite)}")
        state = " (cancelled)" if s.cancelled else (" (stopped at first failure)" if s.stopped_early else "")
        lines.append(
            f"{'PASSED' if self.passed else 'FAILED'} | {s.compared - s.failed}/{s.compared} tensor comparisons passed"
            f" | {s.batches} batch(es) | {s.elapsed_s:.2f}s{state}"
        )
        return printable_lines(lines)


def _locate(r: TensorResult | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {
        "name": r.slot.name,
        "node": r.slot.node,
        "topo_index": r.slot.topo_index,
        "iteration": r.iteration,
        "max_abs": r.stats.max_abs,
        "max_rel": r.stats.max_rel,
        "nan": r.stats.nan,
        "inf": r.stats.inf,
    }


def _where(r: TensorResult | None) -> str:
    if r is None:
        return "none"
    node = f" (node {r.slot.node})" if r.slot.node else ""
    return f"{r.slot.name}{node}, #{r.slot.topo_index}, iteration {r.iteration}"


def _g(x: float, digits: int = 4) -> str:
    return f"{x:.{digits}g}"


def _settings_line(settings: dict[str, Any]) -> str:
    if not settings:
        return ""
    return f"atol={settings.get('atol')} rtol={settings.get('rtol')} check={settings.get('check_error_stat')}"


_FLOAT_FIELDS = tuple(name for name, f in TensorStats.__dataclass_fields__.items() if str(f.type).startswith("float"))


def _safe_record(d: dict[str, Any]) -> dict[str, Any]:
    """One tensor record with its non-finite float fields spelled as strings (flat: no recursion)."""
    for key in _FLOAT_FIELDS:
        v = d[key]
        if v is not None and not math.isfinite(v):
            d[key] = "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
    return d


def json_safe(obj: Any) -> Any:
    """``obj`` with non-finite floats replaced by ``\"NaN\"``/``\"Infinity\"``/``\"-Infinity\"`` strings."""
    if isinstance(obj, float):
        if math.isnan(obj):
            return "NaN"
        if math.isinf(obj):
            return "Infinity" if obj > 0 else "-Infinity"
        return obj
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj
