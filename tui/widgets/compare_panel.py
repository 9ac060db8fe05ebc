"""The live compare panel: status lines, progress bar, error table and the error-by-layer sparkline.

The panel owns one comparison at a time: it runs engine_core ``execute`` in a thread worker that never
touches widgets (results go to a queue), drains the queue on a 4 Hz timer (2 Hz with
``--low-bandwidth``) inside ``app.batch_update()``, and keeps the per-node verdicts in the shared
:class:`~tui.widgets.graph_tree.GraphView`. It tells its screen what changed with messages
(:class:`ComparePanel.ResultsAdded`, :class:`ComparePanel.Finished`); the screen repaints the tree
and the detail pane.
"""

from __future__ import annotations

import queue
import re
import time
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import ProgressBar, Static

from engine_core.jobs import CancelToken
from engine_core.safetext import printable
from tui.messages import CompareFinished
from tui.plain import safe
from tui.widgets.error_plot import ErrorPlot
from tui.widgets.error_table import ErrorTable
from tui.widgets.graph_tree import GraphView

MAX_FLUSH = 20_000
"""Most results moved into the table per flush (keeps one frame short even when 100k arrive at once)."""

_RANK = {"pass": 0, "fail": 1, "nonfinite": 2}


class ComparePanel(Vertical):
    """One comparison: request → worker → queue → timed flush → table, sparkline and view state."""

    DEFAULT_CSS = """
    ComparePanel { height: 1fr; min-height: 10; }
    ComparePanel.-empty { height: 5; min-height: 5; }
    ComparePanel.-results { height: 2fr; }
    ComparePanel #compare-status { height: auto; max-height: 6; padding: 0 1; }
    ComparePanel #progress { height: 1; padding: 0 1; }
    ComparePanel #progress Bar { width: 1fr; }
    ComparePanel #cursor-name { height: auto; max-height: 2; padding: 0 1; background: $panel; }
    ComparePanel #progress, ComparePanel ErrorPlot, ComparePanel #cursor-name { display: none; }
    ComparePanel.-active #progress, ComparePanel.-results ErrorPlot, ComparePanel.-results #cursor-name {
        display: block;
    }
    """

    class ResultsAdded(Message):
        """A flush moved ``results`` into the table (the tree labels and the detail pane may be stale)."""

        def __init__(self, results: list[Any]) -> None:
            super().__init__()
            self.results = results

    class DetailReady(Message):
        """A tensor's detail (order statistics, histograms) arrived or failed; the detail pane may show it."""

    class Finished(Message):
        """The comparison ended (``report`` is None when it failed)."""

        def __init__(self, report: Any | None) -> None:
            super().__init__()
            self.report = report

    def __init__(self, view: GraphView, flush_interval: float = 0.25, **kwargs: Any) -> None:
        super().__init__(classes="-empty", **kwargs)
        self.view = view
        self.flush_interval = flush_interval
        self.results_by_tensor: dict[str, Any] = {}
        """Worst result per tensor name (over iterations), for the detail pane."""
        self.last_report: Any = None
        self.compare_error: str | None = None
        self.first_failing: Any = None
        self.first_nonfinite: Any = None
        self.warnings: list[str] = []
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._progress: Any = None
        self._stage: Any = None
        """The job's latest preparation step (engine_core.jobs.Stage) since its last progress event."""
        self._cancel: CancelToken | None = None
        self._comparing = False
        self._started = 0.0
        self._flush_timer: Any = None
        self.request: Any = None
        """The request of the comparison shown (None for results restored from the workspace)."""
        self.details: dict[tuple[str, int], Any] = {}
        """Fetched tensor details (engine_core ``TensorDetail``, or the one-line error) by (tensor, iteration)."""
        self._detail_timer: Any = None
        self._fetching: tuple[str, int] | None = None
        self._dropped: set[tuple[str, int]] = set()
        """Fetches cancelled with ctrl+c (their results are ignored)."""
        self._fetcher: Any = None
        """The engine_core ``DetailFetcher`` of :attr:`request` (its sides prepared once for every tensor)."""

    def compose(self) -> ComposeResult:
        yield Static(
            Text("No comparison yet: r sets one up (reference, subject, tolerances, data).", style="dim"),
            id="compare-status",
        )
        yield ProgressBar(total=1, show_eta=False, id="progress")
        yield ErrorTable(id="errors")
        yield Static("", id="cursor-name")
        yield ErrorPlot(id="plot")

    def on_mount(self) -> None:
        self.query_one(ErrorTable).op_of = self._op_of_result

    def on_unmount(self) -> None:
        self._release_fetcher()

    @property
    def table(self) -> ErrorTable:
        return self.query_one(ErrorTable)

    @property
    def comparing(self) -> bool:
        return self._comparing

    # ------------------------------------------------------------------ run
    def start(self, request: Any) -> None:
        """Run ``request`` (an engine_core compare request) in a worker; results stream into the table."""
        self._reset_results()
        self.request = request
        self._cancel = CancelToken()
        self._queue = queue.SimpleQueue()
        self._progress = None
        self._stage = None
        self.warnings = []
        self._comparing = True
        self._started = time.perf_counter()
        self.set_status(Text("preparing: loading models and data…", style="bold"))
        self.query_one("#progress", ProgressBar).update(total=1, progress=0)
        self.add_class("-active").remove_class("-empty")
        self._flush_timer = self.set_interval(self.flush_interval, self._flush)
        self.run_compare(request, self._cancel, self._queue)

    def cancel(self) -> bool:
        """Ask the running comparison to stop; False when nothing runs."""
        if self._comparing and self._cancel is not None:
            if not self._cancel.is_set():
                self._cancel.set()
                self.set_status(Text("cancelling… (stops after the current chunk)", style="bold yellow"))
            return True
        return False

    def set_status(self, text: Text) -> None:
        self.query_one("#compare-status", Static).update(safe(text))

    def _reset_results(self) -> None:
        self._release_fetcher()
        self.results_by_tensor.clear()
        self.details.clear()
        self._dropped.clear()
        view = self.view
        view.node_status.clear()
        view.scope_fails.clear()
        view.real_shapes.clear()
        view.first_failing = view.first_nonfinite = None
        self.first_failing = self.first_nonfinite = None
        self.last_report = None
        self.compare_error = None
        self.table.reset("waiting for the first results…")
        self.query_one(ErrorPlot).set_results([])
        self.remove_class("-results")

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare")
    def run_compare(self, request: Any, cancel: CancelToken, results: queue.SimpleQueue) -> None:
        """engine_core ``execute`` in this thread; results go to the queue, never to widgets."""
        from engine_core.comparator.request import execute
        from engine_core.errors import TrtdbgError
        from engine_core.jobs import JobEvents

        start = time.perf_counter()

        def progress(p: Any) -> None:
            self._progress, self._stage = p, None

        def stage(s: Any) -> None:
            self._stage = s

        def warn(msg: str) -> None:
            results.put(("warning", msg))

        events = JobEvents(on_progress=progress, on_warning=warn, on_item=results.put, on_stage=stage, cancel=cancel)
        try:
            report = execute(request, events)
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

    # ------------------------------------------------------------------ one tensor's detail
    def detail_of(self, r: Any) -> tuple[Any, str]:
        """Result ``r``'s fetched detail, else None and a note saying when or why not."""
        got = self.details.get((r.slot.name, r.iteration))
        if got is not None and not isinstance(got, str):
            return got, ""
        if isinstance(got, str):
            return None, f"error histogram unavailable: {got}"
        if (r.slot.name, r.iteration) in self._dropped:
            return None, "error histogram: fetch cancelled (ctrl+c); shown again, the tensor is fetched again"
        if self.request is None:
            return None, "error histogram: r runs the comparison again to fetch the tensors"
        if self._comparing:
            return None, "error histogram: once the comparison has finished"
        return None, "error histogram: fetching the tensors…"

    def want_detail(self, results: list[Any]) -> None:
        """Fetch the first of ``results`` without detail, after a short pause (the cursor may move on)."""
        if self._comparing or self.request is None:
            return
        keys = [(r.slot.name, r.iteration) for r in results]
        if not self._dropped.intersection(keys):
            self._dropped.clear()  # the cursor moved on: a cancelled tensor is fetched again when shown again
        todo = next((r for r, k in zip(results, keys) if k not in self.details and k not in self._dropped), None)
        if self._detail_timer is not None:
            self._detail_timer.stop()
            self._detail_timer = None
        if todo is not None:
            self._detail_timer = self.set_timer(0.2, lambda: self._start_fetch(todo))

    def _start_fetch(self, r: Any) -> None:
        from engine_core.comparator.detail import DetailFetcher

        if self._fetcher is None:
            self._fetcher = DetailFetcher(self.request)
        self._fetching = (r.slot.name, r.iteration)
        self.fetch_detail(self._fetcher, r)

    def _release_fetcher(self) -> None:
        """Close the detail fetcher's sessions (now, or when its fetch in flight ends)."""
        if self._fetcher is not None:
            self._fetcher.close()
            self._fetcher = None

    def cancel_detail(self) -> bool:
        """Drop the tensor fetch in flight (its result is ignored; quitting need not wait); False when none runs."""
        if self._fetching is None:
            return False
        self._dropped.add(self._fetching)
        self._fetching = None
        self.post_message(self.DetailReady())
        return True

    @work(thread=True, exclusive=True, exit_on_error=False, group="detail")
    def fetch_detail(self, fetcher: Any, r: Any) -> None:
        """``fetcher.detail(r)`` in this thread (the model runs again for this one tensor; the first fetch of a
        compare prepares its sides, kept for the next ones)."""
        from engine_core.errors import TrtdbgError

        request = fetcher.request
        try:
            got: Any = fetcher.detail(r)
        except TrtdbgError as exc:
            got = str(exc)
        except Exception as exc:
            got = f"{type(exc).__name__}: {exc}"
        self.app.call_from_thread(self._detail_arrived, request, (r.slot.name, r.iteration), got)

    def _detail_arrived(self, request: Any, key: tuple[str, int], got: Any) -> None:
        if key == self._fetching:
            self._fetching = None
        if request is self.request and key not in self._dropped:
            self.details[key] = got
            self.post_message(self.DetailReady())

    # ------------------------------------------------------------------ flush
    def _flush(self) -> None:
        """Move queued results into the table and the view (one repaint for everything that arrived)."""
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
                self.warnings.append(it[1])
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
            if r.stats.shape is not None:
                view.real_shapes[r.slot.name] = tuple(r.stats.shape)
            i = index.find(r.slot.node) if r.slot.node else None
            if i is not None:
                old = view.node_status.get(i)
                new = "nonfinite" if r.stats.nonfinite else ("fail" if not r.stats.passed else "pass")
                if old is None or _RANK[new] > _RANK[old]:
                    view.node_status[i] = new
                    if new != "pass" and old in (None, "pass"):
                        newly_failing.append(i)
            key = (r.slot.topo_index, r.iteration)
            if not r.stats.passed:
                ff = self.first_failing
                if ff is None or key < (ff.slot.topo_index, ff.iteration):
                    self.first_failing = r
            if r.stats.nonfinite:
                fn = self.first_nonfinite
                if fn is None or key < (fn.slot.topo_index, fn.iteration):
                    self.first_nonfinite = r
        for i in newly_failing:
            path = scopes.locate(i) + (i,)
            for k in range(1, len(path)):
                view.scope_fails[path[:k]] = view.scope_fails.get(path[:k], 0) + 1
        view.first_failing = self.node_of(self.first_failing)
        view.first_nonfinite = self.node_of(self.first_nonfinite)
        self.table.add_results(results, self.first_failing, self.first_nonfinite)
        self._show_cursor_name()
        self._update_plot()
        self.post_message(self.ResultsAdded(results))

    @on(ErrorTable.Highlighted)
    def _show_cursor_name(self, msg: ErrorTable.Highlighted | None = None) -> None:
        """The full name of the table's cursor row (the table itself elides long names)."""
        r = msg.result if msg is not None else self.table.current
        if r is not None:
            self.query_one(ErrorPlot).show_result(r)
        line = Text()
        if r is not None:
            line.append("▶ ", style="bold")
            line.append(printable(r.slot.name), style="bold")
            if r.slot.subject_name != r.slot.name:
                line.append(" ↔ ", style="dim")
                line.append(printable(r.slot.subject_name))
            if r.slot.node and r.slot.node != r.slot.name:
                line.append("  node ", style="dim")
                line.append(printable(r.slot.node))
            line.append(f"  {r.stats.dtype}", style="dim")
        self.query_one("#cursor-name", Static).update(line)

    def first_failing_float(self) -> Any:
        """The topologically first failing result among floating-point tensors (None when there is none)."""
        best = None
        for r in self.table.store.results:
            if r.stats.passed or not _is_float(r.stats.dtype):
                continue
            if best is None or (r.slot.topo_index, r.iteration) < (best.slot.topo_index, best.iteration):
                best = r
        return best

    def node_of(self, r: Any) -> int | None:
        """The graph node that produced result ``r`` (None for graph inputs)."""
        if r is None or not r.slot.node or self.view.index is None:
            return None
        return self.view.index.find(r.slot.node)

    def _op_of_result(self, r: Any) -> str:
        i = self.node_of(r)
        return self.view.index.op_type(i) if i is not None else ""

    def _update_plot(self) -> None:
        """The error-along-the-graph plot over every result so far, in graph order."""
        store = self.table.store
        self.query_one(ErrorPlot).set_results([store.results[int(i)] for i in store.view("graph", False)])
        self.set_class(bool(len(store)), "-results")

    @on(ErrorPlot.Moved)
    def _plot_moved(self, msg: ErrorPlot.Moved) -> None:
        if msg.result is not None:
            self.table.move_to(msg.result)

    def _update_progress(self) -> None:
        p = self._progress
        bar = self.query_one("#progress", ProgressBar)
        table = self.table
        if p is not None:
            bar.update(total=max(p.total, 1), progress=p.done)
        if not self._comparing:
            return
        t = Text()
        stage = self._stage
        if p is None and not len(table.store):
            t.append(f"preparing: {printable(str(stage or 'loading models and data'))}…", style="bold")
            t.append(f" · {time.perf_counter() - self._started:.1f}s")
        else:
            done = p.done if p is not None else len(table.store)
            total = p.total if p is not None else "?"
            t.append(f"comparing {done}/{total} tensors", style="bold")
            if p is not None and p.batches > 1:
                t.append(f" · batch {p.batch + 1}/{p.batches}")
            t.append(f" · {time.perf_counter() - self._started:.1f}s")
            if stage is not None:
                t.append(f" · {printable(str(stage))}…")
            self._append_found(t)
        if self._cancel is not None and self._cancel.is_set():
            t.append(" · cancelling…", style="bold yellow")
        t.append("  (ctrl+c cancels)", style="dim")
        self.set_status(t)

    def _append_found(self, t: Text) -> None:
        store = self.table.store
        t.append(f" · {store.failed} failing", style="bold red" if store.failed else "green")
        if store.nonfinite:
            t.append(f" · {store.nonfinite} with NaN/Inf", style="bold yellow")
        if self.first_failing is not None:
            t.append("\nfirst failing: ", style="dim")
            t.append(printable(self.first_failing.slot.name), style="bold red")
            t.append(f" (#{self.first_failing.slot.topo_index})")
        if self.first_nonfinite is not None:
            t.append("\nfirst NaN/Inf: ", style="dim")
            t.append(printable(self.first_nonfinite.slot.name), style="bold yellow")
            t.append(f" (#{self.first_nonfinite.slot.topo_index})")

    # ------------------------------------------------------------------ end
    @on(CompareFinished)
    def _compare_finished(self, msg: CompareFinished) -> None:
        self._flush()
        while not self._queue.empty():  # everything the worker queued before posting this message
            self._flush()
        if self._flush_timer is not None:
            self._flush_timer.stop()
            self._flush_timer = None
        self._comparing = False
        self.remove_class("-active")
        table = self.table
        t = Text()
        if msg.report is None:
            self.compare_error = msg.error
            t.append("comparison failed: ", style="bold red")
            t.append(printable(msg.error or ""))
            self.notify(msg.error or "comparison failed", severity="error", timeout=10)
            table.placeholder = "the comparison failed (see above); r to try again"
            table.refresh()
            self.set_status(t)
            self.post_message(self.Finished(None))
            return
        self._show_report(msg.report, msg.seconds)

    def restore(self, last: Any) -> None:
        """Show a compare kept in the workspace (engine_core ``LastCompare``), stated as restored."""
        self._reset_results()
        self.request = None
        if last.report.results:
            self._absorb(last.report.results)
        self._show_report(last.report, last.report.summary.elapsed_s, last)

    def _show_report(self, report: Any, seconds: float, restored: Any = None) -> None:
        """The finished comparison's status lines (``restored``: a ``LastCompare`` read back from the workspace)."""
        table = self.table
        t = Text()
        if restored is not None:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(restored.saved_at))
            t.append(f"restored, last compare of {when}: ", style="bold cyan")
        self.last_report = report
        s = report.summary
        # The engine's summary is authoritative for the first failing / first NaN tensors.
        self.first_failing, self.first_nonfinite = s.first_failing, s.first_nonfinite
        self.view.first_failing = self.node_of(s.first_failing)
        self.view.first_nonfinite = self.node_of(s.first_nonfinite)
        table.add_results([], s.first_failing, s.first_nonfinite)
        if s.cancelled:
            t.append(f"cancelled after {s.compared} comparisons", style="bold yellow")
        elif report.passed:
            t.append(f"PASSED: all {s.compared} comparisons", style="bold green")
        else:
            t.append(f"FAILED: {s.failed}/{s.compared} comparisons", style="bold red")
        t.append(f" · {seconds:.1f}s · {short_label(report.reference)} vs {short_label(report.subject)}", style="dim")
        self._append_found(t)
        if s.first_failing is not None:
            t.append("  (F: go there)", style="dim")
        if restored is not None:
            t.append("\nrestored from the workspace: failing tensors only; r runs the comparison again", style="dim")
        if report.coverage_text:
            t.append("\n" + printable(report.coverage_text), style="cyan")
        if report.unmatched:
            names = [f"{printable(u.name)} ({printable(u.reason)})" for u in report.unmatched[:3]]
            more = f"; … {len(report.unmatched) - 3} more" if len(report.unmatched) > 3 else ""
            t.append(f"\n{len(report.unmatched)} tensor(s) not compared, no counterpart: ", style="yellow")
            t.append("; ".join(names) + more)
        if not len(table.store):
            table.placeholder = (
                "restored: no failing tensor was kept (passing ones are not); r runs the comparison again"
                if restored is not None
                else "cancelled before any tensor was compared"
                if s.cancelled
                else "nothing was compared"
            )
            table.refresh()
        self.set_status(t)
        self.post_message(self.Finished(report))


def short_label(label: str) -> str:
    """A runner label with directories dropped from its file paths (``ort:/a/b/m_fp16.onnx`` → ``ort:m_fp16.onnx``).

    Only tokens that end in a model or data file name are shortened, so ``(FP16/BF16 storage rounding)`` stays.
    """
    return _PATH_RE.sub(r"\1", label)


_PATH_RE = re.compile(r"(?:[^\s:()/]*/)+([^\s/()]+\.(?:onnx|plan|engine|trt|json|npz))")


def _is_float(dtype: str) -> bool:
    return str(dtype).startswith(("float", "bfloat"))
