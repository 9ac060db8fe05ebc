"""Untrusted text in the app: always plain Rich ``Text`` (never markup), control characters shown escaped.

:func:`safe` / :func:`safe_renderable` apply :func:`engine_core.safetext.printable` to Rich text while
keeping its styles, at the points where model strings reach the screen (tree labels, the detail pane,
the error table, statuses, notifications). :class:`ControlFilter` is the safety net behind them: a line
filter that drops any such character still left in what any widget draws (they are zero cells wide, so
the layout does not move), so nothing reaches the terminal raw even from a widget that forgot.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.segment import Segment
from rich.table import Table
from rich.text import Span, Text
from textual.color import Color
from textual.filter import LineFilter

from engine_core.safetext import UNSAFE, printable


def safe(text: Text | str, style: str = "") -> Text:
    """``text`` as Rich ``Text`` with every unsafe character escaped (styles kept; a ``str`` is never markup).

    A ``Text`` keeps its newlines (the app lays out lines with them); model strings are passed through
    :func:`printable` before they are appended, so a newline inside a name is already ``\\n``.
    """
    if isinstance(text, str):
        return Text(printable(text), style=style)
    plain = text.plain
    hits = [m for m in UNSAFE.finditer(plain) if m.group() != "\n"]
    if not hits:
        return text
    out = text.blank_copy()
    pos = 0
    for m in hits:
        out.append_text(text[pos : m.start()])
        esc = printable(m.group())
        out.append_text(Text(esc, spans=[Span(0, len(esc), s.style) for s in text[m.start() : m.end()].spans]))
        pos = m.end()
    out.append_text(text[pos:])
    return out


def safe_renderable(r: RenderableType) -> RenderableType:
    """:func:`safe` applied to a ``Text``, ``str``, or the texts inside a ``Group`` or ``Table`` (in place)."""
    if isinstance(r, (str, Text)):
        return safe(r)
    if isinstance(r, Group):
        r.renderables[:] = [safe_renderable(x) for x in r.renderables]
    elif isinstance(r, Table):
        for col in r.columns:
            col._cells[:] = [safe_renderable(c) for c in col._cells]
    return r


class ControlFilter(LineFilter):
    """Drops characters that act on a terminal from every drawn line (they take no cells)."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        return [Segment(UNSAFE.sub("", s.text), s.style, s.control) if UNSAFE.search(s.text) else s for s in segments]
