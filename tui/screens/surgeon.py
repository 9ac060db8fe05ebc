"""Surgeon dialogs: extract a sub-graph, sanitize (fold constants, clean up, sort), insert a node / replace the
sub-graph that produces a tensor. Each writes a NEW file (engine_core refuses to overwrite the model or its data),
shows what changed, and offers to open the result.

The edit is :func:`engine_core.surgeon.job.run_surgery` (as for the CLI) in a thread worker; this module only
collects the user's input, pre-filled from the graph (marked tensors or the node under the cursor, with shapes and
dtypes from the index).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Footer, Input, Static, TextArea

from engine_core.safetext import printable
from engine_core.surgeon.job import SurgeryRequest, SurgeryResult, run_surgery
from tui.messages import JobFinished
from tui.plain import safe
from tui.screens.common import FormDialog, key

KINDS = ("extract", "sanitize", "insert")


# ---------------------------------------------------------------------- defaults from the graph
def _spec(view: Any, name: str, with_shape: bool) -> str:
    meta = view.index.tensor_meta(name, infer=view.shapes_ready)
    if meta is None:
        return name
    dt = str(meta.dtype) if meta.dtype is not None else "auto"
    if not with_shape:
        return f"{name}:{dt}"
    if meta.shape is None:
        return f"{name}:auto:{dt}"
    dims = ",".join("?" if d is None else str(d) for d in meta.shape)
    shape = (
        "x".join(str(d) for d in meta.shape)
        if all(isinstance(d, int) and d > 0 for d in meta.shape) and meta.shape
        else f"[{dims}]"
    )
    if "?" in shape:
        shape = "auto"
    return f"{name}:{shape}:{dt}"


def free_output_path(workspace: Path, model: str, suffix: str) -> str:
    """``<workspace>/<model stem>_<suffix>.onnx`` that does not exist yet."""
    stem = Path(model).stem
    k = 1
    while True:
        p = workspace / f"{stem}_{suffix}{'' if k == 1 else f'_{k}'}.onnx"
        if not p.exists():
            return str(p)
        k += 1


def extract_defaults(main: Any) -> tuple[list[str], list[str], str]:
    """(inputs, outputs, where they came from): the node under the cursor, else the first failing node of the
    last compare, else the marked tensors as outputs."""
    view = main.view
    index = view.index
    i = main.current_node()
    where = f"the node under the cursor ({printable(index.name(i))})" if i is not None else ""
    if i is None and view.first_failing is not None:
        i = view.first_failing
        where = f"the first failing node ({printable(index.name(i))})"
    if i is not None:
        ins = [
            t
            for t in index.node_inputs(i)
            if t and not index.is_initializer(t) and (index.producer(t) is not None or t in index.inputs)
        ]
        outs = [t for t in index.node_outputs(i) if t]
        return [_spec(view, t, True) for t in ins], [_spec(view, t, False) for t in outs], where
    marks = view.marks.ordered() if view.marks is not None else []
    if marks:
        return (
            [],
            [_spec(view, t, False) for t in marks[:200]],
            f"{len(marks)} marked tensor(s) as outputs"
            + (" (first 200)" if len(marks) > 200 else "")
            + "; inputs: the model inputs they need",
        )
    return [], [], "no node under the cursor, no failing node and no marks: type the tensors"


def _data_text(form: Any) -> str:
    """The compare dialog's data, in words (what the full model runs on to find the piece's real inputs)."""
    if form.data == "inputs":
        return f"the saved inputs {form.data_path}"
    if form.data == "script":
        return f"the data-loader script {form.data_path}"
    n = int(form.iterations) if str(form.iterations).isdigit() else 1
    return f"{n} random sample(s), seed {form.seed}"


# ---------------------------------------------------------------------- dialogs
class SurgeonDialog(FormDialog):
    """Common frame: a title, a form, the output file, Run / Cancel."""

    DEFAULT_CSS = """
    SurgeonDialog VerticalScroll { max-height: 24; }
    SurgeonDialog Label.key { width: 14; padding-right: 1; }
    SurgeonDialog TextArea { height: 5; width: 1fr; }
    SurgeonDialog Checkbox { margin-right: 2; }
    SurgeonDialog .wide { width: 1fr; }
    """
    AUTO_FOCUS = "Input, TextArea"
    """Typing goes to the first field at once."""

    def __init__(self, model: str, output: str, hint: str = "") -> None:
        super().__init__()
        self.model = model
        self.output = output
        self.hint = hint

    def fields(self) -> ComposeResult:
        yield from self.form()
        with Horizontal(classes="row"):
            yield key("write to")
            yield Input(self.output, id="output", compact=True)

    def form(self) -> ComposeResult:
        """The rows above the output file."""
        yield from ()

    def request(self) -> SurgeryRequest:
        raise NotImplementedError

    def result(self) -> SurgeryRequest:
        return self.request()

    def _request(self, kind: str, **fields: Any) -> SurgeryRequest:
        """The ``kind`` surgery of the model, written to the output field's file."""
        return SurgeryRequest(kind, self.model, self.query_one("#output", Input).value.strip(), **fields)

    def _lines(self, widget_id: str) -> list[str]:
        return [ln.strip() for ln in self.query_one(widget_id, TextArea).text.splitlines() if ln.strip()]


