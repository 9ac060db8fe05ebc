"""Small modal screens shared by the app: help, a picker (producers/consumers), the frame of form dialogs and their\nfields."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from tui.plain import safe

HELP_TEXT = """\
trtdbg finds where a model loses accuracy: mark tensors, compare a reference against a subject
(another backend, precision or model copy), and watch the per-layer errors arrive.

Graph tree (left): scopes expand lazily (l/→, h/←); each node shows its mark (● marked, ○ not,
⊘ unobservable inside a subgraph, · not markable), op type, output shape and, after a compare,
✓ / ✗ / NaN/Inf. Detail pane (top right): inputs/outputs with shapes and dtypes, producers and
consumers, attributes, initializer statistics, and the selected tensor's error distribution.
Error table (bottom right): one row per compared tensor; s sorts (graph order, max abs, max rel,
cosine — worst first), f shows failing tensors only, enter shows the tensor's node in the tree.
ctrl+c cancels a running comparison (it does not quit: q or ctrl+q quits).
Every binding has an id: remap keys in ~/.config/trtdbg/keymap.json, e.g. {"mark-toggle": "x"}.
"""


class HelpScreen(ModalScreen[None]):
    """Bindings of the screen below, plus a short explanation."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical { width: 104; max-width: 100%; height: 90%; border: thick $accent; background: $surface; }
    HelpScreen VerticalScroll { padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close", id="help-close")]

    def __init__(self, bindings: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.rows = bindings

    def compose(self) -> ComposeResult:
        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        table.add_column("key")
        table.add_column("action")
        table.add_column("id", style="dim")
        for key, desc, bid in self.rows:
            table.add_row(Text(key, style="bold cyan"), Text(desc), Text(bid))
        with Vertical():
            with VerticalScroll():
                yield Static(Text(HELP_TEXT))
                yield Static(table)
        yield Footer()


class PickScreen(ModalScreen[Any]):
    """Choose one of several targets (e.g. which producer to jump to)."""

    DEFAULT_CSS = """
    PickScreen { align: center middle; }
    PickScreen > Vertical { width: 100; max-width: 100%; height: auto; max-height: 80%; border: thick $accent;
        background: $surface; }
    PickScreen OptionList { height: auto; max-height: 30; }
    """
    BINDINGS = [Binding("escape,q", "dismiss_none", "Close", id="pick-close")]

    def __init__(self, title: str, options: list[tuple[Text, Any]]) -> None:
        super().__init__()
        self.title_text = title
        self.options = options

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(safe(self.title_text, style="bold"))
            yield OptionList(*[Option(safe(label), id=str(k)) for k, (label, _) in enumerate(self.options)])
        yield Footer()

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.options[int(event.option.id or 0)][1])

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


def key(text: str) -> Label:
    """A form row's label."""
    return Label(text, classes="key")


def choice(options: list[tuple[str, str]], value: str, id: str) -> Select[str]:
    """A compact drop-down of ``(label, value)`` options that always holds one of them."""
    return Select(options, value=value, allow_blank=False, id=id, compact=True)


class FormDialog(ModalScreen[Any]):
    """A modal form: a title, an optional hint, the rows of :meth:`fields` (scrolling) and Cancel / Run buttons.

    Run (ctrl+s) dismisses with :meth:`result`, Cancel (esc) with ``None``. Subclasses add their own sizes in CSS.
    """

    DEFAULT_CSS = """
    FormDialog { align: center middle; }
    FormDialog > Vertical { width: 100; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1; }
    FormDialog VerticalScroll { height: auto; }
    FormDialog .row { height: auto; margin-bottom: 1; }
    FormDialog Label.key { color: $text-muted; }
    FormDialog Input { width: 1fr; background: $boost; }
    FormDialog Checkbox { border: none; padding: 0; height: 1; }
    FormDialog .hint { color: $text-muted; }
    FormDialog #buttons { height: 1; align-horizontal: right; }
    FormDialog #buttons Button { margin-left: 2; }
    FormDialog .title { text-style: bold; }
    """
    BINDINGS = [
        Binding("escape", "dismiss_none", "Cancel", id="dialog-cancel"),
        Binding("ctrl+s", "run", "Run", id="dialog-run"),
    ]
    TITLE_TEXT = ""
    hint = ""
    """Shown under the title when set."""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.TITLE_TEXT, style="bold"), classes="title")
            if self.hint:
                yield Static(safe(self.hint), classes="hint")
            with VerticalScroll():
                yield from self.fields()
            with Horizontal(id="buttons"):
                yield Button("Cancel (esc)", id="cancel", compact=True)
                yield Button("Run (ctrl+s)", variant="primary", id="run", compact=True)
        yield Footer()

    def fields(self) -> ComposeResult:
        """The form's rows."""
        yield from ()

    def result(self) -> Any:
        """What the form asks for (subclasses read their widgets)."""
        raise NotImplementedError

    def action_run(self) -> None:
        self.dismiss(self.result())

    def action_dismiss_none(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#run")
    def _run(self) -> None:
        self.action_run()

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
