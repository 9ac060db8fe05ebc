"""What `polygraphy run` adds around the ``simple`` comparator: validation, Top-K postprocessing,
other compare functions, metric thresholds and a user compare script.

* ``--validate``: every fetched tensor of every run (reference and subject) is checked for NaN/Inf.
* ``--postprocess [NAME:]top-K[,axis=A]``: tensors are replaced by the indices of their K largest
  values along an axis (default last) before comparison, on both sides (Polygraphy's
  ``TopKPostprocessFunc``: stable ``argsort(-x)``, K clamped to the axis length).
* ``--compare-func simple|indices|l2|cosine_similarity|snr`` (several = all must pass): ``indices``
  is Polygraphy's ``IndicesCompareFunc`` (each value found within ``--index-tolerance`` positions,
  the last ``tolerance`` entries ignored); ``l2``/``cosine_similarity``/``snr`` use Polygraphy's
  default thresholds (1e-5, 0.997, 20 dB).
* ``--check-metric 'cosine>=0.999'``: thresholds on ``cosine``, ``snr`` (dB), ``l2`` or any
  per-tensor statistic (``max_abs``, ``mean_rel``, …); all must hold.
* ``--compare-func-script script.py[:compare_outputs]``: ``func(subject, reference)`` gets two
  ``{name: array}`` dicts (one batch of tensors, MODEL's names; subject first as Polygraphy's
  runner 0) and returns ``{name: verdict}`` (anything ``bool()`` accepts, e.g. Polygraphy's
  ``OutputCompareResult``); its verdicts replace ``simple``'s.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine_core.comparator.metrics import TensorStats
from engine_core.comparator.tolerances import PerTensor, parse_per_tensor
from engine_core.errors import TrtdbgError

COMPARE_FUNCS = ("simple", "indices", "l2", "cosine_similarity", "snr")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_METRIC = re.compile(r"\s*(?:(?P<name>.+):)?(?P<metric>[a-z_0-9]+)\s*(?P<op>>=|<=|>|<)\s*(?P<value>\S+)\s*")
_ALIASES = {"cosine_similarity": "cosine", "snr_db": "snr"}
_STATS = tuple(
    f
    for f in TensorStats.__dataclass_fields__
    if f.startswith(("max_", "mean_", "median_", "std_", "p9")) or f == "mismatches"
)


@dataclass(frozen=True)
class MetricCheck:
    """``metric op value`` for every tensor, or only ``tensor`` when given (``NAME:cosine>=0.999``)."""

    metric: str
    op: str
    value: float
    tensor: str | None = None

    @classmethod
    def parse(cls, spec: str) -> MetricCheck:
        """``"cosine>=0.999"``, ``"snr>20"``, ``"logits:l2<=1e-3"``."""
        m = _METRIC.fullmatch(spec)
        metric = _ALIASES.get(m.group("metric"), m.group("metric")) if m else ""
        if not m or metric not in ("cosine", "snr", "l2", *_STATS):
            raise TrtdbgError(
                f"--check-metric '{spec}': expected [TENSOR:]METRIC OP VALUE with METRIC cosine, snr, l2 or a "
                f"statistic ({', '.join(_STATS[:4])}, …) and OP >=, <=, > or <, e.g. 'cosine>=0.999'"
            )
        try:
            value = float(m.group("value"))
        except ValueError:
            raise TrtdbgError(f"--check-metric '{spec}': '{m.group('value')}' is not a number") from None
        return cls(metric, m.group("op"), value, m.group("name"))

    def text(self) -> str:
        """``cosine>=0.999``."""
        return f"{self.tensor + ':' if self.tensor else ''}{self.metric}{self.op}{self.value:g}"

    def failure(self, stats: TensorStats, l2: float | None) -> str | None:
        """Why ``stats`` breaks this check (NaN never holds), or ``None``."""
        if self.tensor is not None and self.tensor != stats.name:
            return None
        value = {"cosine": stats.cosine, "snr": stats.snr_db, "l2": l2}.get(self.metric)
        if value is None and self.metric != "l2":
            value = float(getattr(stats, self.metric))
        if value is not None and not np.isnan(value) and _OPS[self.op](value, self.value):
            return None
        return f"{self.metric} {value:.6g} violates {self.metric}{self.op}{self.value:g}"


@dataclass(frozen=True)
class TopK:
    """Polygraphy's ``top-K[,axis=A]`` postprocessing for one tensor (``tensor`` ``""`` = every tensor)."""

    k: int
    axis: int = -1
    tensor: str = ""

    def apply(self, array: np.ndarray) -> np.ndarray:
        """Indices of the K largest values along the axis (stable order, K clamped)."""
        a = np.asarray(array)
        if a.ndim == 0:
            return a
        idx = np.argsort(-a, axis=self.axis, kind="stable")
        return np.take(idx, np.arange(0, min(self.k, idx.shape[self.axis])), axis=self.axis)


