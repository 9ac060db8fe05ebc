"""Driving the app headless (``App.run_test``), as the screenshot script and the tests do."""

from __future__ import annotations

from typing import Any

from textual.app import App
from textual.worker import WorkerCancelled


async def settle(app: App[Any], pilot: Any, rounds: int = 2) -> None:
    """Wait ``rounds`` times for all workers (a superseded exclusive worker counts as done) and the messages they
    posted (work a round starts goes on in the next)."""
    for _ in range(rounds):
        try:
            await app.workers.wait_for_complete()
        except WorkerCancelled:
            pass
        await pilot.pause()
