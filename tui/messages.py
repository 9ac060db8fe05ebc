"""Messages that worker threads post to the UI. Workers never touch widgets; handlers own state.

Chain: ``open → _load_model (thread) → ModelLoaded | ModelLoadFailed → _infer_shapes (thread) →
ShapesReady``; ``run compare → _run_compare (thread) → results queued → 4 Hz flush → CompareFinished``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from engine_core.comparator.marks import MarkSet
    from engine_core.comparator.report import CompareReport
    from engine_core.model.index import ModelIndex
    from engine_core.model.scopes import ScopeEntry, ScopeTree
    from engine_core.workspace import Workspace


class ResultMessage(Message):
    """A widget points at one compare result (``result``): the table's cursor, its Enter, the plot's cursor."""

    def __init__(self, result: Any) -> None:
        super().__init__()
        self.result = result


@dataclass
class ModelLoaded(Message, bubble=False):
    """The model is indexed; ``root`` is the first level of the scope tree."""

    index: ModelIndex
    scopes: ScopeTree
    root: list[ScopeEntry]
    marks: MarkSet
    workspace: Workspace
    seconds: float
    notes: list[str] = field(default_factory=list)


@dataclass
class ModelLoadFailed(Message, bubble=False):
    """Loading or indexing the model failed (one line)."""

    error: str


@dataclass
class ShapesReady(Message, bubble=False):
    """Shape inference finished (``error`` says why it was partial)."""

    seconds: float
    error: str | None = None


@dataclass
class InitializerStatsReady(Message, bubble=False):
    """Statistics of initializers read by node ``node`` (name → stats or error line)."""

    node: int
    stats: dict[str, Any]


@dataclass
class SearchDone(Message, bubble=False):
    """Nodes whose name or output names contain ``query`` (case-insensitive), in graph order."""

    query: str
    hits: list[int]
    seconds: float


@dataclass
class MarksSaved(Message, bubble=False):
    """The marks file was written (or failed to be)."""

    path: str | None
    error: str | None = None


@dataclass
class CompareFinished(Message, bubble=False):
    """A compare ended: ``report`` when it ran (also when cancelled), else ``error``."""

    report: CompareReport | None
    error: str | None = None
    cancelled: bool = False
    seconds: float = 0.0


@dataclass
class JobFinished(Message, bubble=False):
    """A bisection / surgeon job ended (``result`` or a one-line ``error``)."""

    kind: str
    result: Any | None
    error: str | None = None


@dataclass
class BisectUpdate(Message, bubble=False):
    """A plain snapshot of the bisection (built in the worker; the UI never touches the session)."""

    state: dict[str, Any]
    note: str | None = None
    final: bool = True
    """False for progress updates during an automatic run."""


@dataclass
class BisectFailed(Message, bubble=False):
    """A bisection action failed (one line); ``stopped`` when the session could not be created."""

    error: str
    stopped: bool = False


@dataclass
class BisectProbe(Message, bubble=False):
    """What a saved bisection in the workspace looks like (``None``: nothing to resume)."""

    info: dict[str, Any] | None


@dataclass
class PreviousSession(Message, bubble=False):
    """What the workspace kept of earlier work on this model: the last compare (engine_core ``LastCompare``) and
    a saved bisection's description (``saved_bisection``); ``notes`` say why something was not restored."""

    last_compare: Any
    bisection: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)
