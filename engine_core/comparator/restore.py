"""The workspace's last compare (``last_compare.json``), read back when its model is opened again.

Every finished compare writes the report with its failing tensors (at most 1000), the time and a stamp of
the model file (size, modification time). :func:`load_last_compare` gives it back as a
:class:`~engine_core.comparator.report.CompareReport` only for the same model file, unchanged since; any
other case is one line saying why (another model, the model changed, an unreadable file).

The compare engine's classes are imported only when there is a file to read: the app looks for one while it
answers its first keys, and importing the engine then would hold the GIL (and the import lock) for ~50 ms.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from engine_core.errors import TrtdbgError
from engine_core.workspace import Workspace

if TYPE_CHECKING:
    from engine_core.comparator.engine import TensorResult
    from engine_core.comparator.report import CompareReport

LAST_COMPARE = "last_compare.json"
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@dataclass(frozen=True, slots=True)
class LastCompare:
    """A restored compare: its report (the kept tensors only), when it ran and what the file kept."""

    report: CompareReport
    saved_at: float
    """When the compare finished (seconds since the epoch)."""
    kept_note: str
    """What the file kept (``failing tensors only (at most 1000)…``)."""


def model_stamp(path: str | os.PathLike[str]) -> dict[str, int] | None:
    """Size and modification time of a model file (``None`` when it is not a file)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def load_last_compare(ws: Workspace, model: str | os.PathLike[str]) -> LastCompare | None:
    """The last compare of ``model`` kept in ``ws``; ``None`` when there is none.

    Raises :class:`TrtdbgError` (one line) when the file exists but cannot be shown for ``model``.
    """
    path = ws.path(LAST_COMPARE)
    if not path.is_file():
        return None
    try:
        doc = orjson.loads(path.read_bytes())
        saved_model = doc["model"]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise TrtdbgError(f"{path}: cannot read the last compare ({type(exc).__name__}); not restored") from None
    if not saved_model or os.path.realpath(saved_model) != os.path.realpath(model):
        return None
    stamp = doc.get("model_stamp")
    if stamp is None:
        raise TrtdbgError(f"{path} was written by an older trtdbg (no model stamp); not restored")
    if stamp != model_stamp(model):
        raise TrtdbgError(f"the last compare in {ws.root} predates the current {os.path.basename(model)}; not restored")
    try:
        report = _report(doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise TrtdbgError(f"{path}: the last compare is damaged ({type(exc).__name__}: {exc}); not restored") from None
    saved_at = doc.get("saved_at")
    return LastCompare(
        report,
        float(saved_at) if isinstance(saved_at, (int, float)) else path.stat().st_mtime,
        str(doc.get("tensors_note", "")),
    )


def _report(doc: dict[str, Any]) -> CompareReport:
    from engine_core.comparator.engine import CompareSummary
    from engine_core.comparator.matching import Unmatched
    from engine_core.comparator.metrics import TensorStats
    from engine_core.comparator.report import CompareReport

    stats = frozenset(TensorStats.__dataclass_fields__)
    results = [_result(t, stats) for t in doc["tensors"]]
    s = doc["summary"]
    summary = CompareSummary(
        first_failing_kind=str(doc.get("first_failing_kind") or "any"),
        batches=int(s.get("batches", 0)),
        cancelled=bool(s.get("cancelled")),
        stopped_early=bool(s.get("stopped_early")),
        elapsed_s=float(s.get("elapsed_s", 0.0)),
    )
    for r in results:  # the firsts, from the kept tensors (every failing one up to the cap)
        summary.note(r)
    summary.compared = int(s["compared"])  # the counts of every tensor, not only the kept ones
    summary.failed = int(s["failed"])
    summary.matched_inf_tensors = int(s.get("matched_inf_tensors", 0))
    return CompareReport(
        reference=str(doc["ref"]),
        subject=str(doc["subject"]),
        results=results,
        summary=summary,
        model=doc.get("model"),
        data=str(doc.get("data", "")),
        iterations=int(doc.get("iterations", 1)),
        settings=dict(doc.get("settings") or {}),
        unmatched=[Unmatched(str(u["name"]), str(u["reason"]), bool(u["required"])) for u in doc.get("unmatched", [])],
        warnings=[str(w) for w in doc.get("warnings", [])],
        precision_coverage=doc.get("precision_coverage"),
    )


def _result(t: dict[str, Any], stats: frozenset[str]) -> TensorResult:
    """One report tensor record back into a :class:`TensorResult` (the inverse of ``TensorResult.to_dict``);
    ``stats``: the fields of :class:`TensorStats`."""
    from engine_core.comparator.engine import TensorResult, TensorSlot
    from engine_core.comparator.metrics import TensorStats

    name = str(t["name"])
    slot = TensorSlot(
        name, str(t.get("subject_name", name)), t.get("node"), int(t["topo_index"]), str(t.get("match", "exact"))
    )
    fields: dict[str, Any] = {k: _NONFINITE.get(v, v) if isinstance(v, str) else v for k, v in t.items() if k in stats}
    fields["name"] = name
    fields["shape"] = tuple(t["shape"])
    for k in ("argmax_abs", "argmax_rel"):
        if fields.get(k) is not None:
            fields[k] = tuple(fields[k])
    for k in ("name", "dtype", "ref_dtype", "reason"):  # strings that look like "NaN" stay strings
        if k in t:
            fields[k] = t[k]
    return TensorResult(int(t["iteration"]), slot, TensorStats(**fields))
