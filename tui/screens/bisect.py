"""Precision bisection screen: drives ``engine_core.precision.bisect.BisectSession`` step by step.

Set-up (precision, fallback, subject, check = tolerances or an external command) → the current split is shown
with both halves highlighted in the graph tree (⟦A⟧ / ⟦B⟧), ``a``/``b`` choose which half falls back and
evaluate it, ``y``/``n`` judge the pending configuration yourself, ``R`` runs to the end (ctrl+c stops), ``u``
undoes, ``e`` exports the final plan. Every step is saved by engine_core; an interrupted bisection is offered for
resuming. The session object lives in worker threads only (under a lock); the UI renders plain snapshots.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Input, Select, Static
from textual.widgets.select import InvalidSelectValueError

from engine_core.jobs import CancelToken
from engine_core.safetext import printable
from tui.messages import BisectFailed, BisectProbe, BisectUpdate
from tui.plain import safe
from tui.screens.common import choice, key
from tui.widgets.error_table import fmt
from tui.widgets.graph_tree import GraphTree


def precision_available() -> bool:
    """True when engine_core's bisection engine is part of this build."""
    return (
        importlib.util.find_spec("engine_core.precision") is not None
        and importlib.util.find_spec("engine_core.precision.bisect") is not None
    )


def _short_names(names: list[str], limit: int = 3) -> str:
    if len(names) <= limit:
        return printable(", ".join(names))
    return printable(f"{', '.join(names[:2])}, … {names[-1]}")


def snapshot(session: Any, choice: int) -> dict[str, Any]:
    """Everything the screen shows, as plain data (call in the worker, under the session lock)."""
    search = session.search
    prop = session.proposal()
    ph = search.current
    state: dict[str, Any] = {
        "model": session.options.model,
        "precision": session.options.precision,
        "fallback": session.options.fallback,
        "subject": session.options.subject,
        "emulated": session.evaluator.emulated,
        "check": session.options.check,
        "settings": session.evaluator.settings.describe(),
        "data": session.data_text,
        "phase": f"{ph.precision}->{ph.fallback}",
        "stage": search.stage,
        "candidates": len(search.candidates),
        "suspects": len(search.region),
        "finished": search.done,
        "problem": search.problem,
        "passed": session.passed(),
        "evaluations": session.evaluations,
        "culprits": session.culprits(),
        "demoted": dict(session.demoted),
        "steps": session.steps(),
        "warnings": list(session.warnings),
        "choice": choice,
        "proposal": None,
        "state_file": str(session.workspace.path("bisect", "state.json")),
        "context": search.names(search.context) if search.stage == "split" else [],
    }
    if prop is not None:
        state["proposal"] = {
            "kind": prop.kind,
            "high": search.names(prop.high),
            "halves": [search.names(h) for h in prop.halves] if prop.halves else None,
        }
    if search.done:
        state["plan"] = str(session.workdir / "plan.json")
        try:
            state["layer_precisions"] = session.final_plan().layer_precisions(session.builder.analysis)
        except Exception:
            state["layer_precisions"] = None
    return state


_SETUP_OPTIONS = ("precision", "fallback", "subject", "mode", "check")
"""The options the set-up fields ask for (a resume ignores those that differ from the saved ones, with a warning)."""


