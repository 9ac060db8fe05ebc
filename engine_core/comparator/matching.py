"""Pairing reference tensors with subject tensors when the two sides are not the same model.

* Two models (e.g. FP32 vs its FP16 or Q/DQ copy): exact name first; otherwise by structure — the
  sequences of compute nodes (ignoring ``Cast``, ``QuantizeLinear``, ``DequantizeLinear``,
  ``Identity``) are aligned by op type and matched nodes pair their outputs by position.
* A saved outputs file: exact name, else Polygraphy's fallback (a case-insensitive substring, else
  the same position), skipping a candidate that has an exact match of its own.

Every non-exact pairing is labelled so reports can say which matches were not exact.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

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


def match_saved(wanted: Sequence[str], saved: Sequence[str]) -> dict[str, Match]:
    """Polygraphy's ``default_find_output_func`` over a saved file's tensor names."""
    saved_set = set(saved)
    wanted_set = set(wanted)
    result: dict[str, Match] = {}
    for pos, name in enumerate(wanted):
        if name in saved_set:
            result[name] = Match(name, "exact")
            continue
        low = name.lower()
        found = next((s for s in saved if low in s.lower() or s.lower() in low), None)
        kind = "substring"
        if found is None and pos < len(saved):
            found, kind = saved[pos], "index"
        if found is not None and found not in wanted_set:
            result[name] = Match(found, kind)
    return result
