"""The one place that makes untrusted text printable.

Model files, data files, loader scripts and paths are untrusted: a node name can hold ``ESC ] 0 ; … BEL``
(retitles the terminal), ``ESC [ 2 J`` (clears it), an OSC 8 hyperlink, a right-to-left override that
reorders what follows, a newline that forges a second error line, or bytes that are not UTF-8. Every
such string goes through :func:`printable` before it reaches a terminal — CLI text, the one error line
on stderr, the app. JSON output keeps the raw string (``json.dumps`` escapes control characters itself).

What is escaped: C0 controls and DEL (``\\n``, ``\\t``, ``\\r``, ``\\x1b``…), C1 controls (``\\x9b`` is a
one-byte CSI on some terminals), Unicode line/paragraph separators, bidi embedding/override/isolate
controls and marks, and lone surrogates (undecodable file-name bytes, which cannot be written as UTF-8).
Everything else — CJK, emoji (with their zero-width joiners and variation selectors), accents — is kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
UNSAFE = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029{_BIDI}\\ud800-\\udfff]")
"""One character that must not reach a terminal raw (what :func:`printable` escapes)."""
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    if c in _NAMED:
        return _NAMED[c]
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``str(text)`` with every character that could act on a terminal (or forge a line) shown escaped."""
    s = text if isinstance(text, str) else str(text)
    return UNSAFE.sub(_escape, s)


def printable_lines(lines: Iterable[str]) -> str:
    """Lines of a text report joined by newlines, each made :func:`printable` (a name cannot start a new line)."""
    return "\n".join(printable(line) for line in lines)