class BisectScreen(Screen):
    """Step-by-step precision bisection."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="bisect-back"),
        Binding("a", "step(0)", "A falls back", id="bisect-a"),
        Binding("b", "step(1)", "B falls back", id="bisect-b"),
        Binding("enter", "step(-1)", "Evaluate", show=False, id="bisect-evaluate"),
        Binding("y", "verdict(1)", "Pass (you judge)", show=False, id="bisect-pass"),
        Binding("n", "verdict(0)", "Fail (you judge)", show=False, id="bisect-fail"),
        Binding("R", "auto", "Run to end", id="bisect-auto"),
        Binding("u", "undo", "Undo", id="bisect-undo"),
        Binding("e", "export", "Export plan", id="bisect-export"),
        Binding("c", "resume", "Resume saved", show=False, id="bisect-resume"),
    ]
    DEFAULT_CSS = """
    BisectScreen #bisect-top { height: 1; background: $panel; padding: 0 1; }
    BisectScreen #bisect-body { height: 1fr; }
    BisectScreen GraphTree { width: 42%; border-right: solid $panel-lighten-2; }
    BisectScreen #bisect-right { width: 1fr; }
    BisectScreen #setup { height: auto; padding: 0 1; border-bottom: solid $panel-lighten-2; }
    BisectScreen #setup .row { height: auto; margin-bottom: 1; }
    BisectScreen #setup Label.key { width: 11; color: $text-muted; }
    BisectScreen #setup Select { width: 1fr; margin-right: 1; }
    BisectScreen #setup Input { width: 1fr; margin-right: 1; background: $boost; }
    BisectScreen #setup #buttons { height: 1; }
    BisectScreen #setup Button { margin-right: 2; }
    BisectScreen #status { height: auto; max-height: 12; padding: 0 1; border-bottom: solid $panel-lighten-2; }
    BisectScreen DataTable { height: 1fr; }
    BisectScreen #result { height: auto; max-height: 12; padding: 0 1; border-top: solid $panel-lighten-2; }
    BisectScreen #missing { padding: 1 2; }
    """

    def __init__(self, main: Any) -> None:
        super().__init__()
        self.main = main
        self.view = main.view
        self.session: Any = None
        self._lock = threading.Lock()
        self._cancel = CancelToken()
        self._auto_steps = 0
        self.busy = False
        self.state: dict[str, Any] | None = None
        self.saved: dict[str, Any] | None = None
        self.last_error: str | None = None
        self.exported: str | None = None

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Static(Text("Precision bisection", style="bold"), id="bisect-top")
        if not precision_available():
            yield Static(
                Text(
                    "Not available in this build: the bisection engine (engine_core.precision) is "
                    "missing. Esc goes back."
                ),
                id="missing",
            )
            yield Footer()
            return
        form = self.main.form
        with Horizontal(id="bisect-body"):
            yield GraphTree(self.view, id="bisect-tree")
            with Vertical(id="bisect-right"):
                with Vertical(id="setup"):
                    with Horizontal(classes="row"):
                        yield key("precision")
                        yield choice([("FP16", "fp16"), ("BF16", "bf16"), ("INT8", "int8")], "fp16", "precision")
                        yield key("fallback")
                        yield choice(
                            [("FP32", "fp32"), ("FP16 (INT8 only)", "fp16"), ("BF16 (INT8 only)", "bf16")],
                            "fp32",
                            "fallback",
                        )
                    with Horizontal(classes="row"):
                        yield key("subject")
                        yield choice(self._subjects(), "ort", "subject")
                        yield key("search")
                        yield choice([("auto", "auto"), ("bisect", "bisect"), ("linear", "linear")], "auto", "mode")
                    with Horizontal(classes="row"):
                        yield key("check")
                        yield choice(
                            [("tolerances", "tolerance"), ("external command", "command")], "tolerance", "check-kind"
                        )
                        yield Input("", placeholder="atol (default per precision)", id="atol", compact=True)
                        yield Input("", placeholder="rtol", id="rtol", compact=True)
                    with Horizontal(classes="row", id="command-row"):
                        yield key("command")
                        yield Input(
                            "",
                            placeholder="exit 0 = pass; gets $TRTDBG_MODEL, $TRTDBG_OUTPUTS, …",
                            id="command",
                            compact=True,
                        )
                    data = {"random": "random inputs", "script": "data-loader script", "inputs": "saved inputs"}
                    yield Static(
                        safe(
                            f"data: {data.get(form.data, form.data)} {form.data_path}".rstrip()
                            + "  (from the compare dialog)",
                            style="dim",
                        )
                    )
                    with Horizontal(id="buttons"):
                        yield Button("Start (ctrl+s)", variant="primary", id="start", compact=True)
                        yield Button("Resume saved (c)", id="resume", compact=True, disabled=True)
                yield Static(Text("Set up the bisection and start it.", style="dim"), id="status")
                yield DataTable(id="steps", cursor_type="row", zebra_stripes=True)
                yield Static("", id="result")
        yield Footer()

    def _subjects(self) -> list[tuple[str, str]]:
        try:
            from engine_core.precision.evaluate import SUBJECTS
        except Exception:
            return [("ort", "ort")]
        labels = {"ort": "ort (CPU, emulated)", "ort-cuda": "ort-cuda (real types)"}
        return [(labels.get(s, s), s) for s in SUBJECTS]

    def on_mount(self) -> None:
        if not precision_available():
            return
        table = self.query_one("#steps", DataTable)
        for col in (
            "#",
            "phase",
            "step",
            "fell back",
            "verdict",
            "max abs",
            "max rel",
            "NaN/Inf",
            "worst output",
            "outcome",
        ):
            table.add_column(col, key=col)
        self.query_one("#command-row").display = False
        self.query_one("#bisect-tree", GraphTree).populate(self.main.display_name, self.view.scopes.children(()))
        self.probe()

    @on(Select.Changed, "#check-kind")
    def _check_kind(self, event: Select.Changed) -> None:
        self.query_one("#command-row").display = event.value == "command"

    # ------------------------------------------------------------------ workers
    @work(thread=True, exclusive=True, exit_on_error=False, group="bisect-probe")
    def probe(self) -> None:
        """Is there a saved bisection for this model in the workspace?"""
        try:
            from engine_core.precision.state import saved_bisection
            from engine_core.workspace import Workspace

            ws = (
                Workspace(self.main.workspace.root)
                if self.main.workspace is not None
                else Workspace.for_model(self.main.model_path)
            )
            self.post_message(BisectProbe(saved_bisection(ws, self.main.model_path)))
        except Exception as exc:
            self.post_message(BisectProbe({"error": str(exc)}))

    def _options(self) -> Any:
        from engine_core.options import ToleranceOptions
        from engine_core.precision.bisect import BisectOptions

        q = self.query_one
        form = self.main.form
        command = q("#command", Input).value.strip() if q("#check-kind", Select).value == "command" else None
        return BisectOptions(
            model=self.main.model_path,
            precision=str(q("#precision", Select).value),
            fallback=str(q("#fallback", Select).value),
            subject=str(q("#subject", Select).value),
            mode=str(q("#mode", Select).value),
            check=command,
            tolerances=ToleranceOptions(
                atol=tuple(q("#atol", Input).value.split()), rtol=tuple(q("#rtol", Input).value.split())
            ),
            data=form.data_options(),
            workspace=str(self.main.workspace.root) if self.main.workspace is not None else None,
            external_data_dir=self.main.external_data_dir,
        )

    def _begin(self, text: str) -> bool:
        if self.busy:
            self.notify("busy: wait for the current evaluation (ctrl+c stops a run)", timeout=3)
            return False
        self.busy = True
        self._cancel.clear()
        self._set_status(Text(text, style="bold"))
        return True

    @work(thread=True, exclusive=True, exit_on_error=False, group="bisect")
    def _start(self, options: Any, resume: bool) -> None:
        from engine_core.errors import TrtdbgError
        from engine_core.jobs import JobEvents
        from engine_core.precision.bisect import BisectSession

        def stage(st: Any) -> None:
            if self.session is None:  # the set-up steps of start(); later session builds are the steps' business
                self.app.call_from_thread(self._set_status, Text(f"starting: {printable(str(st))}…", style="bold"))

        try:
            with self._lock:
                events = JobEvents(on_item=self._auto_step, on_stage=stage, cancel=self._cancel)
                note = "baseline checked; bisection started"
                if resume:  # as the CLI's --resume: data or tolerances that differ from the saved ones are refused
                    session = BisectSession.resume(
                        options.model,
                        options.workspace,
                        events=events,
                        data=options.data if options.data.given else None,
                        tolerances=options.tolerances if options.tolerances.given else None,
                        external_data_dir=options.external_data_dir,
                    )
                    ignored = options.ignored_by_resume(session.options, asked=_SETUP_OPTIONS)
                    note = "resumed" + (
                        f" with the options it started with (ignoring {', '.join(f'{k} {v}' for k, v in ignored.items())})"
                        if ignored
                        else ""
                    )
                else:
                    session = BisectSession(options, events=events)
                self.session = session.start()
                state = snapshot(session, 0)
            self.post_message(BisectUpdate(state, note))
        except TrtdbgError as exc:
            self.post_message(BisectFailed(str(exc), stopped=True))
        except Exception as exc:
            self.post_message(BisectFailed(f"{type(exc).__name__}: {exc}", stopped=True))

    @work(thread=True, exclusive=True, exit_on_error=False, group="bisect")
    def _act(self, action: str, choice: int = 0, verdict: bool | None = None) -> None:
        from engine_core.errors import TrtdbgError

        session = self.session
        try:
            with self._lock:
                note = None
                if action == "step":
                    rec = session.step(choice, verdict)
                    note = rec["outcome"]
                elif action == "auto":
                    self._auto_steps = 0
                    session.run()  # each step comes back through _auto_step; ctrl+c sets the session's cancel token
                    note = "stopped (ctrl+c); every step is saved" if self._cancel.is_set() else "finished"
                elif action == "undo":
                    undone = session.undo()
                    note = f"undid step {undone['index']}" if undone else "nothing to undo"
                elif action == "export":
                    note = self._export(session)
                state = snapshot(session, choice if action == "step" else 0)
            self.post_message(BisectUpdate(state, note))
        except TrtdbgError as exc:
            self.post_message(BisectFailed(str(exc)))
        except Exception as exc:
            self.post_message(BisectFailed(f"{type(exc).__name__}: {exc}"))

    def _auto_step(self, record: dict[str, Any]) -> None:
        """A step of an automatic run (worker thread): post a snapshot every second step, for long runs."""
        self._auto_steps += 1
        if self._auto_steps % 2 == 0:
            self.post_message(BisectUpdate(snapshot(self.session, 0), record["outcome"], final=False))

    def _export(self, session: Any) -> str:
        ws = session.workspace.root
        stem = Path(session.options.model).stem
        k, path = 1, ws / f"{stem}_precision_plan.json"
        while path.exists():
            k += 1
            path = ws / f"{stem}_precision_plan_{k}.json"
        session.final_plan().save(path, session.builder.analysis)
        self.exported = str(path)
        return f"plan exported to {path}"

    # ------------------------------------------------------------------ actions
    def action_back(self) -> None:
        if self.busy:
            self.notify("an evaluation is running: wait, or ctrl+c to stop an automatic run", timeout=3)
            return
        self._clear_tags()
        self.app.pop_screen()

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        if not precision_available() or self.busy:
            return
        from engine_core.errors import TrtdbgError

        try:
            options = self._options()
            options.validate()
        except TrtdbgError as exc:
            self._error(str(exc))
            return
        if self._begin("starting: loading the model and data, checking the baseline…"):
            self._start(options, False)

    def key_ctrl_s(self) -> None:
        if self.session is None:
            self.action_start()

    @on(Button.Pressed, "#resume")
    def action_resume(self) -> None:
        if not precision_available() or not self.saved or not self.saved.get("same_model"):
            self.notify("no saved bisection of this model in the workspace", timeout=3)
            return
        from engine_core.errors import TrtdbgError

        try:
            options = self._options()
        except TrtdbgError as exc:
            self._error(str(exc))
            return
        if self._begin("resuming the saved bisection…"):
            self._start(options, True)

    def _session_state(self) -> dict[str, Any] | None:
        """The running bisection's state; ``None`` (with a hint) before one is started."""
        if self.session is None or self.state is None:
            self.notify("start (ctrl+s) or resume (c) a bisection first", timeout=3)
            return None
        return self.state

    def action_step(self, choice: int) -> None:
        state = self._session_state()
        if state is None:
            return
        prop = state["proposal"]
        if prop is None:
            self.notify("the bisection is finished: e exports the plan, u undoes", timeout=3)
            return
        if prop["halves"] is None:
            choice = 0
        elif choice < 0:
            choice = state.get("choice", 0)
        what = f"evaluating: half {'AB'[choice]} falls back" if prop["halves"] else f"evaluating: {prop['kind']}"
        if self._begin(what + "…"):
            self._act("step", choice)

    def action_verdict(self, passed: int) -> None:
        state = self._session_state()
        if state is None or state["proposal"] is None:
            return
        if self._begin("recording your verdict…"):
            self._act("step", 0, bool(passed))

    def action_auto(self) -> None:
        state = self._session_state()
        if (
            state is not None
            and state["proposal"] is not None
            and self._begin("running to the end (ctrl+c stops after the current step)…")
        ):
            self._act("auto")

    def action_undo(self) -> None:
        if self._session_state() is not None and self._begin("undoing…"):
            self._act("undo")

    def action_export(self) -> None:
        state = self._session_state()
        if state is None:
            return
        if not state["finished"]:
            self.notify("the bisection is not finished; the plan so far is exported anyway", timeout=4)
        if self._begin("exporting the plan…"):
            self._act("export")

    def action_mark_node(self) -> None:
        self.notify("marks are edited on the main screen (esc)", timeout=2)

    def cancel_job(self) -> bool:
        """ctrl+c: stop an automatic run after the current step."""
        if self.busy:
            self._cancel.set()
            return True
        return False

    # ------------------------------------------------------------------ handlers
    @on(BisectProbe)
    def _probed(self, msg: BisectProbe) -> None:
        self.saved = msg.info
        info = msg.info
        if not info:
            return
        if "error" in info:
            self._set_status(Text(f"the saved bisection cannot be resumed: {info['error']}", style="yellow"))
            return
        if info["same_model"]:
            self.query_one("#resume", Button).disabled = False
            self._fill_setup(info["doc"])
            t = Text()
            t.append("A bisection of this model is saved in the workspace ", style="bold")
            t.append(
                f"({info['precision']} → {info['fallback']}, {info['steps']} step(s)"
                f"{', finished' if info['finished'] else ''}). "
            )
            t.append("c resumes it; Start begins a new one (the old state is kept as a backup).", style="dim")
            self._set_status(t)

    def _fill_setup(self, doc: dict[str, Any]) -> None:
        """Show the saved bisection's options in the set-up fields (what a resume continues with)."""
        from engine_core.precision.bisect import BisectOptions

        try:
            saved = BisectOptions.from_state(doc, None)
        except (TypeError, ValueError, AttributeError):
            return  # the resume reports the damaged state in one line
        q = self.query_one
        for option in ("precision", "fallback", "subject", "mode"):
            with contextlib.suppress(InvalidSelectValueError):  # a value this build does not offer
                q(f"#{option}", Select).value = getattr(saved, option)
        q("#check-kind", Select).value = "command" if saved.check else "tolerance"
        q("#command", Input).value = saved.check or ""
        q("#atol", Input).value = " ".join(saved.tolerances.atol)
        q("#rtol", Input).value = " ".join(saved.tolerances.rtol)

    @on(BisectUpdate)
    def _update(self, msg: BisectUpdate) -> None:
        self.state = msg.state
        if msg.final:
            self.busy = False
        self.query_one("#setup").display = False
        self._render_state(msg.note)

    @on(BisectFailed)
    def _failed(self, msg: BisectFailed) -> None:
        self.busy = False
        if msg.stopped:
            self.session = None
        self._error(msg.error)

    def _error(self, error: str) -> None:
        self.last_error = error
        self._set_status(Text(error, style="bold red"))
        self.notify(error, severity="error", timeout=10)

    def _set_status(self, text: Text) -> None:
        self.query_one("#status", Static).update(safe(text))

    # ------------------------------------------------------------------ rendering
    def _render_state(self, note: str | None) -> None:
        s = self.state
        assert s is not None
        top = Text()
        top.append("Precision bisection ", style="bold")
        top.append(printable(Path(s["model"]).name), style="bold")
        top.append(
            f" · {s['precision']} (fallback {s['fallback']}) · subject {s['subject']}"
            f"{' (CPU emulation)' if s['emulated'] else ''} · "
            f"{'check: ' + s['check'] if s['check'] else 'atol ' + format(s['settings']['atol'], 'g') + ' rtol ' + format(s['settings']['rtol'], 'g')}",
            style="dim",
        )
        self.query_one("#bisect-top", Static).update(safe(top))
        t = Text()
        if note:
            t.append(note + "\n", style="italic")
        prop = s["proposal"]
        if s["finished"]:
            t.append("Finished", style="bold green" if s["passed"] else "bold red")
            t.append(
                f" after {s['evaluations']} evaluation(s): the final plan "
                f"{'passes' if s['passed'] else 'FAILS'}" + (f" ({s['problem']})" if s["problem"] else "")
            )
            t.append("\ne exports the plan · u undoes the last step · esc back", style="dim")
        elif prop is not None:
            t.append(f"phase {s['phase']} · step {len(s['steps']) + 1} · ", style="dim")
            if prop["halves"]:
                a, b = prop["halves"]
                split = "one at a time (a: is B needed?)" if s["stage"] == "sweep" else "split in two"
                t.append(f"{s['suspects']} suspects {split}", style="bold")
                t.append(f" ({len(prop['high'])} already kept high)\n", style="dim")
                t.append(" ⟦A⟧ ", style="bold reverse cyan")
                t.append(f" {len(a)} node(s): {_short_names(a)}\n")
                t.append(" ⟦B⟧ ", style="bold reverse yellow")
                t.append(f" {len(b)} node(s): {_short_names(b)}\n")
                t.append(
                    "a / b: that half falls back and is evaluated · y / n: judge A yourself · R: run to the "
                    "end · u: undo",
                    style="dim",
                )
            else:
                what = {
                    "all-low": f"everything in {s['phase'].split('->')[0]}",
                    "verify": f"verify that the {len(prop['high'])} culprit(s) found suffice",
                }.get(prop["kind"], prop["kind"])
                t.append(f"next: {what}\n", style="bold")
                t.append("enter / a: evaluate · y / n: judge it yourself · R: run to the end · u: undo", style="dim")
        self._set_status(t)
        self._render_steps(s["steps"])
        self._render_result(s)
        self._tag_tree(s)

    def _render_steps(self, steps: list[dict[str, Any]]) -> None:
        table = self.query_one("#steps", DataTable)
        table.clear()
        for rec in steps:
            ev = rec["evaluation"]
            kind = rec["kind"]
            fell = (
                f"{len(rec.get('fallback') or [])} of {rec['suspects']}"
                if kind == "split"
                else ("all" if kind == "baseline" else f"{rec['high']} kept")
            )
            verdict = Text("PASS" if rec["passed"] else "FAIL", style="bold green" if rec["passed"] else "bold red")
            if ev.get("judged_by") == "user":
                verdict.append(" (you)", style="dim")
            if rec.get("cached"):
                verdict.append(" (cached)", style="dim")
            table.add_row(
                Text(str(rec["index"]), justify="right"),
                Text(rec["phase"]),
                Text(kind + (f" {'AB'[rec['choice']]}" if kind == "split" else "")),
                safe(fell),
                verdict,
                Text(_measured(ev, "max_abs"), justify="right"),
                Text(_measured(ev, "max_rel"), justify="right"),
                Text(str(ev.get("nonfinite") or "-"), justify="right"),
                safe(ev.get("worst") or "-"),
                safe(rec.get("outcome") or ""),
            )
        if steps:
            table.move_cursor(row=len(steps) - 1)

    def _render_result(self, s: dict[str, Any]) -> None:
        t = Text()
        culprits = s["culprits"]
        if culprits:
            t.append(f"Culprits kept in higher precision ({len(culprits)}):\n", style="bold")
            for name, prec in culprits.items():
                t.append("  ★ ", style="bold red")
                t.append(printable(name))
                t.append(f"  {prec}\n", style="dim")
        elif s["finished"]:
            t.append("No culprits: every candidate runs in the target precision.\n", style="bold green")
        if s["demoted"]:
            t.append(
                f"{len(s['demoted'])} node(s) demoted automatically (e.g. constants that underflow)\n", style="dim"
            )
        if s["finished"] and s.get("plan"):
            t.append("plan: ", style="dim")
            t.append(printable(s["plan"]))
            if self.exported:
                t.append("\nexported: ", style="dim")
                t.append(printable(self.exported), style="bold")
            if s.get("layer_precisions"):
                t.append("\nTensorRT ≤ 10: ", style="dim")
                t.append(printable(s["layer_precisions"]))
        t.append(f"\nstate saved after every step: {s['state_file']}", style="dim")
        self.query_one("#result", Static).update(safe(t))

    def _tag_tree(self, s: dict[str, Any]) -> None:
        view = self.view
        index, scopes = view.index, view.scopes
        tags: dict[int, str] = {}
        prop = s["proposal"]
        if prop is not None and prop["halves"]:
            for tag, names in zip(("A", "B"), prop["halves"]):
                for n in names:
                    i = index.find(n)
                    if i is not None:
                        tags[i] = tag
        for n in s["culprits"]:
            i = index.find(n)
            if i is not None:
                tags[i] = "culprit"
        view.bisect = tags
        counts: dict[tuple, dict[str, int]] = {}
        for i, tag in tags.items():
            path = scopes.locate(i) + (i,)
            for k in range(1, len(path)):
                c = counts.setdefault(path[:k], {})
                c[tag] = c.get(tag, 0) + 1
        view.bisect_scopes = counts
        tree = self.query_one("#bisect-tree", GraphTree)
        tree.refresh_labels()
        first = next((i for i, t in sorted(tags.items()) if t in ("A", "culprit")), None)
        if first is not None and (prop is not None or s["finished"]):
            tree.reveal(first)

    def _clear_tags(self) -> None:
        self.view.bisect = {}
        self.view.bisect_scopes = {}


def _measured(ev: dict[str, Any], key: str) -> str:
    """An error the step measured, or "–" where nothing was measured (your own verdict)."""
    if ev.get("judged_by") == "user" or key not in ev:
        return "–"
    return fmt(float(ev[key]))