class ExtractDialog(SurgeonDialog):
    """Cut the sub-graph between tensors into a model of its own."""

    TITLE_TEXT = "Extract a sub-graph"

    def __init__(
        self, model: str, output: str, inputs: list[str], outputs: list[str], hint: str, data: Any, data_text: str
    ) -> None:
        super().__init__(
            model,
            output,
            "from " + hint + ". One tensor per line: NAME[:SHAPE[:DTYPE]] (SHAPE 1x3x8x8, [1,n,8] or auto).",
        )
        self.inputs, self.outputs = inputs, outputs
        self.data, self.data_text = data, data_text

    def form(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield key("inputs")
            yield TextArea("\n".join(self.inputs), id="inputs", soft_wrap=False, compact=True)
        with Horizontal(classes="row"):
            yield key("outputs")
            yield TextArea("\n".join(self.outputs), id="outputs", soft_wrap=False, compact=True)
        with Horizontal(classes="row"):
            yield key("real inputs")
            yield Checkbox("save them", True, id="save-inputs")
            yield Static(safe("from the full model on " + self.data_text), classes="hint wide")

    def request(self) -> SurgeryRequest:
        return self._request(
            "extract",
            inputs=self._lines("#inputs"),
            outputs=self._lines("#outputs"),
            shapes=self.data.shapes,
            data=self.data,
            save_inputs="" if self.query_one("#save-inputs", Checkbox).value else None,
        )


class SanitizeDialog(SurgeonDialog):
    """Fold constants, clean up, sort; outputs checked equal to the original."""

    TITLE_TEXT = "Sanitize"

    def form(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield key("steps")
            yield Checkbox("fold constants", True, id="fold")
            yield Checkbox("clean up", True, id="cleanup")
            yield Checkbox("sort", True, id="toposort")
            yield Checkbox("verify outputs", True, id="verify")
        with Horizontal(classes="row"):
            yield key("input shapes")
            yield Input(
                "",
                placeholder="optional: NAME:1x3x640x640 … (fixes dynamic dims so shape ops fold)",
                id="shapes",
                compact=True,
            )

    def request(self) -> SurgeryRequest:
        q = self.query_one
        return self._request(
            "sanitize",
            fold_constants=q("#fold", Checkbox).value,
            cleanup=q("#cleanup", Checkbox).value,
            toposort=q("#toposort", Checkbox).value,
            verify=q("#verify", Checkbox).value,
            input_shapes=q("#shapes", Input).value.split(),
        )


class InsertDialog(SurgeonDialog):
    """Insert a node; when its outputs exist it replaces the sub-graph that produced them."""

    TITLE_TEXT = "Insert a node / replace a sub-graph"

    def __init__(self, model: str, output: str, inputs: str, outputs: str) -> None:
        super().__init__(
            model,
            output,
            "Outputs that exist are taken over (what produced them is removed when "
            "nothing else needs it); an output that is also an input wraps it in place.",
        )
        self.inputs, self.outputs = inputs, outputs

    def form(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield key("op")
            yield Input("Identity", placeholder="op type, e.g. Clip", id="op", compact=True)
        with Horizontal(classes="row"):
            yield key("inputs")
            yield Input(self.inputs, placeholder="tensor names, comma-separated", id="inputs", compact=True)
        with Horizontal(classes="row"):
            yield key("outputs")
            yield Input(self.outputs, placeholder="tensor names, comma-separated", id="outputs", compact=True)
        with Horizontal(classes="row"):
            yield key("attributes")
            yield Input("", placeholder="k=v …, Python literals: min=0.0 max=6.0", id="attrs", compact=True)
        with Horizontal(classes="row"):
            yield key("node name")
            yield Input("", placeholder="default trtdbg_insert_<op>", id="name", compact=True)

    def request(self) -> SurgeryRequest:
        q = self.query_one
        return self._request(
            "insert",
            inputs=[q("#inputs", Input).value],
            outputs=[q("#outputs", Input).value],
            op=q("#op", Input).value,
            attrs=q("#attrs", Input).value.split(),
            name=q("#name", Input).value,
        )


class SurgeryResultScreen(ModalScreen[bool]):
    """What changed and where it was written; o opens the result."""

    DEFAULT_CSS = """
    SurgeryResultScreen { align: center middle; }
    SurgeryResultScreen > Vertical { width: 100; max-width: 100%; height: auto; max-height: 90%;
        border: round $success; background: $surface; padding: 0 1; }
    SurgeryResultScreen VerticalScroll { height: auto; max-height: 26; }
    SurgeryResultScreen #buttons { height: 1; align-horizontal: right; }
    SurgeryResultScreen #buttons Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("escape,q", "close", "Close", id="result-close"),
        Binding("o", "open", "Open result", id="result-open"),
    ]

    def __init__(self, outcome: SurgeryResult) -> None:
        super().__init__()
        self.outcome = outcome

    def compose(self) -> ComposeResult:
        o = self.outcome
        body = Text()
        body.append(f"{o.kind}: wrote ", style="bold green")
        body.append(printable(", ".join(map(str, o.written))))
        body.append(f"  ({o.seconds:.1f}s)\n", style="dim")
        if o.verified:
            body.append("verified: ", style="bold")
            body.append(printable(o.verified.to_text()) + "\n")
        if o.inputs_saved is not None:
            body.append("real inputs: ", style="bold")
            body.append(printable(f"{o.inputs_saved} ({o.inputs_data})") + "\n")
            body.append("compare the piece alone: ", style="bold")
            body.append(printable(o.compare_command or "") + "\n")
            body.append("(o opens it with these inputs as the compare data)\n", style="dim")
        body.append("\n")
        body.append(o.changes.to_text(limit=12))
        body.append("\n\nThe original model is unchanged.", style="dim")
        with Vertical():
            with VerticalScroll():
                yield Static(safe(body))
            with Horizontal(id="buttons"):
                yield Button("Close (esc)", id="close", compact=True)
                yield Button("Open result (o)", variant="primary", id="open", compact=True)
        yield Footer()

    def action_close(self) -> None:
        self.dismiss(False)

    def action_open(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#open")
    def _open(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(False)


# ---------------------------------------------------------------------- wiring
def open_surgeon_dialog(main: Any, kind: str) -> None:
    """Open the dialog for ``kind`` pre-filled from the graph; run the edit in a worker when confirmed."""
    if main.view.index is None:
        main.notify("the model is still loading", timeout=2)
        return
    workspace = main.workspace.root if main.workspace is not None else Path(main.model_path).parent
    out = free_output_path(
        Path(workspace), main.model_path, {"extract": "extract", "sanitize": "sanitized", "insert": "inserted"}[kind]
    )
    if kind == "extract":
        from engine_core.errors import TrtdbgError

        ins, outs, hint = extract_defaults(main)
        try:
            data = main.form.data_options()
        except TrtdbgError as exc:
            main.notify(f"the compare dialog's data options: {exc}", severity="error", timeout=8)
            return
        dialog: SurgeonDialog = ExtractDialog(main.model_path, out, ins, outs, hint, data, _data_text(main.form))
    elif kind == "sanitize":
        dialog = SanitizeDialog(main.model_path, out)
    else:
        i = main.current_node()
        first = next((t for t in main.view.index.node_outputs(i) if t), "") if i is not None else ""
        dialog = InsertDialog(main.model_path, out, first, first)

    def start(req: SurgeryRequest | None) -> None:
        if req is None:
            return
        req.external_data_dir = main.external_data_dir
        main.notify(f"{req.kind}: running…", timeout=3)
        main.run_worker(lambda: _job(main, req), thread=True, exclusive=True, group="surgeon", exit_on_error=False)

    main.app.push_screen(dialog, start)


def _job(main: Any, req: SurgeryRequest) -> None:
    """Thread: run the edit, post the outcome (never touches widgets)."""
    from engine_core.errors import TrtdbgError

    try:
        main.post_message(JobFinished("surgeon", run_surgery(req)))
    except TrtdbgError as exc:
        main.post_message(JobFinished("surgeon", None, str(exc)))
    except Exception as exc:
        main.post_message(JobFinished("surgeon", None, f"{type(exc).__name__}: {exc}"))


def show_outcome(main: Any, msg: JobFinished) -> None:
    """Handler side: the result dialog, or the error."""
    if msg.result is None:
        main.notify(msg.error or "the edit failed", severity="error", timeout=12)
        main.last_surgery_error = msg.error
        return
    outcome: SurgeryResult = msg.result
    main.last_surgery = outcome

    form = None
    if outcome.inputs_saved is not None:  # the piece compares on the values it really sees
        form = replace(main.form, data="inputs", data_path=str(outcome.inputs_saved), what="all")

    def done(open_it: bool | None) -> None:
        if open_it:
            main.app.call_later(main.app.open_model, str(outcome.written[0]), form)

    main.app.push_screen(SurgeryResultScreen(outcome), done)
