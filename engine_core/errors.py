"""User-facing errors: one line that says what failed, where, and what to do."""

from __future__ import annotations

from collections.abc import Collection


class TrtdbgError(Exception):
    """A failure caused by the user's input or environment.

    The CLI prints ``str(error)`` as a single line and exits with code 2; no traceback
    unless ``--debug``. Messages name the file/tensor and suggest a fix.
    """

    exit_code = 2


def require_one_of(what: str, value: object, allowed: Collection[str], note: str = "") -> None:
    """Raise ``what 'value' is not one of A, B{note}`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise TrtdbgError(f"{what} '{value}' is not one of {', '.join(allowed)}{note}")


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first non-empty line of ``exc``'s message (its type name when empty), at most ``limit`` characters:
    what a one-line error quotes from a library's multi-line message."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[0] if lines else type(exc).__name__)[:limit]
