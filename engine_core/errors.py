"""User-facing errors: one line that says what failed, where, and what to do."""

from __future__ import annotations


class TrtdbgError(Exception):
    """A failure caused by the user's input or environment.

    The CLI prints ``str(error)`` as a single line and exits with code 2; no traceback
    unless ``--debug``. Messages name the file/tensor and suggest a fix.
    """

    exit_code = 2
