"""The set of marked tensors of one model, kept in its workspace.

A *mark* says "compare this tensor". The UI marks a node's outputs, a whole name scope, every
markable tensor, or clears them; the set is saved (atomically) as
``marks/<model file name>.json`` in the model's workspace and loaded again the next time the model
is opened. Only top-level tensors can be compared (a runner can return them as outputs); outputs of
nodes inside If/Loop/Scan subgraphs are *unobservable* and outputs of Constant nodes are not
markable (Polygraphy's mark-all set skips them too) — marking such a node changes nothing and says why.

Pure Python over :class:`~engine_core.model.index.ModelIndex`; no UI imports.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from engine_core.errors import TrtdbgError
from engine_core.model.index import ModelIndex
from engine_core.model.scopes import ScopePath, ScopeTree
from engine_core.workspace import Workspace

MARKS_DIR = "marks"
FORMAT_VERSION = 1

NodeMarkState = Literal["marked", "partial", "unmarked", "unobservable", "not-markable"]


@dataclass(frozen=True)
class MarkChange:
    """What one operation did: tensors added/removed, and why some tensors could not be marked."""

    added: int = 0
    removed: int = 0
    skipped: tuple[str, ...] = ()
    """One line per reason (``"3 outputs inside subgraph /If_0/then_branch: not observable"``)."""

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)

    def describe(self) -> str:
        """A short sentence for a status line."""
        parts = []
        if self.added:
            parts.append(f"marked {self.added} tensor(s)")
        if self.removed:
            parts.append(f"unmarked {self.removed} tensor(s)")
        if not parts:
            parts.append("no change")
        return "; ".join(parts + list(self.skipped))


class MarkSet:
    """Marked tensors of the model indexed by ``index``, persisted in ``workspace``."""

    def __init__(
        self, index: ModelIndex, workspace: Workspace | None = None, model_path: str | Path | None = None
    ) -> None:
        self.index = index
        self.workspace = workspace
        path = model_path if model_path is not None else index.path
        self.model_path: Path | None = Path(path) if path is not None else None
        self._markable: set[str] | None = None
        self._order: dict[str, int] | None = None
        self._unobservable: dict[str, str] | None = None
        self._tensors: set[str] = set()
        self.dropped: list[str] = []
        """Names found in the saved file that the model no longer has (dropped on load)."""

    # ------------------------------------------------------------------ persistence
    @property
    def file_name(self) -> str:
        """Workspace-relative file holding this model's marks."""
        name = self.model_path.name if self.model_path is not None else (self.index.graph_name or "model")
        return f"{MARKS_DIR}/{name}.json"

    @classmethod
    def load(cls, index: ModelIndex, workspace: Workspace | None, model_path: str | Path | None = None) -> MarkSet:
        """The saved marks of this model (empty when none were saved); unknown names are dropped."""
        marks = cls(index, workspace, model_path)
        if workspace is None:
            return marks
        try:
            doc = workspace.read_json(marks.file_name)
        except (OSError, ValueError) as exc:
            raise TrtdbgError(
                f"cannot read marks from {workspace.path(marks.file_name)}: {exc}; "
                f"delete that file to start with no marks"
            ) from exc
        if not doc:
            return marks
        names = doc.get("tensors") if isinstance(doc, dict) else None
        if not isinstance(names, list):
            raise TrtdbgError(
                f"{workspace.path(marks.file_name)} is not a marks file (no 'tensors' list); "
                f"delete it to start with no marks"
            )
        markable = marks._markable_set()
        for n in names:
            if isinstance(n, str) and n in markable:
                marks._tensors.add(n)
            else:
                marks.dropped.append(str(n))
        return marks

    def save(self) -> Path | None:
        """Write the marks atomically to the workspace (no-op without a workspace)."""
        if self.workspace is None:
            return None
        doc = {
            "version": FORMAT_VERSION,
            "model": str(self.model_path) if self.model_path is not None else None,
            "count": len(self._tensors),
            "tensors": self.ordered(),
        }
        return self.workspace.write_json(self.file_name, doc)

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self._tensors)

    def __contains__(self, tensor: object) -> bool:
        return tensor in self._tensors

    def ordered(self) -> list[str]:
        """Marked tensors in graph order."""
        order = self._order_map()
        return sorted(self._tensors, key=lambda n: order.get(n, len(order)))

    def unobservable(self) -> dict[str, str]:
        """``{tensor: reason}`` for tensors no runner can return (inside subgraphs)."""
        if self._unobservable is None:
            hidden: dict[str, str] = {}
            for sub in self.index.subgraphs:
                for i in range(sub.first, sub.first + sub.count):
                    for out in self.index.node_outputs(i):
                        if out:
                            hidden.setdefault(out, f"inside subgraph {sub.path}: only top-level tensors can be outputs")
            self._unobservable = hidden
        return self._unobservable

    def is_all(self) -> bool:
        """True when every markable tensor is marked."""
        return bool(self._tensors) and len(self._tensors) == len(self._markable_set())

    def node_state(self, i: int) -> NodeMarkState:
        """Whether node ``i``'s outputs are marked (all / some / none) or cannot be."""
        outs = [o for o in self.index.node_outputs(i) if o]
        if self.index.subgraph_of(i) is not None:
            return "unobservable"
        markable = self._markable_set()
        mine = [o for o in outs if o in markable]
        if not mine:
            return "not-markable"
        n = sum(1 for o in mine if o in self._tensors)
        return "marked" if n == len(mine) else ("partial" if n else "unmarked")

    def why_not_markable(self, i: int) -> str | None:
        """Why node ``i`` has no markable output (``None`` when it has one)."""
        state = self.node_state(i)
        if state == "unobservable":
            sub = self.index.subgraph_of(i)
            return f"inside subgraph {sub.path if sub else '?'}: only top-level tensors can be compared"
        if state == "not-markable":
            if self.index.op_type(i) == "Constant":
                return "a Constant's output is a fixed value: nothing to compare"
            return "no output of this node can be compared"
        return None

    # ------------------------------------------------------------------ edits
    def mark_tensors(self, names: Iterable[str], on: bool = True) -> MarkChange:
        """Mark (or unmark) these tensors; names that cannot be marked are reported, not added."""
        markable = self._markable_set()
        hidden = self.unobservable()
        added = removed = 0
        unobs = other = 0
        for n in names:
            if not on:
                if n in self._tensors:
                    self._tensors.discard(n)
                    removed += 1
                continue
            if n in markable:
                if n not in self._tensors:
                    self._tensors.add(n)
                    added += 1
            elif n in hidden:
                unobs += 1
            else:
                other += 1
        skipped = []
        if unobs:
            skipped.append(f"{unobs} tensor(s) inside subgraphs are not observable")
        if other:
            skipped.append(f"{other} tensor(s) cannot be compared (Constant outputs or unknown names)")
        return MarkChange(added, removed, tuple(skipped))

    def toggle_node(self, i: int) -> MarkChange:
        """Mark node ``i``'s outputs, or unmark them when they are all marked already."""
        state = self.node_state(i)
        if state in ("unobservable", "not-markable"):
            return MarkChange(skipped=(f"{self.index.name(i)}: {self.why_not_markable(i)}",))
        outs = [o for o in self.index.node_outputs(i) if o]
        return self.mark_tensors(outs, on=state != "marked")

    def mark_nodes(self, nodes: Iterable[int], on: bool = True) -> MarkChange:
        """Mark (or unmark) the outputs of these nodes."""
        outs = self.index.node_outputs
        return self.mark_tensors((o for i in nodes for o in outs(i) if o), on=on)

    def mark_scope(self, scopes: ScopeTree, path: ScopePath, on: bool | None = None) -> MarkChange:
        """Mark every node under scope ``path`` (``on=None``: unmark when all are marked already)."""
        nodes = nodes_under(scopes, path)
        if on is None:
            markable = self._markable_set()
            outs = [o for i in nodes for o in self.index.node_outputs(i) if o in markable]
            on = not outs or not all(o in self._tensors for o in outs)
        return self.mark_nodes(nodes, on=on)

    def mark_all(self) -> MarkChange:
        """Mark every markable tensor (Polygraphy's ``mark all``)."""
        change = self.mark_tensors(self.index.markable())
        hidden = len(self.unobservable())
        skipped = (f"{hidden} tensor(s) inside subgraphs are not observable",) if hidden else ()
        return MarkChange(change.added, 0, skipped)

    def clear(self) -> MarkChange:
        """Unmark everything."""
        n = len(self._tensors)
        self._tensors.clear()
        return MarkChange(removed=n)

    # ------------------------------------------------------------------ compare
    def request_marks(self) -> list[str]:
        """The marks for :class:`~engine_core.comparator.request.CompareRequest`: ``["all"]`` when
        everything is marked, else the names with glob characters escaped (names are literal)."""
        if self.is_all():
            return ["all"]
        return [glob.escape(n) if any(c in n for c in "*?[") else n for n in self.ordered()]

    # ------------------------------------------------------------------ helpers
    def _markable_set(self) -> set[str]:
        if self._markable is None:
            self._markable = set(self.index.markable())
        return self._markable

    def _order_map(self) -> dict[str, int]:
        if self._order is None:
            self._order = {n: k for k, n in enumerate(self.index.markable())}
        return self._order


def nodes_under(scopes: ScopeTree, path: ScopePath) -> list[int]:
    """Indices of all nodes below ``path`` (a scope, a subgraph, or a node and its subgraphs), in order."""
    out: list[int] = []
    if path and isinstance(path[-1], int):
        out.append(path[-1])
    stack = [path]
    while stack:
        p = stack.pop()
        for e in scopes.children(p):
            if e.kind == "node":
                if e.node_index is not None:
                    out.append(e.node_index)
                if e.has_children:
                    stack.append(e.path)
            else:
                stack.append(e.path)
    return sorted(set(out))
