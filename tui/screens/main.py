"""Main screen: graph tree (left), detail pane and the compare panel (right).

All model work runs in thread workers that never touch widgets: they post messages (tui.messages).
The comparison itself (worker, result queue, timed flush, error table) lives in
:class:`~tui.widgets.compare_panel.ComparePanel`; this screen owns navigation, search and marks."""

from __future__ import annotations

import gc
import time
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Static, Tree
from textual.worker import get_current_worker

from engine_core.jobs import CancelToken
from engine_core.safetext import printable
from tui.messages import (
    InitializerStatsReady,
    JobFinished,
    MarksSaved,
    ModelLoaded,
    ModelLoadFailed,
    PreviousSession,
    SearchDone,
    ShapesReady,
)
from tui.plain import safe
from tui.screens.common import PickScreen
from tui.screens.compare_dialog import CompareDialog, CompareForm
from tui.widgets.compare_panel import ComparePanel
from tui.widgets.detail import DetailPane, node_detail, result_block, scope_detail
from tui.widgets.error_plot import ErrorPlot
from tui.widgets.error_table import ErrorTable
from tui.widgets.graph_tree import GraphTree, GraphView, Row


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
        Binding("p", "goto_producer", "Producer", show=False, id="goto-producer"),
        Binding("c", "goto_consumer", "Consumers", show=False, id="goto-consumers"),
        Binding("backspace", "go_back", "Back", show=False, id="go-back"),
        Binding("m", "mark_scope", "Mark scope", show=False, id="mark-scope"),
        Binding("M", "mark_all", "Mark all", show=False, id="mark-all"),
        Binding("C", "clear_marks", "Clear marks", show=False, id="mark-clear"),
        Binding("O", "toggle_constants", "Show/hide Constants", show=False, id="toggle-constants"),
        Binding("u", "undo_marks", "Undo marks change", show=False, id="mark-undo"),
        Binding("r", "compare", "Compare", id="compare"),
        Binding("F", "goto_first_failing", "First failing", show=False, id="first-failing"),
        Binding(
            "ctrl+f", "goto_first_failing('float')", "First failing float tensor", show=False, id="first-failing-float"
        ),
        Binding("I", "goto_first_nonfinite", "First NaN/Inf", show=False, id="first-nonfinite"),
        Binding("right_square_bracket", "next_failing(1)", "Next failing", show=False, id="next-failing"),
        Binding("left_square_bracket", "next_failing(-1)", "Previous failing", show=False, id="prev-failing"),
        Binding("e", "toggle_focus", "Tree/table/plot", show=False, id="focus-toggle"),
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
    MainScreen.-narrow GraphTree { width: 36%; }
    MainScreen.-short DetailPane { height: 9; min-height: 5; }
    MainScreen.-short ErrorPlot { height: 4; }
    MainScreen.-short #compare-status { max-height: 2; }
    MainScreen.-short #cursor-name { max-height: 1; }
    MainScreen #search { dock: bottom; display: none; }
    MainScreen #search.-visible { display: block; }
    """

    def __init__(
        self,
        model_path: str,
        workspace: str | None,
        form: CompareForm,
        flush_hz: float = 4.0,
        title: str | None = None,
        external_data_dir: str | None = None,
        freeze: bool = False,
    ) -> None:
        """``freeze``: keep the loaded model out of the cyclic collector's scans until the screen goes (see
        :meth:`load_model`); only for the app's first screen: a later one loads while the screen it replaces is still
        referenced, and freezing then would keep that screen and its model for good."""
        super().__init__()
        self.freeze = freeze
        self.model_path = model_path
        self.external_data_dir = external_data_dir
        """The folder of the model's external data (default: beside it), for every engine call on the model."""
        self.workspace_arg = workspace
        self.form = form
        self.flush_interval = 1.0 / flush_hz
        self.display_name = model_path.rsplit("/", 1)[-1]
        self.title_text = title or self.display_name
        self.view = GraphView()
        self.workspace: Any = None
        self.load_seconds: float | None = None
        self.init_stats: dict[str, Any] = {}
        self.hits: list[int] = []
        self.hit_pos = -1
        self.history: list[int] = []
        self._detail_node: int | None = None
        self._marks_before: list[str] | None = None
        self._marks_undo: list[str] | None = None
        """The marks before the last change (``u`` restores them)."""
        self.last_surgery: Any = None
        self.last_surgery_error: str | None = None
        self._stop_shapes = CancelToken()
        """Set when the screen goes away: stops the shape-inference child."""

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Static(safe(f"trtdbg · loading {self.display_name} …"), id="topbar")
        with Horizontal(id="body"):
            yield GraphTree(self.view, id="tree")
            with Vertical(id="right"):
                yield DetailPane(id="detail")
                yield ComparePanel(self.view, self.flush_interval, id="compare-panel")
        yield Input(placeholder="search: node name, tensor name or op type (enter: search, esc: close)", id="search")
        yield Footer()

    def on_resize(self) -> None:
        """Small terminals (100×30): a shorter detail pane and plot, a compact footer that keeps Quit/Help."""
        short, narrow = self.size.height < 36, self.size.width < 110
        self.set_class(short, "-short")
        self.set_class(narrow, "-narrow")
        footer = self.query_one(Footer)
        footer.compact = narrow
        footer.show_command_palette = not narrow

    def on_unmount(self) -> None:
        self._stop_shapes.set()
        if self.freeze:
            gc.unfreeze()  # this model's structures (see load_model) go back to the collector with the screen

    def on_mount(self) -> None:
        self.query_one(GraphTree).focus()
        self.call_after_refresh(self.load_model)  # first paint before the model work starts

    # ------------------------------------------------------------------ loading
    @work(thread=True, exclusive=True, exit_on_error=False, group="load")
    def load_model(self) -> None:
        """Index the model, its first scope level and its saved marks (off the UI thread)."""
        start = time.perf_counter()
        try:
            from engine_core.comparator.marks import MarkSet
            from engine_core.errors import TrtdbgError
            from engine_core.gcpause import gc_paused
            from engine_core.model.index import ModelIndex
            from engine_core.model.scopes import ScopeTree
            from engine_core.workspace import Workspace
        except Exception as exc:
            self.post_message(ModelLoadFailed(f"{type(exc).__name__}: {exc}"))
            return
        with gc_paused():  # about a million acyclic objects: collections would cost as much as the indexing
            try:
                index = ModelIndex.load(
                    self.model_path, load_external_data=False, external_data_dir=self.external_data_dir
                )
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
                # The lookup tables (consumers, markable tensors, names) are built on first use (~0.1 s at 100k
                # nodes): built here they would delay the tree, built after it in this thread they would hold the
                # GIL while the UI answers its first keys.
                if self.freeze:
                    # ~400k tuples and protobuf objects out of the collector's scans while the model is open: the
                    # next collections would scan them (0.1-0.3 s each, on whichever thread allocates: the UI's).
                    gc.freeze()
                self.post_message(ModelLoaded(index, scopes, root, marks, ws, time.perf_counter() - start, notes))
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
        self.call_after_refresh(self.restore_previous)

    @on(ModelLoadFailed)
    def _model_failed(self, msg: ModelLoadFailed) -> None:
        self.query_one("#topbar", Static).update(safe(f"trtdbg · cannot open {self.display_name}", style="bold red"))
        self.query_one(DetailPane).show(Text(msg.error, style="red"))
        self.query_one(GraphTree).root.set_label(Text("(model not loaded)"))
        self.notify(msg.error, severity="error", timeout=15)

    @work(thread=True, exclusive=True, exit_on_error=False, group="restore")
    def restore_previous(self) -> None:
        """Read the workspace's last compare and saved bisection of this model (off the UI thread)."""
        from engine_core.comparator.restore import load_last_compare
        from engine_core.errors import TrtdbgError

        notes: list[str] = []
        last = bisection = None
        try:
            last = load_last_compare(self.workspace, self.model_path)
        except TrtdbgError as exc:
            notes.append(str(exc))
        try:
            from engine_core.precision.state import saved_bisection

            bisection = saved_bisection(self.workspace, self.model_path)
        except ImportError:  # a build without the precision engine
            pass
        except TrtdbgError as exc:
            notes.append(str(exc))
        self.post_message(PreviousSession(last, bisection, notes))

    @on(PreviousSession)
    def _previous_session(self, msg: PreviousSession) -> None:
        for note in msg.notes:
            self.notify(note, severity="warning", timeout=8, markup=False)
        if msg.last_compare is not None and not self.comparing and self.panel.last_report is None:
            self.panel.restore(msg.last_compare)
        b = msg.bisection
        if b is not None and b["same_model"]:
            state = "a finished" if b["finished"] else "an unfinished"
            self.notify(
                f"{state} {b['precision']} → {b['fallback']} bisection of this model ({b['steps']} step(s)) is "
                "saved in the workspace: b, then c resumes it",
                timeout=10,
                markup=False,
            )

    @work(thread=True, exclusive=True, exit_on_error=False, group="shapes")
    def infer_shapes(self) -> None:
        """Shape inference in a child process (in a thread it would hold the GIL, freezing the UI, for seconds)."""
        start = time.perf_counter()
        index = self.view.index
        try:
            index.infer_shapes(separate_process=True, cancel=self._stop_shapes)
            if self._stop_shapes.is_set():
                return
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
        t.append(printable(self.title_text), style="bold")
        t.append(f" · {len(v.index)} nodes · ")
        t.append(f"{len(v.marks)} marked", style="green" if len(v.marks) else "")
        unobs = len(v.marks.unobservable())
        if unobs:
            t.append(f" · {unobs} unobservable")
        t.append(" · shapes " + ("ready" if v.shapes_ready else "inferring…"), style="dim")
        if self.workspace is not None:
            t.append(" · workspace ", style="dim")
            t.append(printable(str(self.workspace.root)), style="dim")
        self.query_one("#topbar", Static).update(safe(t))

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
        results = self.results_by_tensor
        self.query_one(DetailPane).show(node_detail(self.view, i, results, stats, self.panel.detail_of))
        self.panel.want_detail([results[n] for n in index.node_outputs(i) if n in results])

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
            label.append(printable(tensor))
            label.append(f" {arrow} ", style="dim")
            label.append(printable(index.name(node)), style="bold")
            label.append(f" ({printable(index.op_type(node))})", style="dim")
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
        """Tree → error table → error plot (when shown) → tree."""
        tree, table, plot = self.query_one(GraphTree), self.query_one(ErrorTable), self.query_one(ErrorPlot)
        if tree.has_focus:
            table.focus()
        elif table.has_focus and plot.display and self.panel.has_class("-results"):
            plot.focus()
        else:
            tree.focus()

    @on(ErrorPlot.Moved)
    def _plot_moved(self, msg: ErrorPlot.Moved) -> None:
        i = self.panel.node_of(msg.result)
        if i is not None:
            self.query_one(GraphTree).reveal(i)

    def action_toggle_constants(self) -> None:
        """Constant nodes in the tree or not (hidden by default); the cursor stays on its node."""
        v = self.view
        if v.index is None:
            return
        v.show_constants = not v.show_constants
        current = self.current_node()
        self.query_one(GraphTree).populate(self.display_name, v.scopes.children(()))
        if current is not None:
            self.jump_to(current, remember=False)
        self.notify("Constant nodes shown" if v.show_constants else "Constant nodes hidden (O shows them)", timeout=2)

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
            self.notify(f"no node matches '{msg.query}'", timeout=3)
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
        self._marks_before = self.view.marks.ordered() if self.view.marks is not None else None
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
        self._marks_before = self.view.marks.ordered() if self.view.marks is not None else None
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
        self._marks_before = self.view.marks.ordered() if self.view.marks is not None else None
        if self.view.marks is not None:
            self._after_marks(self.view.marks.mark_all())

    def action_clear_marks(self) -> None:
        self._marks_before = self.view.marks.ordered() if self.view.marks is not None else None
        if self.view.marks is not None:
            self._after_marks(self.view.marks.clear())

    def _after_marks(self, change: Any) -> None:
        text = change.describe()
        if change.changed:
            self._marks_undo = self._marks_before
            text += " · u undoes"
        self.notify(text, timeout=3, severity="information" if change.changed else "warning", markup=False)
        if change.changed:
            self.query_one(GraphTree).refresh_labels()
            self._update_topbar()
            self._refresh_detail()
            self.save_marks()

    def action_undo_marks(self) -> None:
        """Put the marks back as they were before the last change (u again redoes it)."""
        from engine_core.comparator.marks import MarkChange

        marks = self.view.marks
        if marks is None or self._marks_undo is None:
            self.notify("no mark change to undo", timeout=2, markup=False)
            return
        self._marks_before = marks.ordered()
        marks.clear()
        marks.mark_tensors(self._marks_undo)
        self._after_marks(MarkChange(len(marks), len(self._marks_before)))

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
    def panel(self) -> ComparePanel:
        return self.query_one(ComparePanel)

    @property
    def comparing(self) -> bool:
        return self.panel.comparing

    @property
    def results_by_tensor(self) -> dict[str, Any]:
        return self.panel.results_by_tensor

    def action_compare(self) -> None:
        if self.view.index is None:
            self.notify("the model is still loading", timeout=2)
            return
        if self.comparing:
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
        """Build the engine_core request and hand it to the compare panel."""
        from engine_core.errors import TrtdbgError

        try:
            request = form.to_request(
                self.model_path,
                self.view.marks.request_marks(),
                str(self.workspace.root) if self.workspace is not None else self.workspace_arg,
                self.external_data_dir,
            )
        except TrtdbgError as exc:
            self.panel.set_status(Text(str(exc), style="bold red"))
            self.notify(str(exc), severity="error", timeout=8)
            return
        self.panel.start(request)
        self.query_one(GraphTree).refresh_labels()

    def cancel_job(self) -> bool:
        """ctrl+c: cancel the running comparison (or drop a tensor fetch for the detail pane); False when nothing runs."""
        return self.panel.cancel() or self.panel.cancel_detail()

    @on(ComparePanel.ResultsAdded)
    def _results_added(self, msg: ComparePanel.ResultsAdded) -> None:
        self.query_one(GraphTree).refresh_labels()
        node_of = self.panel.node_of
        if self._detail_node is not None and any(node_of(r) == self._detail_node for r in msg.results):
            self._show_node(self._detail_node)

    @on(ComparePanel.Finished)
    def _compare_finished(self, msg: ComparePanel.Finished) -> None:
        self.query_one(GraphTree).refresh_labels()
        self._refresh_detail()

    @on(ComparePanel.DetailReady)
    def _detail_ready(self, msg: ComparePanel.DetailReady) -> None:
        table = self.panel.table
        if table.has_focus and table.current is not None and self.panel.node_of(table.current) is None:
            self.query_one(DetailPane).show(_result_only(table.current, self.panel.detail_of(table.current)))
        else:
            self._refresh_detail()

    def action_goto_first_failing(self, kind: str = "any") -> None:
        """The topologically first failing tensor (``float``: among floating-point tensors only)."""
        panel = self.panel
        target = panel.first_failing_float() if kind == "float" else panel.first_failing
        if target is None and kind != "float":
            target = panel.first_nonfinite
        if target is None:
            what = "no failing floating-point tensor" if kind == "float" else "no failing tensor"
            self.notify(what + ("" if panel.last_report else " yet: r runs a comparison"), timeout=3, markup=False)
            return
        self._goto_result(target)

    def action_goto_first_nonfinite(self) -> None:
        target = self.panel.first_nonfinite
        if target is None:
            self.notify("no tensor with NaN/Inf in the subject", timeout=3, markup=False)
            return
        self._goto_result(target)

    def action_next_failing(self, step: int) -> None:
        """The next / previous failing row of the table (in its current order), and its node in the tree."""
        r = self.panel.table.next_failing(step)
        if r is None:
            where = "after" if step > 0 else "before"
            self.notify(f"no failing tensor {where} the table's cursor", timeout=2, markup=False)
            return
        i = self.panel.node_of(r)
        if i is not None:
            self.jump_to(i)

    def _goto_result(self, r: Any) -> None:
        """Put the table's and the tree's cursors on result ``r``."""
        i = self.panel.node_of(r)
        if i is not None:
            self.jump_to(i)
        self.panel.table.move_to(r)

    @on(ErrorTable.Highlighted)
    def _table_highlighted(self, msg: ErrorTable.Highlighted) -> None:
        i = self.panel.node_of(msg.result)
        if i is not None:
            self._detail_node = i
            self._show_node(i)
        else:
            self.query_one(DetailPane).show(_result_only(msg.result, self.panel.detail_of(msg.result)))
            self.panel.want_detail([msg.result])

    @on(ErrorTable.Selected)
    def _table_selected(self, msg: ErrorTable.Selected) -> None:
        i = self.panel.node_of(msg.result)
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
        if self.comparing:
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


def _result_only(r: Any, detail: tuple[Any, str]) -> Any:
    from rich.console import Group

    return Group(Text(printable(r.slot.name), style="bold"), *result_block(r, *detail))