def parse_postprocess(specs: Sequence[str]) -> dict[str, TopK]:
    """``["top-5", "logits:top-3,axis=1"]`` → ``{"": TopK(5), "logits": TopK(3, 1)}``."""
    out: dict[str, TopK] = {}
    for spec in specs:
        name, sep, func = spec.rpartition(":") if ":top-" in spec or spec.startswith("top-") else ("", "", spec)
        body, _, axis = func.partition(",")
        m = re.fullmatch(r"top-(\d+)", body.strip())
        axis_m = re.fullmatch(r"(?:axis=)?(-?\d+)", axis.strip()) if axis else None
        if not m or int(m.group(1)) < 1 or (axis and not axis_m):
            raise TrtdbgError(
                f"--postprocess '{spec}': expected [TENSOR:]top-K[,axis=A] with K >= 1, e.g. top-5 or logits:top-5,axis=1"
            )
        out[name] = TopK(int(m.group(1)), int(axis_m.group(1)) if axis_m else -1, name)
    return out


def indices_match(sub: np.ndarray, ref: np.ndarray, tolerance: int) -> str | None:
    """Polygraphy's ``IndicesCompareFunc`` on one pair (subject = runner 0); the failure, or ``None``."""
    if sub.shape != ref.shape:
        return f"indices: shapes differ ({sub.shape} vs {ref.shape})"
    if sub.ndim == 0:
        sub, ref = sub.reshape(1), ref.reshape(1)
    for batch in np.ndindex(sub.shape[:-1]):
        vals0 = sub[batch][:-tolerance] if tolerance > 0 else sub[batch]
        vals1 = ref[batch]
        for i0, v0 in enumerate(vals0):
            if v0 == vals1[i0]:
                continue
            found = np.flatnonzero(vals1 == v0)
            if found.size < 1:
                return f"indices: value {v0} at {(*batch, i0)} not found in the reference"
            if abs(int(found[0]) - i0) > tolerance:
                return f"indices: value {v0} moved {abs(int(found[0]) - i0)} places (index tolerance {tolerance})"
    return None


