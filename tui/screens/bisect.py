"""Bisection screen (issue 3). Drives ``engine_core.precision`` once it exists; until then it says so."""

from __future__ import annotations

import importlib.util
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static


def precision_available() -> bool:
    """True when engine_core's precision/bisection package is installed in this build."""
    return importlib.util.find_spec("engine_core.precision") is not None


class BisectScreen(Screen):
    """Step-by-step precision bisection."""

    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back", id="bisect-back")]
    DEFAULT_CSS = """
    BisectScreen #missing { padding: 1 2; }
    """

    def __init__(self, main: Any) -> None:
        super().__init__()
        self.main = main

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text("Precision bisection", style="bold"), id="bisect-title")
            yield Static(self._missing_text(), id="missing")
        yield Footer()

    def _missing_text(self) -> Text:
        t = Text()
        t.append("Not available in this build: ", style="bold yellow")
        t.append("the bisection engine (engine_core.precision, issue 3) has not landed yet, so this screen has "
                 "nothing to run. It will show the candidate split in the tree, the evaluation of each step, undo, "
                 "and the culprit nodes once that engine exists. Esc goes back.")
        return t
