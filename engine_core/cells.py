"""Fitting tensor names into fixed-width terminal columns.

Width is counted in terminal cells (CJK and most emoji take two, combining marks none), so columns
after a name stay aligned. Long names are shortened in the middle by path segment (``/`` and ``.``
separated): earlier segments shrink to their first letter (numbers stay whole), the segment before the last keeps its
start, and the last segment (usually the op and output index) stays whole — the parts that tell
``…/word_embeddings/Gather_output_0`` from ``…/position_embeddings/Gather_output_0``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

ELLIPSIS = "…"

_SEGMENT = re.compile(r"[^/.]*[/.]|[^/.]+$")


def cell_width(text: str) -> int:
    """Terminal cells ``text`` takes (East Asian wide/fullwidth: 2, combining and zero-width: 0)."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or ch in "\u200b\u200c\u200d\ufe0e\ufe0f":
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _cut_end(text: str, width: int, width_of: Callable[[str], int]) -> str:
    """The longest start of ``text`` that fits ``width`` cells."""
    out, used = [], 0
    for ch in text:
        w = width_of(ch)
        if used + w > width:
            break
        out.append(ch)
        used += w
    return "".join(out)


def _cut_start(text: str, width: int, width_of: Callable[[str], int]) -> str:
    """The longest end of ``text`` that fits ``width`` cells."""
    return _cut_end(text[::-1], width, width_of)[::-1]


def elide_middle(text: str, width: int, width_of: Callable[[str], int] = cell_width) -> str:
    """``text`` shortened to at most ``width`` cells, keeping its start, its last segment and what tells it apart."""
    if width_of(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    segs = _SEGMENT.findall(text)
    if len(segs) >= 2:
        last, mid, lead = segs[-1], segs[-2], segs[:-2]
        # 1. earlier segments shrink to their first character, leftmost first (``/bert/encoder/`` -> ``/b/e/``)
        short = [seg if len(seg) <= 2 or seg[:-1].isdigit() else seg[0] + seg[-1] for seg in lead]
        heads = ["".join(short[:k] + lead[k:]) for k in range(len(lead) + 1)]
        heads.append(ELLIPSIS + (lead[-1][-1] if lead else ""))
        for head in heads:
            if width_of(head) + width_of(mid) + width_of(last) <= width:
                return head + mid + last
        # 2. the segment before the last keeps its start (``word_embeddings/`` -> ``word_…/``)
        for head in heads[-2:]:
            room = width - width_of(head) - width_of(last)
            if room >= 4:
                return head + _cut_end(mid[:-1], room - 2, width_of) + ELLIPSIS + mid[-1] + last
    # 3. plain middle cut, the end gets the larger share
    tail = _cut_start(text, (width - 1) * 2 // 3 + (width - 1) % 3 // 2, width_of)
    head_text = _cut_end(text, width - 1 - width_of(tail), width_of)
    return head_text + ELLIPSIS + tail


def fit(text: str, width: int, width_of: Callable[[str], int] = cell_width) -> str:
    """``text`` elided in the middle if needed and padded with spaces to exactly ``width`` cells."""
    short = elide_middle(text, width, width_of)
    return short + " " * (width - width_of(short))
