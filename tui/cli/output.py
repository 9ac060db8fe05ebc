"""Printing an engine result: its JSON document (``--json``) or its text, on stdout."""

from __future__ import annotations

import json
import sys
from typing import Any, Protocol


class Printable(Protocol):
    def to_json(self) -> Any: ...

    def to_text(self) -> str: ...


def print_result(result: Printable, as_json: bool) -> None:
    """``result.to_json()`` as indented JSON when ``as_json``, else ``result.to_text()``."""
    text = json.dumps(result.to_json(), indent=2) if as_json else result.to_text()
    sys.stdout.write(text + "\n")