@dataclass
class ExtraChecks:
    """Everything beyond ``simple``'s verdict; :meth:`judge` is the compare job's per-chunk hook."""

    compare_funcs: tuple[str, ...] = ("simple",)
    index_tolerance: PerTensor[int] = field(default_factory=lambda: PerTensor(0))
    metrics: tuple[MetricCheck, ...] = ()
    postprocess: dict[str, TopK] = field(default_factory=dict)
    validate: bool = False
    script: Any = None
    """A :class:`CompareScript`, or ``None``."""

    @classmethod
    def from_specs(
        cls,
        compare_funcs: Sequence[str] | None = None,
        index_tolerance: Sequence[str] | None = None,
        check_metric: Sequence[str] | None = None,
        postprocess: Sequence[str] | None = None,
        validate: bool = False,
        compare_func_script: str | None = None,
    ) -> ExtraChecks:
        """Parse and validate command-line style values."""
        funcs = tuple(dict.fromkeys(f.strip() for v in compare_funcs or ("simple",) for f in v.split(",") if f.strip()))
        bad = [f for f in funcs if f not in COMPARE_FUNCS]
        if bad:
            raise TrtdbgError(f"--compare-func {bad[0]}: choose from {', '.join(COMPARE_FUNCS)}")
        metrics = tuple(MetricCheck.parse(s) for s in check_metric or ())
        defaults = {"l2": MetricCheck("l2", "<=", 1e-5), "cosine_similarity": MetricCheck("cosine", ">=", 0.997)}
        defaults["snr"] = MetricCheck("snr", ">=", 20.0)
        metrics += tuple(defaults[f] for f in funcs if f in defaults)
        script = CompareScript(compare_func_script) if compare_func_script else None
        return cls(
            compare_funcs=funcs,
            index_tolerance=parse_per_tensor(index_tolerance, 0, _tolerance, "--index-tolerance"),
            metrics=metrics,
            postprocess=parse_postprocess(postprocess or ()),
            validate=validate,
            script=script,
        )

    @property
    def active(self) -> bool:
        """True when anything beyond ``simple`` decides verdicts."""
        return self.compare_funcs != ("simple",) or bool(self.metrics) or self.script is not None

    def describe(self) -> dict[str, Any]:
        """JSON summary for the report's settings."""
        return {
            "compare_funcs": list(self.compare_funcs),
            "check_metric": [m.text() for m in self.metrics],
            "postprocess": {k or "*": f"top-{v.k},axis={v.axis}" for k, v in self.postprocess.items()},
            "validate": self.validate,
            "compare_func_script": self.script.spec if self.script else None,
        }

    def postprocessed(self, name: str, array: np.ndarray) -> np.ndarray:
        """``array`` after ``--postprocess`` for tensor ``name`` (unchanged when none applies)."""
        topk = self.postprocess.get(name) or self.postprocess.get("")
        return topk.apply(array) if topk else array

    def judge(
        self,
        names: Sequence[str],
        subjects: Sequence[np.ndarray],
        references: Sequence[np.ndarray],
        stats: Sequence[TensorStats],
    ) -> None:
        """Apply compare functions, metric checks and the script to one chunk's verdicts (in place)."""
        verdicts = self.script.verdicts(names, subjects, references) if self.script else None
        need_l2 = any(m.metric == "l2" for m in self.metrics)
        for name, sub, ref, st in zip(names, subjects, references, stats):
            if st.reason:  # structural problem (shapes, dtypes): stays a failure
                continue
            reasons: list[str] = []
            if verdicts is not None:
                if name not in verdicts:
                    reasons.append("the compare script returned no verdict for it")
                elif not bool(verdicts[name]):
                    reasons.append("the compare script failed it")
            elif "simple" in self.compare_funcs and not st.passed:
                reasons.append("simple: difference exceeds tolerance")
            if "indices" in self.compare_funcs:
                why = indices_match(np.asarray(sub), np.asarray(ref), self.index_tolerance.get(name))
                if why:
                    reasons.append(why)
            l2 = _l2(sub, ref) if need_l2 else None
            reasons += [r for m in self.metrics if (r := m.failure(st, l2))]
            st.passed = not reasons
            st.reason = "; ".join(reasons) if reasons and reasons != ["simple: difference exceeds tolerance"] else None


def _tolerance(value: str) -> int:
    n = int(value)
    if n < 0:
        raise ValueError(value)
    return n


def _l2(sub: np.ndarray, ref: np.ndarray) -> float:
    d = np.asarray(sub, dtype=np.float64) - np.asarray(ref, dtype=np.float64)
    return float(np.sqrt(np.sum(d * d)))


class CompareScript:
    """``script.py[:compare_outputs]`` imported with the data-loader script guard (one-line errors)."""

    def __init__(self, spec: str) -> None:
        from engine_core.data.script import ScriptDataLoader

        self.spec = spec
        self._script = ScriptDataLoader(spec, what="compare-func script", default_func="compare_outputs")

    def verdicts(
        self, names: Sequence[str], subjects: Sequence[np.ndarray], references: Sequence[np.ndarray]
    ) -> Mapping[str, Any]:
        """The script's ``{name: verdict}`` for one batch; any failure is a one-line error."""
        result = self._script.call(dict(zip(names, subjects)), dict(zip(names, references)))
        if not isinstance(result, Mapping):
            raise TrtdbgError(
                f"compare-func script {self.spec} returned {type(result).__name__}; return a dict {{name: bool}}"
            )
        return result
