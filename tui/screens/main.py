"""Main screen: graph tree (left), detail pane and live compare table (right).

All model work runs in thread workers that never touch widgets: they post messages (tui.messages)
or, for the compare's result stream, put results on a queue that a 4 Hz timer (2 Hz with
``--low-bandwidth``) drains inside ``app.batch_update()``. Handlers on this screen own all state.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, ProgressBar, Sparkline, Static, Tree
from textual.worker import get_current_worker

from tui.messages import (
    CompareFinished,
    InitializerStatsReady,
    JobFinished,
    MarksSaved,
    ModelLoaded,
    ModelLoadFailed,
    SearchDone,
    ShapesReady,
)
from tui.screens.common import PickScreen
from tui.screens.compare_dialog import CompareDialog, CompareForm
from tui.widgets.detail import DetailPane, node_detail, result_block, scope_detail
from tui.widgets.error_table import ErrorTable, fmt
from tui.widgets.graph_tree import GraphTree, GraphView, Row

MAX_FLUSH = 20_000
"""Most results moved into the table per flush (keeps one frame short even when 100k arrive at once)."""


def search_nodes(index: Any, query: str) -> list[int]:
    """Nodes whose name, op type or an output tensor name contains ``query`` (case-insensitive)."""
    q = query.lower().strip()
    if not q:
        return []
    hits = []
    names = index.names()
    for i, name in enumerate(names):
        if q in name.lower() or index.op_type(i).lower() == q or any(q in o.lower() for o in index.node_outputs(i)):
            hits.append(i)
    return hits


class MainScreen(Screen):
    """The graph, the detail pane and the live compare."""

    BINDINGS = [
        Binding("slash", "search", "Search", id="search"),
        Binding("n", "search_next(1)", "Next hit", show=False, id="search-next"),
        Binding("N", "search_next(-1)", "Previous hit", show=False, id="search-prev"),
        Binding("p", "goto_producer", "Producer", id="goto-producer"),
        Binding("c", "goto_consumer", "Consumers", id="goto-consumers"),
        Binding("backspace", "go_back", "Back", show=False, id="go-back"),
        Binding("m", "mark_scope", "Mark scope", show=False, id="mark-scope"),
        Binding("M", "mark_all", "Mark all", show=False, id="mark-all"),
        Binding("C", "clear_marks", "Clear marks", show=False, id="mark-clear"),
        Binding("r", "compare", "Compare", id="compare"),
        Binding("F", "goto_first_failing", "First failing", show=False, id="first-failing"),
        Binding("e", "toggle_focus", "Tree/table", show=False, id="focus-toggle"),
        Binding("t", "toggle_view", "ONNX/TRT view", show=False, id="toggle-view"),
        Binding("b", "bisect", "Bisect", id="bisect"),
        Binding("x", "surgeon('extract')", "Extract", show=False, id="surgeon-extract"),
        Binding("z", "surgeon('sanitize')", "Sanitize", show=False, id="surgeon-sanitize"),
        Binding("i", "surgeon('insert')", "Insert node", show=False, id="surgeon-insert"),
    ]

    DEFAULT_CSS = """
    MainScreen #topbar { height: 1; background: $panel; color: $text; padding: 0 1; }
    MainScreen #body { height: 1fr; }
    MainScreen GraphTree { width: 42%; border-right: solid $panel-lighten-2; }
    MainScreen #right { width: 1fr; }
    MainScreen DetailPane { height: 1fr; min-height: 8; border-bottom: solid $panel-lighten-2; }
    MainScreen #compare-panel { height: 1fr; min-height: 10; }
    MainScreen #compare-panel.-empty { height: 5; min-height: 5; }
    MainScreen #compare-status { height: auto; max-height: 4; padding: 0 1; }
    MainScreen #progress { height: 1; padding: 0 1; }
    MainScreen #progress Bar { width: 1fr; }
    MainScreen #spark-label { height: 1; padding: 0 1; color: $text-muted; }
    MainScreen Sparkline { height: 2; padding: 0 1; }
    MainScreen #progress, MainScreen Sparkline, MainScreen #spark-label { display: none; }
    MainScreen .-active #progress, MainScreen .-results Sparkline, MainScreen .-results #spark-label { display: block; }
    MainScreen #search { dock: bottom; display: none; }
    MainScreen #search.-visible { display: block; }
    """

    def __init__(
        self, model_path: str, workspace: str | None, form: CompareForm, flush_hz: float = 4.0, title: str | None = None
    ) -> None:
        super().__init__()
        self.model_path = model_path
        self.workspace_arg = workspace
        self.form = form
        self.flush_interval = 1.0 / flush_hz
        self.display_name = model_path.rsplit("/", 1)[-1]
        self.title_text = title or self.display_name
        self.view = GraphView()
        self.workspace: Any = None
        self.load_seconds: float | None = None
        self.results_by_tensor: dict[str, Any] = {}
        self.init_stats: dict[str, Any] = {}
        self.hits: list[int] = []
        self.hit_pos = -1
        self.history: list[int] = []
        self.last_report: Any = None
        self.compare_error: str | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._progress: Any = None
        self._cancel: threading.Event | None = None
        self._comparing = False
        self._compare_started = 0.0
        self._flush_timer: Any = None
        self._first_failing: Any = None
        self._first_nonfinite: Any = None
        self._detail_node: int | None = None
        self._warnings: list[str] = []
        self.last_surgery: Any = None
        self.last_surgery_error: str | None = None

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Static(Text(f"trtdbg · loading {self.display_name} …"), id="topbar")
        with Horizontal(id="body"):
            yield GraphTree(self.view, id="tree")
            with Vertical(id="right"):
                yield DetailPane(id="detail")
                with Vertical(id="compare-panel", classes="-empty"):
                    yield Static(
                        Text("No comparison yet: r sets one up (reference, subject, tolerances, data).", style="dim"),
                        id="compare-status",
                    )
                    yield ProgressBar(total=1, show_eta=False, id="progress")
                    yield ErrorTable(id="errors")
                    yield Static("", id="spark-label")
                    yield Sparkline([], id="spark")
        yield Input(placeholder="search: node name, tensor name or op type (enter: search, esc: close)", id="search")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(ErrorTable).op_of = self._op_of_result
        self.query_one(GraphTree).focus()
        self.load_model()

    # ------------------------------------------------------------------ loading
    @work(thread=True, exclusive=True, exit_on_error=False, group="load")
    def load_model(self) -> None:
        """Index the model, its first scope level and its saved marks (off the UI thread)."""
        start = time.perf_counter()
        try:
            from engine_core.comparator.marks import MarkSet
            from engine_core.errors import TrtdbgError
            from engine_core.model.index import ModelIndex
            from engine_core.model.scopes import ScopeTree
            from engine_core.workspace import Workspace
        except Exception as exc:
            self.post_message(ModelLoadFailed(f"{type(exc).__name__}: {exc}"))
            return
        try:
            index = ModelIndex.load(self.model_path, load_external_data=False)
            scopes = ScopeTree(index)
            root = scopes.children(())
            notes: list[str] = []
            ws = Workspace.for_model(self.model_path, self.workspace_arg)
            if ws.note:
                notes.append(ws.note)
            try:
                marks = MarkSet.load(index, ws, self.model_path)
            except TrtdbgError as exc:
                marks = MarkSet(index, ws, self.model_path)
                notes.append(str(exc))
            if marks.dropped:
                notes.append(f"{len(marks.dropped)} saved mark(s) name tensors the model no longer has; dropped")
            self.post_message(ModelLoaded(index, scopes, root, marks, ws, time.perf_counter() - start, notes))
            # Build the lookup tables here, not on the UI thread (the tree is already up).
            index.find("")
            marks.unobservable()
            marks.node_state(0) if len(index) else None
            index.consumers("")
        except TrtdbgError as exc:
            self.post_message(ModelLoadFailed(str(exc)))
        except Exception as exc:
            self.post_message(ModelLoadFailed(f"{type(exc).__name__}: {exc}"))

    @on(ModelLoaded)
    def _model_loaded(self, msg: ModelLoaded) -> None:
        v = self.view
        v.index, v.scopes, v.marks = msg.index, msg.scopes, msg.marks
        self.workspace = msg.workspace
        self.load_seconds = msg.seconds
        tree = self.query_one(GraphTree)
        tree.populate(self.display_name, msg.root)
        for note in msg.notes:
            self.notify(note, severity="warning", timeout=8)
        self._update_topbar()
        self._show_row(tree.root.data)
        self.call_after_refresh(self.infer_shapes)

    @on(ModelLoadFailed)
    def _model_failed(self, msg: ModelLoadFailed) -> None:
        self.query_one("#topbar", Static).update(Text(f"trtdbg · cannot open {self.display_name}", style="bold red"))
        self.query_one(DetailPane).show(Text(msg.error, style="red"))
        self.query_one(GraphTree).root.set_label(Text("(model not loaded)"))
        self.notify(msg.error, severity="error", timeout=15)

    @work(thread=True, exclusive=True, exit_on_error=False, group="shapes")
    def infer_shapes(self) -> None:
        start = time.perf_counter()
        index = self.view.index
        try:
            index.describe_tensor(index.outputs[0] if index.outputs else "", infer=True)
            self.post_message(ShapesReady(time.perf_counter() - start, index.shape_inference_error))
        except Exception as exc:
            self.post_message(ShapesReady(time.perf_counter() - start, f"{type(exc).__name__}: {exc}"))

    @on(ShapesReady)
    def _shapes_ready(self, msg: ShapesReady) -> None:
        self.view.shapes_ready = True
        self.shape_error = msg.error
        if msg.error:
            self.notify(f"shape inference was partial: {msg.error}", severity="warning", timeout=6)
        self.query_one(GraphTree).refresh_labels()
        self._update_topbar()
        self._refresh_detail()

    def _update_topbar(self) -> None:
        v = self.view
        if v.index is None:
            return
        t = Text()
        t.append("trtdbg ", style="bold")
        t.append(self.title_text, style="bold")
        t.append(f" · {len(v.index)} nodes · ")
        t.append(f"{len(v.marks)} marked", style="green" if len(v.marks) else "")
        unobs = len(v.marks.unobservable())
        if unobs:
            t.append(f" · {unobs} unobservable")
        t.append(" · shapes " + ("ready" if v.shapes_ready else "inferring…"), style="dim")
        if self.workspace is not None:
            t.append(" · workspace ", style="dim")
            t.append(str(self.workspace.root), style="dim")
        self.query_one("#topbar", Static).update(t)

    # ------------------------------------------------------------------ detail
    @on(Tree.NodeHighlighted)
    def _highlighted(self, event: Tree.NodeHighlighted) -> None:
        if self.view.index is None:
            return
        self._show_row(event.node.data)

    def _current_row(self) -> Row | None:
        node = self.query_one(GraphTree).cursor_node
        return node.data if node is not None else None

    def current_node(self) -> int | None:
        row = self._current_row()
        return row.node if row is not None and row.kind == "node" else None

    def _show_row(self, row: Row | None) -> None:
        if row is None or self.view.index is None:
            return
        pane = self.query_one(DetailPane)
        if row.kind == "node" and row.node is not None:
            self._detail_node = row.node
            self._show_node(row.node)
        else:
            self._detail_node = None
            pane.show(scope_detail(self.view, row))

    def _show_node(self, i: int) -> None:
        index = self.view.index
        inits = [n for n in index.node_inputs(i) if n and index.is_initializer(n)]
        stats = None
        if inits:
            missing = [n for n in inits if n not in self.init_stats]
            if missing:
                self.compute_init_stats(i, missing)
            else:
                stats = {n: self.init_stats[n] for n in inits}
        self.query_one(DetailPane).show(node_detail(self.view, i, self.results_by_tensor, stats))

    def _refresh_detail(self) -> None:
        if self._detail_node is not None:
            self._show_node(self._detail_node)
        else:
            self._show_row(self._current_row())

    @work(thread=True, exclusive=True, exit_on_error=False, group="init-stats")
    def compute_init_stats(self, node: int, names: list[str]) -> None:
        index = self.view.index
        out: dict[str, Any] = {}
        worker = get_current_worker()
        for n in names:
            if worker.is_cancelled:
                return
            try:
                out[n] = index.initializer_stats(n)
            except Exception as exc:
                out[n] = str(exc)
        self.post_message(InitializerStatsReady(node, out))

    @on(InitializerStatsReady)
    def _init_stats_ready(self, msg: InitializerStatsReady) -> None:
        self.init_stats.update(msg.stats)
        if self._detail_node == msg.node:
            self._show_node(msg.node)

    # ------------------------------------------------------------------ navigation
    def jump_to(self, i: int, remember: bool = True) -> None:
        """Show node ``i`` in the tree (expanding its scopes) and its detail."""
        tree = self.query_one(GraphTree)
        cur = self.current_node()
        if remember and cur is not None and cur != i:
            self.history.append(cur)
        tree.reveal(i)
        self._detail_node = i
        self._show_node(i)

    def action_go_back(self) -> None:
        if self.history:
            self.jump_to(self.history.pop(), remember=False)

    def action_goto_producer(self) -> None:
        i = self._node_or_warn()
        if i is None:
            return
        index = self.view.index
        targets = []
        for name in index.node_inputs(i):
            p = index.producer(name) if name else None
            if p is not None:
                targets.append((name, p))
        if not targets:
            self.notify("its inputs come from graph inputs or initializers: no producer node", timeout=4)
        elif len(targets) == 1:
            self.jump_to(targets[0][1])
        else:
            self._pick("Producer of which input?", targets, "←")

    def action_goto_consumer(self) -> None:
        i = self._node_or_warn()
        if i is None:
            return
        index = self.view.index
        targets = [(name, c) for name in index.node_outputs(i) if name for c in index.consumers(name)]
        if not targets:
            self.notify(
                "no node reads its outputs"
                + (" (graph output)" if any(o in index.outputs for o in index.node_outputs(i)) else ""),
                timeout=4,
            )
        elif len(targets) == 1:
            self.jump_to(targets[0][1])
        else:
            self._pick("Which consumer?", targets, "→")

    def _pick(self, title: str, targets: list[tuple[str, int]], arrow: str) -> None:
        index = self.view.index
        options = []
        for tensor, node in targets[:500]:
            label = Text()
            label.append(tensor)
            label.append(f" {arrow} ", style="dim")
            label.append(index.name(node), style="bold")
            label.append(f" ({index.op_type(node)})", style="dim")
            options.append((label, node))

        def done(node: int | None) -> None:
            if node is not None:
                self.jump_to(node)

        self.app.push_screen(PickScreen(title, options), done)

    def _node_or_warn(self) -> int | None:
        if self.view.index is None:
            return None
        i = self.current_node()
        if i is None:
            self.notify("put the cursor on a node (not a scope) first", timeout=3)
        return i

    def action_toggle_focus(self) -> None:
        tree, table = self.query_one(GraphTree), self.query_one(ErrorTable)
        (tree if table.has_focus else table).focus()

    def action_toggle_view(self) -> None:
        """Switch to the TensorRT view (engine layers and the ONNX nodes they implement)."""
        if self.view.index is None:
            return
        engine = getattr(self.app, "engine_path", None)
        if not engine:
            from tui.screens.trt_view import engine_status

            self.notify(
                f"TensorRT view: no engine loaded; open the model with --engine ENGINE.plan or the "
                f"engine-inspector JSON (trtexec --exportLayerInfo). {engine_status()}.",
                severity="warning",
                timeout=8,
            )
            return
        from tui.screens.trt_view import TrtViewScreen

        self.app.push_screen(TrtViewScreen(self, engine), lambda _: self.query_one(GraphTree).refresh_labels())

    # ------------------------------------------------------------------ search
    def action_search(self) -> None:
        box = self.query_one("#search", Input)
        box.add_class("-visible")
        box.focus()

    @on(Input.Submitted, "#search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        box = self.query_one("#search", Input)
        box.remove_class("-visible")
        self.query_one(GraphTree).focus()
        if event.value.strip() and self.view.index is not None:
            self.run_search(event.value)

    def key_escape(self) -> None:
        box = self.query_one("#search", Input)
        if box.has_class("-visible"):
            box.remove_class("-visible")
            self.query_one(GraphTree).focus()

    @work(thread=True, exclusive=True, exit_on_error=False, group="search")
    def run_search(self, query: str) -> None:
        start = time.perf_counter()
        hits = search_nodes(self.view.index, query)
        self.post_message(SearchDone(query, hits, time.perf_counter() - start))

    @on(SearchDone)
    def _search_done(self, msg: SearchDone) -> None:
        self.hits = msg.hits
        self.view.hits = set(msg.hits)
        self.query_one(GraphTree).refresh_labels()
        if not msg.hits:
            self.hit_pos = -1
            self.notify(Text(f"no node matches '{msg.query}'").plain, timeout=3)
            return
        cur = self.current_node()
        start = next((k for k, h in enumerate(msg.hits) if cur is None or h >= cur), 0)
        self.hit_pos = start
        self.notify(f"{len(msg.hits)} match(es); n / N for next / previous", timeout=3)
        self.jump_to(msg.hits[start])

    def action_search_next(self, step: int) -> None:
        if not self.hits:
            self.notify("no search yet: press / to search", timeout=2)
            return
        self.hit_pos = (self.hit_pos + step) % len(self.hits)
        self.jump_to(self.hits[self.hit_pos])

    # ------------------------------------------------------------------ marks
    def action_mark_node(self) -> None:
        row = self._current_row()
        if row is None or self.view.marks is None:
            return
        if row.kind == "node" and row.node is not None:
            change = self.view.marks.toggle_node(row.node)
        else:
            self.action_mark_scope()
            return
        self._after_marks(change)

    def action_mark_scope(self) -> None:
        row = self._current_row()
        marks = self.view.marks
        if row is None or marks is None:
            return
        if row.kind == "root":
            change = marks.mark_all() if not marks.is_all() else marks.clear()
        elif row.kind == "page":
            nodes = [e.node_index for e in row.entries or [] if e.node_index is not None]
            outs = {o for i in nodes for o in self.view.index.node_outputs(i)}
            on_ = not all(o in marks for o in outs if o in set(marks.index.markable()))
            change = marks.mark_nodes(nodes, on=on_)
        else:
            path = row.path
            if row.kind == "node" and row.node is not None:
                path = self.view.scopes.locate(row.node)
                if not path:
                    change = marks.toggle_node(row.node)
                    self._after_marks(change)
                    return
            change = marks.mark_scope(self.view.scopes, path)
        self._after_marks(change)

    def action_mark_all(self) -> None:
        if self.view.marks is not None:
            self._after_marks(self.view.marks.mark_all())

    def action_clear_marks(self) -> None:
        if self.view.marks is not None:
            self._after_marks(self.view.marks.clear())

    def _after_marks(self, change: Any) -> None:
        self.notify(change.describe(), timeout=3, severity="information" if change.changed else "warning")
        if change.changed:
            self.query_one(GraphTree).refresh_labels()
            self._update_topbar()
            self._refresh_detail()
            self.save_marks()

    @work(thread=True, exclusive=True, exit_on_error=False, group="marks-save")
    def save_marks(self) -> None:
        try:
            path = self.view.marks.save()
            self.post_message(MarksSaved(str(path) if path else None))
        except Exception as exc:
            self.post_message(MarksSaved(None, str(exc)))

    @on(MarksSaved)
    def _marks_saved(self, msg: MarksSaved) -> None:
        if msg.error:
            self.notify(f"marks not saved: {msg.error}", severity="error", timeout=8)

    # ------------------------------------------------------------------ compare
    @property
    def comparing(self) -> bool:
        return self._comparing

    def action_compare(self) -> None:
        if self.view.index is None:
            self.notify("the model is still loading", timeout=2)
            return
        if self._comparing:
            self.notify("a comparison is running: ctrl+c cancels it", severity="warning", timeout=3)
            return
        form = self.form
        if form.what == "marked" and not len(self.view.marks):
            from dataclasses import replace

            form = replace(form, what="all")

        def start(result: CompareForm | None) -> None:
            if result is not None:
                self.form = result
                self.start_compare(result)

        self.app.push_screen(CompareDialog(form, len(self.view.marks), self.display_name), start)

    def start_compare(self, form: CompareForm) -> None:
        """Build the engine_core request and run it in a worker; results stream into the table."""
        from engine_core.errors import TrtdbgError

        try:
            request = form.to_request(
                self.model_path,
                self.view.marks.request_marks(),
                str(self.workspace.root) if self.workspace is not None else self.workspace_arg,
            )
        except TrtdbgError as exc:
            self._set_status(Text(str(exc), style="bold red"))
            self.notify(str(exc), severity="error", timeout=8)
            return
        self._reset_results()
        self._cancel = threading.Event()
        self._queue = queue.SimpleQueue()
        self._progress = None
        self._warnings = []
        self._comparing = True
        self._compare_started = time.perf_counter()
        self._set_status(Text("preparing: loading models and data…", style="bold"))
        bar = self.query_one("#progress", ProgressBar)
        bar.update(total=1, progress=0)
        self.query_one("#compare-panel").add_class("-active").remove_class("-empty")
        self._flush_timer = self.set_interval(self.flush_interval, self._flush)
        self.run_compare(request, self._cancel, self._queue)

    def _reset_results(self) -> None:
        self.results_by_tensor.clear()
        self.view.node_status.clear()
        self.view.scope_fails.clear()
        self.view.first_failing = self.view.first_nonfinite = None
        self._first_failing = self._first_nonfinite = None
        self.last_report = None
        self.compare_error = None
        self.query_one(ErrorTable).reset("waiting for the first results…")
        self.query_one(Sparkline).data = []
        self.query_one("#spark-label", Static).update("")
        self.query_one(GraphTree).refresh_labels()

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare")
    def run_compare(self, request: Any, cancel: threading.Event, results: queue.SimpleQueue) -> None:
        """engine_core ``execute`` in this thread; results go to the queue, never to widgets."""
        from engine_core.comparator import request as creq
        from engine_core.errors import TrtdbgError

        start = time.perf_counter()

        def progress(p: Any) -> None:
            self._progress = p

        def warn(msg: str) -> None:
            results.put(("warning", msg))

        try:
            report = creq.execute(request, on_progress=progress, on_warning=warn, on_result=results.put, cancel=cancel)
            self.post_message(
                CompareFinished(report, cancelled=report.summary.cancelled, seconds=time.perf_counter() - start)
            )
        except TrtdbgError as exc:
            self.post_message(
                CompareFinished(None, str(exc), cancelled=cancel.is_set(), seconds=time.perf_counter() - start)
            )
        except Exception as exc:
            self.post_message(
                CompareFinished(
                    None, f"{type(exc).__name__}: {exc}", cancelled=cancel.is_set(), seconds=time.perf_counter() - start
                )
            )

    def cancel_job(self) -> bool:
        """ctrl+c: cancel the running comparison; False when nothing runs."""
        if self._comparing and self._cancel is not None:
            if not self._cancel.is_set():
                self._cancel.set()
                self._set_status(Text("cancelling… (stops after the current chunk)", style="bold yellow"))
            return True
        return False

    def _flush(self) -> None:
        """Move queued results into the table and the tree (one repaint for everything that arrived)."""
        items: list[Any] = []
        q = self._queue
        try:
            while len(items) < MAX_FLUSH:
                items.append(q.get_nowait())
        except queue.Empty:
            pass
        results = []
        for it in items:
            if isinstance(it, tuple):
                self._warnings.append(it[1])
                self.notify(it[1], severity="warning", timeout=6)
            else:
                results.append(it)
        with self.app.batch_update():
            if results:
                self._absorb(results)
            self._update_progress()

    def _absorb(self, results: list[Any]) -> None:
        view = self.view
        index, scopes = view.index, view.scopes
        newly_failing: list[int] = []
        for r in results:
            prev = self.results_by_tensor.get(r.slot.name)
            if (
                prev is None
                or (prev.stats.passed and not r.stats.passed)
                or (r.stats.nonfinite and not prev.stats.nonfinite)
            ):
                self.results_by_tensor[r.slot.name] = r
            i = index.find(r.slot.node) if r.slot.node else None
            if i is not None:
                old = view.node_status.get(i)
                new = "nonfinite" if r.stats.nonfinite else ("fail" if not r.stats.passed else "pass")
                rank = {"pass": 0, "fail": 1, "nonfinite": 2}
                if old is None or rank[new] > rank[old]:
                    view.node_status[i] = new
                    if new != "pass" and old in (None, "pass"):
                        newly_failing.append(i)
            key = (r.slot.topo_index, r.iteration)
            if not r.stats.passed:
                ff = self._first_failing
                if ff is None or key < (ff.slot.topo_index, ff.iteration):
                    self._first_failing = r
            if r.stats.nonfinite:
                fn = self._first_nonfinite
                if fn is None or key < (fn.slot.topo_index, fn.iteration):
                    self._first_nonfinite = r
        for i in newly_failing:
            path = scopes.locate(i) + (i,)
            for k in range(1, len(path)):
                view.scope_fails[path[:k]] = view.scope_fails.get(path[:k], 0) + 1
        view.first_failing = self._node_of(self._first_failing)
        view.first_nonfinite = self._node_of(self._first_nonfinite)
        table = self.query_one(ErrorTable)
        table.add_results(results, self._first_failing, self._first_nonfinite)
        self.query_one(GraphTree).refresh_labels()
        self._update_spark()
        if self._detail_node is not None and any(self._node_of(r) == self._detail_node for r in results):
            self._show_node(self._detail_node)

    def _node_of(self, r: Any) -> int | None:
        if r is None or not r.slot.node or self.view.index is None:
            return None
        return self.view.index.find(r.slot.node)

    def _op_of_result(self, r: Any) -> str:
        i = self._node_of(r)
        return self.view.index.op_type(i) if i is not None else ""

    def _update_spark(self) -> None:
        """Max |error| per compared tensor in graph order (log scale), bucketed to at most 256 bars."""
        import numpy as np

        table = self.query_one(ErrorTable)
        store = table.store
        order = store.view("graph", False)
        if not len(order):
            return
        errs = np.asarray(store._abs, dtype=np.float64)[order]
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.where(np.isfinite(errs), np.log10(np.maximum(errs, 1e-12)), 12.0)
        logs = np.nan_to_num(logs, nan=12.0) + 12.0
        if len(logs) > 256:
            pad = (-len(logs)) % 256
            logs = np.concatenate([logs, np.full(pad, logs[-1])]).reshape(256, -1).max(axis=1)
        self.query_one(Sparkline).data = logs.tolist()
        self.query_one("#compare-panel").set_class(True, "-results")
        worst_k = int(np.argmax(np.where(np.isnan(errs), np.inf, errs)))
        worst = store.results[int(order[worst_k])]
        label = Text("max|err| by layer, log scale", style="dim")
        label.append(" · worst ", style="dim")
        label.append(worst.slot.name)
        label.append(f" {fmt(worst.stats.max_abs)}", style="bold")
        self.query_one("#spark-label", Static).update(label)

    def _update_progress(self) -> None:
        p = self._progress
        bar = self.query_one("#progress", ProgressBar)
        table = self.query_one(ErrorTable)
        if p is not None:
            bar.update(total=max(p.total, 1), progress=p.done)
        if not self._comparing:
            return
        t = Text()
        if p is None and not len(table.store):
            t.append("preparing: loading models and data…", style="bold")
        else:
            done = p.done if p is not None else len(table.store)
            total = p.total if p is not None else "?"
            t.append(f"comparing {done}/{total} tensors", style="bold")
            if p is not None and p.batches > 1:
                t.append(f" · batch {p.batch + 1}/{p.batches}")
            t.append(f" · {time.perf_counter() - self._compare_started:.1f}s")
            self._append_found(t, table)
        if self._cancel is not None and self._cancel.is_set():
            t.append(" · cancelling…", style="bold yellow")
        t.append("  (ctrl+c cancels)", style="dim")
        self._set_status(t)

    def _append_found(self, t: Text, table: ErrorTable) -> None:
        store = table.store
        t.append(f" · {store.failed} failing", style="bold red" if store.failed else "green")
        if store.nonfinite:
            t.append(f" · {store.nonfinite} with NaN/Inf", style="bold yellow")
        if self._first_failing is not None:
            t.append("\nfirst failing: ", style="dim")
            t.append(self._first_failing.slot.name, style="bold red")
            t.append(f" (#{self._first_failing.slot.topo_index})")
        if self._first_nonfinite is not None:
            t.append("\nfirst NaN/Inf: ", style="dim")
            t.append(self._first_nonfinite.slot.name, style="bold yellow")
            t.append(f" (#{self._first_nonfinite.slot.topo_index})")

    def _set_status(self, text: Text) -> None:
        self.query_one("#compare-status", Static).update(text)

    @on(CompareFinished)
    def _compare_finished(self, msg: CompareFinished) -> None:
        self._flush()
        while not self._queue.empty():  # everything the worker queued before posting this message
            self._flush()
        if self._flush_timer is not None:
            self._flush_timer.stop()
            self._flush_timer = None
        self._comparing = False
        self.query_one("#compare-panel").remove_class("-active")
        table = self.query_one(ErrorTable)
        t = Text()
        if msg.report is None:
            self.compare_error = msg.error
            t.append("comparison failed: ", style="bold red")
            t.append(msg.error or "")
            self.notify(msg.error or "comparison failed", severity="error", timeout=10)
            table.placeholder = "the comparison failed (see above); r to try again"
            table.refresh()
            self._set_status(t)
            return
        report = msg.report
        self.last_report = report
        s = report.summary
        # The engine's summary is authoritative for the first failing / first NaN tensors.
        self._first_failing, self._first_nonfinite = s.first_failing, s.first_nonfinite
        self.view.first_failing = self._node_of(s.first_failing)
        self.view.first_nonfinite = self._node_of(s.first_nonfinite)
        table.add_results([], s.first_failing, s.first_nonfinite)
        if s.cancelled:
            t.append(f"cancelled after {s.compared} comparisons", style="bold yellow")
        elif report.passed:
            t.append(f"PASSED: all {s.compared} comparisons", style="bold green")
        else:
            t.append(f"FAILED: {s.failed}/{s.compared} comparisons", style="bold red")
        t.append(f" · {msg.seconds:.1f}s · {_short(report.reference)} vs {_short(report.subject)}", style="dim")
        self._append_found(t, table)
        if s.first_failing is not None:
            t.append("  (F: go there)", style="dim")
        if report.unmatched:
            t.append(f"\n{len(report.unmatched)} tensor(s) have no counterpart in the subject", style="yellow")
        if not len(table.store):
            table.placeholder = "cancelled before any tensor was compared" if s.cancelled else "nothing was compared"
        self._set_status(t)
        self.query_one(GraphTree).refresh_labels()

    def action_goto_first_failing(self) -> None:
        target = self._first_failing or self._first_nonfinite
        if target is None:
            self.notify("no failing tensor" + ("" if self.last_report else " yet: r runs a comparison"), timeout=3)
            return
        i = self._node_of(target)
        if i is not None:
            self.jump_to(i)
        self.query_one(ErrorTable).move_to(target)

    @on(ErrorTable.Highlighted)
    def _table_highlighted(self, msg: ErrorTable.Highlighted) -> None:
        i = self._node_of(msg.result)
        if i is not None:
            self._detail_node = i
            self._show_node(i)
        else:
            self.query_one(DetailPane).show(_result_only(msg.result))

    @on(ErrorTable.Selected)
    def _table_selected(self, msg: ErrorTable.Selected) -> None:
        i = self._node_of(msg.result)
        if i is None:
            self.notify("this tensor is a graph input: no node to show", timeout=3)
            return
        self.jump_to(i)
        self.query_one(GraphTree).focus()

    # ------------------------------------------------------------------ other screens
    def action_bisect(self) -> None:
        from tui.screens.bisect import BisectScreen

        if self.view.index is None:
            self.notify("the model is still loading", timeout=2)
            return
        if self._comparing:
            self.notify("a comparison is running: ctrl+c cancels it first", severity="warning", timeout=3)
            return
        self.app.push_screen(BisectScreen(self), lambda _: self.query_one(GraphTree).refresh_labels())

    def action_surgeon(self, kind: str) -> None:
        from tui.screens.surgeon import open_surgeon_dialog

        open_surgeon_dialog(self, kind)

    @on(JobFinished)
    def _job_finished(self, msg: JobFinished) -> None:
        if msg.kind == "surgeon":
            from tui.screens.surgeon import show_outcome

            show_outcome(self, msg)


def _short(label: str) -> str:
    """``ort:/long/path/model_fp16.onnx`` → ``ort:model_fp16.onnx``."""
    head, sep, path = label.partition(":")
    return f"{head}{sep}{path.rsplit('/', 1)[-1]}" if sep and "/" in path else label


def _result_only(r: Any) -> Any:
    from rich.console import Group

    return Group(Text(r.slot.name, style="bold"), *result_block(r))
