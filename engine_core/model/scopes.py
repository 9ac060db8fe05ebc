"""Group nodes by name scope for a tree view, lazily, one level per request.

``/model.30/heads.2/conv/Conv`` sits under scopes ``model.30`` > ``heads.2`` > ``conv`` with
leaf label ``Conv``; a PyTorch module path without ``/`` (``bert.encoder.layer.0.attention.self.query``)
gives scopes too. :func:`scope_parts` states the rule. Nodes of If/Loop/Scan subgraphs appear under their owning node's entry, one ``subgraph`` entry
per graph attribute, and are grouped by their own names below it.

A :data:`ScopePath` is a tuple: strings are scope names; an int is the index of a node that owns
subgraphs and must be followed by the graph attribute name (then scopes inside that subgraph).
Pass an entry's ``path`` to :meth:`ScopeTree.children` to expand it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engine_core.errors import TrtdbgError
from engine_core.gcpause import gc_paused
from engine_core.model.index import ModelIndex

ScopePath = tuple[str | int, ...]
_GraphKey = tuple[int, str] | None


def scope_parts(name: str) -> tuple[str, ...]:
    """``name`` split into its scopes and, last, its leaf label.

    * A name with ``/`` splits on ``/`` only, empty parts dropped: ``/encoder/layer.0/attention/MatMul``
      is ``encoder`` > ``layer.0`` > ``attention`` > ``MatMul``.
    * A name without ``/`` splits on ``.`` when that gives at least three parts, an all-digit part staying
      joined to the one before it (a list index, as PyTorch's own ``/`` names write ``layer.0``):
      ``bert.encoder.layer.0.attention.self.query`` is ``bert`` > ``encoder`` > ``layer.0`` >
      ``attention`` > ``self`` > ``query``; ``encoder.dense.weight`` is ``encoder`` > ``dense`` > ``weight``.
    * Anything else is one leaf at the root: ``p2o.Conv.0`` (Paddle: exporter, op, counter), ``Add_12``,
      ``model.0``, ``1.5``.
    """
    if "/" in name:
        return tuple(filter(None, name.split("/"))) or (name,)
    if "." in name:
        parts: list[str] = []
        for p in filter(None, name.split(".")):
            if p.isdigit() and parts:
                parts[-1] += "." + p
            else:
                parts.append(p)
        if len(parts) >= 3:
            return tuple(parts)
    return (name,)


@dataclass(frozen=True, slots=True)
class ScopeEntry:
    """One row of the tree: a scope, a node, or a subgraph of a node."""

    kind: Literal["scope", "node", "subgraph"]
    label: str
    """Scope name, the node name's last part, or the graph attribute (``body``)."""
    path: ScopePath
    """Expand with ``children(path)``; for a node, the path ends with its index."""
    node_count: int
    """Nodes inside (scope: at its graph level; subgraph: its direct nodes; node: 1)."""
    node_index: int | None
    """The node, for ``kind == "node"``."""
    has_children: bool


class ScopeTree:
    """Lazily built scope tree over a :class:`ModelIndex`; each level is computed when first asked."""

    def __init__(self, index: ModelIndex) -> None:
        self.index = index
        self._parts: list[tuple[str, ...]] | None = None
        self._members: dict[tuple[_GraphKey, tuple[str, ...]], list[int]] = {}
        self._subgraphs: dict[int, list[tuple[str, int, int]]] = {}
        for sub in index.subgraphs:
            self._subgraphs.setdefault(sub.node_index, []).append((sub.attr, sub.first, sub.count))

    def children(self, path: ScopePath = ()) -> list[ScopeEntry]:
        """Entries directly under ``path`` in order of first appearance (topological)."""
        if path and isinstance(path[-1], int):
            self._parse(path[:-1])  # validates the prefix
            node = path[-1]
            return [
                ScopeEntry("subgraph", attr, path + (attr,), count, None, count > 0)
                for attr, _, count in self._subgraphs.get(node, [])
            ]
        graph, scopes = self._parse(path)
        members = self._members_of(graph, scopes)
        depth = len(scopes)
        groups: dict[str, list[int]] = {}
        order: list[str | int] = []
        parts = self._name_parts()
        for i in members:
            p = parts[i]
            if len(p) > depth + 1:
                key = p[depth]
                group = groups.get(key)
                if group is None:
                    groups[key] = [i]
                    order.append(key)
                else:
                    group.append(i)
            else:
                order.append(i)
        entries: list[ScopeEntry] = []
        for item in order:
            if isinstance(item, int):
                subs = self._subgraphs.get(item)
                entries.append(ScopeEntry("node", parts[item][-1], path + (item,), 1, item, bool(subs)))
            else:
                self._members[(graph, scopes + (item,))] = groups[item]
                entries.append(ScopeEntry("scope", item, path + (item,), len(groups[item]), None, True))
        return entries

    def locate(self, node_index: int) -> ScopePath:
        """Path of the scope that lists node ``node_index`` as a direct child."""
        if not 0 <= node_index < len(self.index):
            raise TrtdbgError(f"node index {node_index} is out of range (model has {len(self.index)} nodes)")
        sub = self.index.subgraph_of(node_index)
        prefix: ScopePath = (self.locate(sub.node_index) + (sub.node_index, sub.attr)) if sub else ()
        return prefix + self._name_parts()[node_index][:-1]

    def _parse(self, path: ScopePath) -> tuple[_GraphKey, tuple[str, ...]]:
        """Split ``path`` into the graph it points into and the scope names inside that graph."""
        graph: _GraphKey = None
        start = 0
        for k, part in enumerate(path):
            if isinstance(part, int):
                if k + 1 >= len(path) or not isinstance(path[k + 1], str):
                    raise TrtdbgError(f"scope path {path!r}: a node index must be followed by a graph attribute name")
                graph, start = (part, str(path[k + 1])), k + 2
        scopes = tuple(str(p) for p in path[start:])
        return graph, scopes

    def _members_of(self, graph: _GraphKey, scopes: tuple[str, ...]) -> list[int]:
        """Node indices (at this graph level) whose scope starts with ``scopes``."""
        key = (graph, scopes)
        members = self._members.get(key)
        if members is not None:
            return members
        if not scopes:
            if graph is None:
                members = list(range(self.index.num_top_level))
            else:
                found = [(first, count) for attr, first, count in self._subgraphs.get(graph[0], []) if attr == graph[1]]
                if not found:
                    raise TrtdbgError(f"node {graph[0]} has no subgraph attribute '{graph[1]}'")
                members = list(range(found[0][0], found[0][0] + found[0][1]))
        else:
            parent = self._members_of(graph, scopes[:-1])
            depth, name, parts = len(scopes) - 1, scopes[-1], self._name_parts()
            members = [i for i in parent if len(parts[i]) > depth + 1 and parts[i][depth] == name]
        self._members[key] = members
        return members

    def _name_parts(self) -> list[tuple[str, ...]]:
        """Per node, its unique name's :func:`scope_parts`: scopes then the leaf label."""
        if self._parts is None:
            with gc_paused():  # 100k tuples: collections would cost as much as the split
                self._parts = [scope_parts(n) for n in self.index.names()]
        return self._parts
