"""Pause Python's cyclic garbage collector while building large acyclic structures.

Indexing a 100,000-node model allocates hundreds of thousands of lists and tuples; each allocation burst
triggers collections that traverse every tracked object (the index, the UI), so the collector costs about as
much as the indexing itself. None of these structures hold cycles: pausing the collector loses nothing.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block; re-enable it after only if this block disabled it.

    Nesting and concurrent use from several threads are safe: the collector ends enabled once the block
    that disabled it exits (another thread's block may then run with it enabled, which is only slower).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
