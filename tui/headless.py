"""Driving the app headless (``App.run_test``), as the screenshot script and the tests do."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.worker import WorkerCancelled

if TYPE_CHECKING:
    from tui.app import TrtdbgApp


async def settle(app: App[Any], pilot: Any, rounds: int = 2) -> None:
    """Wait ``rounds`` times for all workers (a superseded exclusive worker counts as done) and the messages they
    posted (work a round starts goes on in the next)."""
    for _ in range(rounds):
        try:
            await app.workers.wait_for_complete()
        except WorkerCancelled:
            pass
        await pilot.pause()


async def jump(app: TrtdbgApp, pilot: Any, node: int | str) -> None:
    """Move the main screen's tree cursor to ``node`` (its index, or its name) and let the screen catch up."""
    scr = app.main_screen
    assert scr is not None and scr.view.index is not None, "the model is not loaded"
    i = node if isinstance(node, int) else scr.view.index.find(node)
    assert i is not None, f"no node named {node}"
    scr.jump_to(i)
    await pilot.pause()
