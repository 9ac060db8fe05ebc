"""Pairing reference tensors with subject tensors when the two sides are not the same model.

* Two models (e.g. FP32 vs its FP16 or Q/DQ copy): exact name first; otherwise by structure — the
  sequences of compute nodes (ignoring ``Cast``, ``QuantizeLinear``, ``DequantizeLinear``,
  ``Identity``) are aligned by op type and matched nodes pair their outputs by position.
* A saved outputs file: exact name, else Polygraphy's fallback (a case-insensitive substring, else
  the same position), skipping a candidate that has an exact match of its own. Unlike Polygraphy, a
  fallback candidate must be compatible (same dtype kind, same rank and known dims — same size with
  ``--no-shape-check``): an int64 shape tensor is never paired with a float activation.

Every non-exact pairing is labelled so reports can say which matches were not exact; tensors left
without a counterpart are :class:`Unmatched`, with the reason.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from engine_core.types import Dim

TRANSPARENT_OPS = frozenset({"Cast", "QuantizeLinear", "DequantizeLinear", "Identity", "CastLike"})


@dataclass(frozen=True, slots=True)
class NodeDesc:
    """The part of a node that matching needs."""

    name: str
    op_type: str
    outputs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Match:
    """A subject tensor for a reference tensor, and how it was found."""

    subject_name: str
    kind: str  # "exact" | "structure" | "substring" | "index"


@dataclass(frozen=True, slots=True)
class Unmatched:
    """A tensor to compare that has no (compatible) counterpart on the other side."""

    name: str
    reason: str
    required: bool
    """A graph output or an explicitly named tensor: its absence fails the compare."""

    def to_dict(self) -> dict[str, object]:
        """The report's JSON object."""
        return {"name": self.name, "reason": self.reason, "required": self.required}


Meta = tuple[np.dtype, tuple[Dim, ...] | None]
"""dtype and (possibly partly unknown) shape of a tensor, for compatibility checks."""


def incompatibility(a: Meta | None, b: Meta | None, check_shapes: bool = True) -> str | None:
    """Why tensors with metadata ``a`` and ``b`` cannot be compared, or ``None`` (unknown metadata is compatible)."""
    if a is None or b is None:
        return None
    (da, sa), (db, sb) = a, b
    kinds = {"b": "bool", "i": "int", "u": "int", "f": "float", "c": "complex"}
    ka, kb = kinds.get(np.dtype(da).kind, np.dtype(da).kind), kinds.get(np.dtype(db).kind, np.dtype(db).kind)
    if ka != kb:
        return f"{np.dtype(da).name} vs {np.dtype(db).name}"
    if sa is None or sb is None:
        return None
    if check_shapes:
        if len(sa) != len(sb) or any(_known(x) and _known(y) and x != y for x, y in zip(sa, sb)):
            return f"shape {_fmt(sa)} vs {_fmt(sb)}"
        return None
    if all(_known(d) for d in (*sa, *sb)) and math.prod(sa) != math.prod(sb):  # type: ignore[arg-type]
        return f"size {math.prod(sa)} vs {math.prod(sb)}"  # type: ignore[arg-type]
    return None


def _known(d: Dim) -> bool:
    return isinstance(d, int) and d >= 0


def _fmt(shape: Sequence[Dim]) -> str:
    return "(" + ", ".join(str(d) if _known(d) else "?" for d in shape) + ")"


def match_models(
    wanted: Sequence[str], ref_nodes: Sequence[NodeDesc], sub_nodes: Sequence[NodeDesc], sub_tensors: set[str]
) -> dict[str, Match]:
    """Subject tensor for each wanted reference tensor (absent when there is none)."""
    result: dict[str, Match] = {n: Match(n, "exact") for n in wanted if n in sub_tensors}
    missing = [n for n in wanted if n not in result]
    if not missing:
        return result
    ref_compute = [n for n in ref_nodes if n.op_type not in TRANSPARENT_OPS]
    sub_compute = [n for n in sub_nodes if n.op_type not in TRANSPARENT_OPS]
    pairs: dict[str, str] = {}
    matcher = difflib.SequenceMatcher(
        None, [n.op_type for n in ref_compute], [n.op_type for n in sub_compute], autojunk=False
    )
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            rn, sn = ref_compute[block.a + k], sub_compute[block.b + k]
            for ro, so in zip(rn.outputs, sn.outputs):
                if ro and so:
                    pairs[ro] = so
    exact_subject_names = {m.subject_name for m in result.values()}
    for name in missing:
        cand = pairs.get(name)
        if cand and cand not in exact_subject_names:
            result[name] = Match(cand, "structure")
    return result


def match_saved(
    wanted: Sequence[str],
    saved: Sequence[str],
    wanted_meta: Mapping[str, Meta] | None = None,
    saved_meta: Mapping[str, Meta] | None = None,
    check_shapes: bool = True,
) -> tuple[dict[str, Match], dict[str, str]]:
    """Polygraphy's ``default_find_output_func`` over a saved file's tensor names, compatible candidates only.

    Returns the matches and, for wanted tensors left without one, why.
    """
    wanted_meta = wanted_meta or {}
    saved_meta = saved_meta or {}
    saved_set = set(saved)
    wanted_set = set(wanted)
    result: dict[str, Match] = {}
    missing: dict[str, str] = {}
    for pos, name in enumerate(wanted):
        if name in saved_set:
            result[name] = Match(name, "exact")
            continue
        low = name.lower()
        found = next((s for s in saved if low in s.lower() or s.lower() in low), None)
        kind = "substring"
        if found is None and pos < len(saved):
            found, kind = saved[pos], "index"
        if found is None:
            missing[name] = "no tensor of that name, nor a substring or position match"
        elif found in wanted_set:
            missing[name] = f"its {kind} candidate '{found}' is compared with its own exact match"
        else:
            why = incompatibility(wanted_meta.get(name), saved_meta.get(found), check_shapes)
            if why:
                missing[name] = f"its {kind} candidate '{found}' is incompatible ({why})"
            else:
                result[name] = Match(found, kind)
    return result, missing
