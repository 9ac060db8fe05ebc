"""The trtdbg Textual app: a thin shell over engine_core.

``TrtdbgApp(model_path)`` opens the main screen (graph tree, detail pane, live compare table). All
model work goes through engine_core in thread workers (see tui.screens.main); this module holds
app-wide bindings (every one with an id, remappable from a keymap file), the help screen, the
command palette entries and ctrl+c = cancel the running job (never quit).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.filter import LineFilter
from textual.notifications import SeverityLevel
from textual.screen import Screen

from engine_core.safetext import printable
from tui.plain import ControlFilter
from tui.screens.common import HelpScreen
from tui.screens.compare_dialog import CompareForm
from tui.screens.main import MainScreen


def default_keymap_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "trtdbg" / "keymap.json"


def load_keymap(path: str | os.PathLike[str] | None) -> tuple[dict[str, str], str | None]:
    """``({binding id: keys}, error)`` from a JSON file; a missing default file is no error."""
    p = Path(path) if path else default_keymap_path()
    if not p.exists():
        return {}, (f"keymap file {p} does not exist" if path else None)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return {}, f"keymap {p} not used: {exc}"
    if not isinstance(doc, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in doc.items()):
        return {}, f'keymap {p} not used: expected a JSON object of binding id -> keys, e.g. {{"mark-toggle": "x"}}'
    return doc, None


class TrtdbgApp(App):
    """Interactive debugger for ONNX / TensorRT numerics."""

    TITLE = "trtdbg"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("question_mark,f1", "help", "Help", id="help"),
        Binding("ctrl+c", "cancel_job", "Cancel job", show=False, priority=True, id="cancel"),
    ]

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        workspace: str | None = None,
        compare: CompareForm | None = None,
        low_bandwidth: bool = False,
        keymap: str | os.PathLike[str] | None = None,
        title: str | None = None,
        engine: str | os.PathLike[str] | None = None,
        external_data_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.model_path = str(model_path)
        self.workspace_arg = workspace
        self.compare_form = compare or CompareForm()
        self.low_bandwidth = low_bandwidth
        self.display_title = title
        self.engine_path = str(engine) if engine else None
        """A TensorRT engine or engine-inspector JSON for the TensorRT view (``t``)."""
        self.external_data_dir = external_data_dir
        """The folder of the first model's external data (``--external-data-dir``)."""
        if low_bandwidth:
            self.animation_level = "none"
        self._keymap, self._keymap_error = load_keymap(keymap)
        self.main_screen: MainScreen | None = None
        self._control_filter = ControlFilter()

    def on_mount(self) -> None:
        # The main screen is pushed over the (empty) default screen so that it can be switched for another model.
        self.main_screen = MainScreen(
            self.model_path,
            self.workspace_arg,
            self.compare_form,
            flush_hz=2.0 if self.low_bandwidth else 4.0,
            title=self.display_title,
            external_data_dir=self.external_data_dir,
            freeze=True,
        )
        self.push_screen(self.main_screen)
        if self._keymap:
            self.set_keymap(self._keymap)
        if self._keymap_error:
            self.notify(self._keymap_error, severity="warning", timeout=8)

    def open_model(self, path: str, form: CompareForm | None = None) -> None:
        """Replace the main screen with one on ``path`` (e.g. a model the surgeon just wrote, its data beside it);
        ``form``: its compare set-up (an extracted piece's saved real inputs as data)."""
        self.model_path = str(path)
        if form is not None:
            self.compare_form = form
        current = self.main_screen
        workspace = (
            str(current.workspace.root) if current is not None and current.workspace is not None else self.workspace_arg
        )
        screen = MainScreen(self.model_path, workspace, self.compare_form, flush_hz=2.0 if self.low_bandwidth else 4.0)
        while len(self.screen_stack) > 2 and self.screen is not self.main_screen:
            self.pop_screen()
        self.main_screen = screen
        self.switch_screen(screen)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notification is plain text (model names hold ``[/]``, ``[@click=…]``), control characters escaped."""
        super().notify(printable(message), title=printable(title), severity=severity, timeout=timeout, markup=False)

    def get_line_filters(self) -> Sequence[LineFilter]:
        """Textual's filters plus :class:`ControlFilter` (no control character reaches the terminal raw)."""
        return [*super().get_line_filters(), self._control_filter]

    # ------------------------------------------------------------------ actions
    async def action_quit(self) -> None:
        """Quit at once, also during a comparison: the job is cancelled and not waited for."""
        cancels = [getattr(s, "cancel_job", None) for s in self.screen_stack]
        if [cancel for cancel in cancels if cancel is not None and cancel()] and not self.is_headless:
            threading.Thread(target=self._exit_when_terminal_restored, daemon=True).start()
        self.exit()

    def _exit_when_terminal_restored(self) -> None:
        """End the process once the terminal is back (a worker thread in ONNX Runtime would hold it for seconds).

        Everything the app writes is written atomically, so nothing is left half-written.
        """
        deadline = time.monotonic() + 3.0
        while (self._running or self._driver_active()) and time.monotonic() < deadline:
            time.sleep(0.02)
        sys.stdout.flush()
        os._exit(self.return_code or 0)

    def _driver_active(self) -> bool:
        writer = getattr(self._driver, "_writer_thread", None)
        return writer is not None and writer.is_alive()

    def action_cancel_job(self) -> None:
        """ctrl+c cancels the running comparison (or bisection); with nothing running it hints at ctrl+q."""
        for screen in reversed(self.screen_stack):
            cancel = getattr(screen, "cancel_job", None)
            if cancel is not None and cancel():
                self.notify("cancelling the running job…", timeout=3)
                return
        self.notify("nothing is running; q or ctrl+q quits", timeout=3)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
            return
        self.push_screen(HelpScreen(self.binding_rows(self.screen)))

    # ------------------------------------------------------------------ bindings registry
    def _binding_sources(self, screen: Screen) -> list[tuple[Any, Binding]]:
        """(namespace, binding) for the screen, its widgets' bindings and the app's, deduplicated by id."""
        seen: set[str] = set()
        out: list[tuple[Any, Binding]] = []
        owners: list[Any] = [screen]
        for cls_name in ("GraphTree", "ErrorTable"):
            try:
                owners.append(screen.query_one(cls_name))
            except Exception:
                pass
        owners.append(self)
        # a key the app binds with priority (ctrl+c: cancel job) never reaches the screen's binding for it
        claimed = {key for key, bs in self._bindings.key_to_bindings.items() if any(b.priority for b in bs)}
        for owner in owners:
            for key, bindings in owner._bindings.key_to_bindings.items():
                if owner is not self and key in claimed:
                    continue
                for b in bindings:
                    bid = b.id or f"{type(owner).__name__}.{b.action}"
                    if bid in seen or not b.description:
                        continue
                    seen.add(bid)
                    out.append((owner, b))
        return out

    def binding_rows(self, screen: Screen) -> list[tuple[str, str, str]]:
        """(keys, description, id) for the help screen."""
        rows: dict[str, tuple[str, str, str]] = {}
        for owner, b in self._binding_sources(screen):
            bid = b.id or ""
            keys = ", ".join(self.get_key_display(x) for x in self._keys_for(owner, b))
            rows[bid or b.action] = (keys, b.description, bid)
        return list(rows.values())

    def _keys_for(self, owner: Any, binding: Binding) -> list[Binding]:
        return [
            b
            for key, bs in owner._bindings.key_to_bindings.items()
            for b in bs
            if b.action == binding.action and (b.id == binding.id)
        ]

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        target = screen
        if not isinstance(screen, MainScreen) and self.main_screen is not None and screen is not self.main_screen:
            target = screen
        for owner, b in self._binding_sources(target):
            keys = self.get_key_display(b)
            yield SystemCommand(
                b.description, f"{keys} · {b.id or b.action}", partial(self.run_action, b.action, owner)
            )
