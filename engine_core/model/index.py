"""A fast, read-only index of an ONNX model for the debugger.

Nodes are kept in topological order in parallel lists (top-level nodes first, then the nodes of
each If/Loop/Scan subgraph, one contiguous block per subgraph); :class:`NodeInfo` objects are
made on request. Shape inference, consumer lists, initializer statistics and the mark-all set
are computed lazily, so indexing a 100k-node model costs about one pass over its protobuf.
"""

from __future__ import annotations

import heapq
import math
import operator
import os
from collections import Counter
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, compress, repeat
from pathlib import Path

import numpy as np

from engine_core.errors import TrtdbgError, first_line
from engine_core.fp16 import FP16_MAX, flushes_to_zero
from engine_core.gcpause import gc_paused
from engine_core.jobs import CancelToken
from engine_core.model.loader import DEFAULT_DOMAIN, SUBGRAPH_OPS, load_model, model_opsets, subgraphs_of
from engine_core.model.proto import GraphProto, ModelProto, NodeProto, TensorProto, TypeProto
from engine_core.types import Dim, TensorMeta

_KEEP_INITIALIZER_ELEMENTS = 1024
"""Shape inference keeps initializers up to this size (shape tensors); larger ones become inputs."""


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One node. ``name`` is unique in the model; ``onnx_name`` is what the file says (may be ``""``)."""

    index: int
    name: str
    onnx_name: str
    op_type: str
    domain: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    parent: str | None
    """Path of the subgraph holding this node, e.g. ``/loop_0/body``; ``None`` at top level."""
    parent_index: int | None
    """Index of the If/Loop/Scan node owning that subgraph."""
    subgraph_attr: str | None
    """Attribute of the parent node holding the subgraph (``body``, ``then_branch``, ...)."""

    @property
    def top_level(self) -> bool:
        """True for nodes of the main graph."""
        return self.parent is None

    @property
    def name_synthesized(self) -> bool:
        """True when the file's name was empty or duplicated and trtdbg made one up."""
        return self.name != self.onnx_name


@dataclass(frozen=True, slots=True)
class SubgraphInfo:
    """A GRAPH attribute of a node; its nodes are ``range(first, first + count)`` in the index."""

    path: str
    node_index: int
    attr: str
    first: int
    count: int
    captures: frozenset[str]
    """Names of enclosing-scope tensors that the subgraph (or a nested one) reads."""
    graph: GraphProto = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class InitializerInfo:
    """Cheap initializer metadata (no data read)."""

    name: str
    dtype: np.dtype | None
    shape: tuple[int, ...]
    nbytes: int
    external: bool


@dataclass(frozen=True, slots=True)
class InitializerStats:
    """Value statistics of one initializer; min/max/mean/std over finite values (``None`` if none)."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    count: int
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    nan: int
    inf: int
    fp16_overflow: int | None
    """Finite values with ``|x| > 65504`` (``None`` for non-float dtypes)."""
    fp16_underflow: int | None
    """Nonzero values that float16 rounds to zero, ``|x| <= 2^-25`` (``None`` for non-float dtypes)."""


class _RawGraph:
    """Per-graph lists read straight from the protobuf, in file order."""

    __slots__ = ("proto", "nodes", "names", "ops", "domains", "ins", "outs", "subs", "free")

    def __init__(self, graph: GraphProto, nested: bool = False) -> None:
        self.proto = graph
        self.nodes: list[NodeProto] = list(graph.node)
        nodes = self.nodes
        self.names: list[str] = [n.name for n in nodes]
        self.ops: list[str] = [n.op_type for n in nodes]
        self.domains: list[str] = [n.domain for n in nodes]
        # Tuples, decoded once: every later pass (order, producers, consumers, markable tensors, rows drawn) reads
        # them, and each read of a protobuf repeated field decodes its strings again.
        self.ins: list[tuple[str, ...]] = list(map(tuple, [n.input for n in nodes]))
        self.outs: list[tuple[str, ...]] = list(map(tuple, [n.output for n in nodes]))
        self.subs: dict[int, list[tuple[str, _RawGraph]]] = {}
        candidates = [i for i, op in enumerate(self.ops) if op in SUBGRAPH_OPS]
        if set(self.domains) - {"", DEFAULT_DOMAIN}:
            candidates = sorted(
                set(candidates).union(i for i, d in enumerate(self.domains) if d not in ("", DEFAULT_DOMAIN))
            )
        for pos in candidates:
            found = subgraphs_of(nodes[pos])
            if found:
                self.subs[pos] = [(attr, _RawGraph(g, nested=True)) for attr, g in found]
        self.free: frozenset[str] = self._free_names() if nested else frozenset()

    def _free_names(self) -> frozenset[str]:
        """Names this graph reads from enclosing scopes (used to order the node that owns it)."""
        defined = {vi.name for vi in self.proto.input}
        defined.update(t.name for t in self.proto.initializer)
        for outs in self.outs:
            defined.update(outs)
        used: set[str] = set()
        for ins in self.ins:
            used.update(ins)
        for subs in self.subs.values():
            for _, sub in subs:
                used.update(sub.free)
        used.discard("")
        return frozenset(used - defined)

    def deps(self, pos: int) -> Sequence[str]:
        """Tensors node ``pos`` needs: its inputs plus names its subgraphs capture."""
        if pos in self.subs:
            captured = set().union(*(sub.free for _, sub in self.subs[pos]))
            return self.ins[pos] + tuple(sorted(captured))
        return self.ins[pos]

    def all_names(self) -> Iterator[str]:
        """Node names of this graph and all nested subgraphs."""
        yield from self.names
        for subs in self.subs.values():
            for _, sub in subs:
                yield from sub.all_names()


def _topological_order(raw: _RawGraph, where: str) -> tuple[list[int] | None, dict[str, int]]:
    """``(order, producer)``: positions of ``raw``'s nodes in topological order (``None`` when the
    file order already is one) and ``{tensor: producing position}``.

    Stable: among ready nodes the earliest in the file goes first. Raises on a cycle.
    """
    producer: dict[str, int] = {}
    for pos, outs in enumerate(raw.outs):
        for name in outs:
            if name:
                producer[name] = pos
    get = producer.get
    is_sorted = True
    for pos, ins in enumerate(raw.ins):
        for name in ins:
            if get(name, -1) >= pos:
                is_sorted = False
                break
        if not is_sorted:
            break
    if is_sorted:
        for pos in raw.subs:
            if any(get(name, -1) >= pos for name in raw.deps(pos)):
                is_sorted = False
                break
    if is_sorted:
        return None, producer
    n = len(raw.ins)
    indegree = [0] * n
    successors: list[list[int]] = [[] for _ in range(n)]
    for pos in range(n):
        for name in raw.deps(pos):
            src = get(name)
            if src is not None:
                successors[src].append(pos)
                indegree[pos] += 1
    ready = [pos for pos in range(n) if indegree[pos] == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        pos = heapq.heappop(ready)
        order.append(pos)
        for nxt in successors[pos]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                heapq.heappush(ready, nxt)
    if len(order) < n:
        raise TrtdbgError(_cycle_message(raw, producer, set(range(n)) - set(order), where))
    return order, producer


def _cycle_message(raw: _RawGraph, producer: dict[str, int], remaining: set[int], where: str) -> str:
    """One line naming the nodes of one cycle among ``remaining`` (nodes Kahn could not place)."""
    path: list[int] = []
    seen: dict[int, int] = {}
    cur = min(remaining)
    while cur not in seen:
        seen[cur] = len(path)
        path.append(cur)
        cur = next(producer[t] for t in raw.deps(cur) if producer.get(t) in remaining)
    cycle = path[seen[cur] :][::-1]
    label = [raw.names[p] or f"{raw.ops[p]}#{p}" for p in cycle[:6]]
    chain = (
        " -> ".join(f"'{x}'" for x in label + [label[0]])
        if len(cycle) <= 6
        else " -> ".join(f"'{x}'" for x in label) + " -> ..."
    )
    return f"graph{where} has a cycle: {chain}; an ONNX graph must be acyclic — fix the exporter or re-export the model"


class ModelIndex:
    """Nodes, tensors, initializers and (lazily) shapes of one ONNX model.

    Read-only: the index keeps views into ``model``, which must not be modified afterwards.
    """

    def __init__(
        self,
        model: ModelProto,
        path: str | os.PathLike[str] | None = None,
        external_data_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """Index an already loaded model; ``path`` names it in errors and locates external data
        (in ``external_data_dir`` when given, else beside the model)."""
        self.model = model
        self.path: Path | None = Path(path) if path is not None else None
        self.data_dir: Path | None = (
            Path(external_data_dir)
            if external_data_dir is not None
            else (self.path.parent if self.path is not None else None)
        )
        where = f" in {self.path}" if self.path else ""
        graph = model.graph
        self.graph_name: str = graph.name
        self.opsets: dict[str, int] = model_opsets(model)
        top = _RawGraph(graph)
        self._names: list[str] = []
        self._onnx_names: list[str] = []
        self._ops: list[str] = []
        self._domains: list[str] = []
        self._ins: list[tuple[str, ...]] = []
        self._outs: list[tuple[str, ...]] = []
        self._protos: list[NodeProto] = []
        self._parent: dict[int, SubgraphInfo] = {}
        self.subgraphs: list[SubgraphInfo] = []
        """Every subgraph, outer before inner."""
        all_names = list(top.all_names())
        unique = set(all_names)
        self._renaming = "" in unique or len(unique) != len(all_names)
        self._taken: set[str] = unique if self._renaming else set()
        self._claimed: set[str] = set()

        order, producer = _topological_order(top, where)
        if order is not None:
            new_index = {pos: i for i, pos in enumerate(order)}
            producer = {name: new_index[pos] for name, pos in producer.items()}
        self._producer: dict[str, int] = producer
        self._emit(top, order, None, where)
        self.num_top_level: int = len(top.nodes)
        self._holder_positions = sorted(top.subs)
        self._top_order = order
        del self._taken, self._claimed

        init_names = {t.name for t in graph.initializer}
        self.initializer_names: list[str] = [t.name for t in graph.initializer]
        """Top-level initializers, in file order."""
        self._initializers: dict[str, TensorProto] = {t.name: t for t in graph.initializer}
        for sub in self.subgraphs:
            for t in sub.graph.initializer:
                self._initializers.setdefault(t.name, t)
        self.inputs: list[str] = [vi.name for vi in graph.input if vi.name not in init_names]
        """Graph inputs that are not initializers (what a user feeds)."""
        self.outputs: list[str] = [vi.name for vi in graph.output]

        for i in range(self.num_top_level, len(self._outs)):
            for name in self._outs[i]:
                if name:
                    self._producer.setdefault(name, i)
        self._consumers: dict[str, list[int]] | None = None
        self._markable: list[str] | None = None
        self._by_name: dict[str, int] | None = None
        self._init_info: dict[str, InitializerInfo] = {}
        self._init_stats: dict[str, InitializerStats] = {}
        self._meta_keys: dict[bool, dict[str, Hashable]] = {}
        self._decoded: dict[Hashable, tuple[np.dtype, tuple[Dim, ...] | None] | None] = {}
        self._described: dict[Hashable, str] = {}
        self.shapes_inferred = False
        """True once shape inference has run and produced a (possibly partial) result."""
        self.shape_inference_error: str | None = None
        """Why shape inference failed (then only shapes declared in the model are known)."""
        self._source: tuple[Path, os.stat_result] | None = None
        """The file ``model`` was parsed from unchanged, and its stat then (set by :meth:`load`)."""

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        load_external_data: bool = True,
        external_data_dir: str | os.PathLike[str] | None = None,
    ) -> ModelIndex:
        """:func:`load_model` then index (with the cyclic garbage collector paused: :mod:`engine_core.gcpause`)."""
        with gc_paused():
            stat = os.stat(path) if os.path.isfile(path) else None
            model = load_model(path, load_external_data=load_external_data, external_data_dir=external_data_dir)
            index = cls(model, path, external_data_dir)
        if stat is not None and not load_external_data:  # loaded external data makes the model differ from the file
            index._source = (Path(path), stat)
        return index

    # ------------------------------------------------------------------ building
    def _emit(self, raw: _RawGraph, order: list[int] | None, parent: SubgraphInfo | None, where: str) -> None:
        """Append ``raw``'s nodes in ``order`` (``None``: file order), then its subgraphs."""
        base = len(self._ops)
        if order is None:
            self._onnx_names.extend(raw.names)
            self._ops.extend(raw.ops)
            self._domains.extend(raw.domains)
            self._ins.extend(raw.ins)
            self._outs.extend(raw.outs)
            self._protos.extend(raw.nodes)
            positions: range | list[int] = range(len(raw.nodes))
        else:
            positions = order
            self._onnx_names.extend([raw.names[p] for p in order])
            self._ops.extend([raw.ops[p] for p in order])
            self._domains.extend([raw.domains[p] for p in order])
            self._ins.extend([raw.ins[p] for p in order])
            self._outs.extend([raw.outs[p] for p in order])
            self._protos.extend([raw.nodes[p] for p in order])
        if self._renaming:
            for i in range(base, len(self._ops)):
                self._names.append(self._unique_name(i))
        else:
            self._names.extend(self._onnx_names[base:])
        if parent is not None:
            for i in range(base, len(self._ops)):
                self._parent[i] = parent
        holders = [(base + k, p) for k, p in enumerate(positions) if p in raw.subs]
        for index, pos in holders:
            for attr, sub in raw.subs[pos]:
                prefix = parent.path if parent is not None else ""
                path = f"{prefix}/{self._names[index].lstrip('/')}/{attr}"
                sub_order, _ = _topological_order(sub, f"{where} (subgraph {path})")
                info = SubgraphInfo(path, index, attr, len(self._ops), len(sub.nodes), sub.free, sub.proto)
                self.subgraphs.append(info)
                self._emit(sub, sub_order, info, where)

    def _unique_name(self, i: int) -> str:
        """The file's name if it is the first use, else ``<op>_<i>`` / ``<name>_<i>`` made unique."""
        name = self._onnx_names[i]
        if name and name not in self._claimed:
            self._claimed.add(name)
            return name
        base = f"{name or self._ops[i]}_{i}"
        candidate, k = base, 1
        while candidate in self._taken or candidate in self._claimed:
            candidate, k = f"{base}_{k}", k + 1
        self._claimed.add(candidate)
        return candidate

    # ------------------------------------------------------------------ nodes
    def __len__(self) -> int:
        """Number of nodes, subgraph nodes included."""
        return len(self._ops)

    def node(self, i: int) -> NodeInfo:
        """The node at index ``i`` (top-level nodes are ``0 .. num_top_level - 1``)."""
        sub = self._parent.get(i)
        return NodeInfo(
            i,
            self._names[i],
            self._onnx_names[i],
            self._ops[i],
            self._domains[i],
            self._ins[i],
            self._outs[i],
            sub.path if sub else None,
            sub.node_index if sub else None,
            sub.attr if sub else None,
        )

    def nodes(self, *, top_level_only: bool = False) -> Iterator[NodeInfo]:
        """All nodes (or only top-level ones) in index order."""
        for i in range(self.num_top_level if top_level_only else len(self._ops)):
            yield self.node(i)

    def node_proto(self, i: int) -> NodeProto:
        """The protobuf of node ``i`` (attributes live there)."""
        return self._protos[i]

    def name(self, i: int) -> str:
        """Unique name of node ``i``."""
        return self._names[i]

    def names(self) -> list[str]:
        """Unique names of all nodes, in index order."""
        return list(self._names)

    def op_type(self, i: int) -> str:
        """Op type of node ``i``."""
        return self._ops[i]

    def node_inputs(self, i: int) -> tuple[str, ...]:
        """Input tensor names of node ``i`` (``""`` marks an omitted optional input)."""
        return self._ins[i]

    def node_outputs(self, i: int) -> tuple[str, ...]:
        """Output tensor names of node ``i``."""
        return self._outs[i]

    def find(self, name: str) -> int | None:
        """Index of the node with this unique name (or, failing that, this name from the file)."""
        if self._by_name is None:
            positions = range(len(self._names))
            by_name = dict(zip(self._onnx_names, positions)) if self._renaming else {}
            by_name.pop("", None)
            by_name.update(zip(self._names, positions))
            self._by_name = by_name
        return self._by_name.get(name)

    def subgraph_of(self, i: int) -> SubgraphInfo | None:
        """The subgraph containing node ``i`` (``None`` for top-level nodes)."""
        return self._parent.get(i)

    def op_histogram(self, *, top_level_only: bool = False) -> dict[str, int]:
        """``{op_type: count}``, most frequent first."""
        ops = self._ops[: self.num_top_level] if top_level_only else self._ops
        return dict(Counter(ops).most_common())

    # ------------------------------------------------------------------ tensors
    def producer(self, tensor: str) -> int | None:
        """Index of the node producing ``tensor`` (``None`` for inputs, initializers, unknown names)."""
        return self._producer.get(tensor)

    def consumers(self, tensor: str) -> list[int]:
        """Indices of nodes reading ``tensor``; an If/Loop/Scan node counts when its subgraph reads it."""
        if self._consumers is None:
            consumers: dict[str, list[int]] = {}
            for i, ins in enumerate(self._ins):
                for name in ins:
                    if name:
                        lst = consumers.get(name)
                        if lst is None:
                            consumers[name] = [i]
                        elif lst[-1] != i:
                            lst.append(i)
            for sub in self.subgraphs:
                for name in sub.captures:
                    lst = consumers.setdefault(name, [])
                    if sub.node_index not in lst:
                        lst.append(sub.node_index)
                        lst.sort()
            self._consumers = consumers
        return list(self._consumers.get(tensor, ()))

    def is_initializer(self, name: str) -> bool:
        """True for initializers of the main graph or any subgraph."""
        return name in self._initializers

    def markable(self) -> list[str]:
        """Top-level tensors that can be marked as outputs (Polygraphy's mark-all set), in order.

        Every output of every top-level node except Constant nodes' outputs and empty
        (omitted optional) outputs, without duplicates.
        """
        if self._markable is None:
            n = self.num_top_level
            not_constant = map(operator.ne, self._ops[:n], repeat("Constant"))
            first_seen = dict.fromkeys(chain.from_iterable(compress(self._outs[:n], not_constant)))
            first_seen.pop("", None)
            self._markable = list(first_seen)
        return list(self._markable)

    # ------------------------------------------------------------------ initializers
    def initializer(self, name: str) -> InitializerInfo:
        """Metadata of an initializer (no data read)."""
        info = self._init_info.get(name)
        if info is None:
            t = self._initializers.get(name)
            if t is None:
                raise TrtdbgError(
                    f"'{name}' is not an initializer of {self.path or 'the model'}; list them with "
                    f"`trtdbg inspect MODEL --show layers`"
                )
            dtype = np_dtype(t.data_type)
            shape = tuple(int(d) for d in t.dims)
            count = int(np.prod(shape, dtype=np.int64)) if shape else 1
            nbytes = (count * dtype.itemsize) if dtype is not None and dtype.kind != "O" else 0
            info = InitializerInfo(name, dtype, shape, nbytes, t.data_location == TensorProto.EXTERNAL)
            self._init_info[name] = info
        return info

    def initializers_nbytes(self) -> int:
        """Total bytes of the top-level initializers (string tensors count as 0)."""
        return sum(self.initializer(n).nbytes for n in self.initializer_names)

    def initializer_array(self, name: str) -> np.ndarray:
        """The initializer's values (external data: a read-only view of the mapped file, nothing is copied)."""
        from engine_core.model.weights import tensor_array

        self.initializer(name)
        t = self._initializers[name]
        try:
            return tensor_array(t, self.data_dir)
        except Exception as exc:
            raise TrtdbgError(
                f"cannot read values of initializer '{name}' of {self.path or 'the model'}: "
                f"{first_line(exc)}; "
                f"check the model's external data files"
            ) from exc

    def initializer_stats(self, name: str) -> InitializerStats:
        """Value statistics of an initializer, computed on first request and cached."""
        stats = self._init_stats.get(name)
        if stats is None:
            stats = _array_stats(name, self.initializer_array(name))
            self._init_stats[name] = stats
        return stats

    # ------------------------------------------------------------------ shapes
    def tensor_meta(self, name: str, *, infer: bool = True) -> TensorMeta | None:
        """dtype and shape of ``name``; ``None`` when unknown or not a tensor type.

        Known from the model's inputs, outputs, initializers and value_info; with ``infer``,
        ONNX shape inference runs once on first use (see :attr:`shape_inference_error`).
        Dimensions are ints, symbolic names (str) or ``None`` when unknown.
        """
        key = self._keys(infer).get(name)
        decoded = self._decode(key) if key is not None else None
        return TensorMeta(name, decoded[0], decoded[1]) if decoded is not None else None

    def shapes(self, *, infer: bool = True) -> dict[str, TensorMeta]:
        """:meth:`tensor_meta` of every tensor whose metadata is known."""
        return {name: TensorMeta(name, dtype, shape) for name, dtype, shape in self.known_tensors(infer=infer)}

    def known_tensors(self, *, infer: bool = True) -> Iterator[tuple[str, np.dtype, tuple[Dim, ...] | None]]:
        """``(name, dtype, shape)`` for every tensor with known metadata (cheaper than :meth:`shapes`)."""
        decode = self._decode
        for name, key in self._keys(infer).items():
            decoded = decode(key)
            if decoded is not None:
                yield name, decoded[0], decoded[1]

    def describe_tensor(self, name: str, *, infer: bool = True) -> str:
        """``[dtype=float32, shape=(1, 'n', -1)]`` as Polygraphy prints it; ``""`` when unknown."""
        key = self._keys(infer).get(name)
        if key is None:
            return ""
        text = self._described.get(key)
        if text is None:
            text = _describe(self._decode(key))
            self._described[key] = text
        return text

    def infer_shapes(self, *, separate_process: bool = False, cancel: CancelToken | None = None) -> None:
        """Run shape inference now, once (:meth:`tensor_meta` with ``infer`` runs it on first use otherwise).

        ``separate_process``: in a child Python (:mod:`~engine_core.model.infer_child`), so that the threads of this
        process keep running; setting ``cancel`` stops it without a result (it runs again on the next request)."""
        if True not in self._meta_keys:
            self._keys(True, separate_process, cancel)

    def _keys(
        self, infer: bool, separate_process: bool = False, cancel: CancelToken | None = None
    ) -> dict[str, Hashable]:
        """``{tensor name: type key}`` from the original model or the shape-inferred one."""
        keys = self._meta_keys.get(infer)
        if keys is None:
            inferred = self._infer_shapes(separate_process, cancel) if infer else None  # runs once: cached below
            if cancel is not None and cancel.is_set():
                return self._keys(False)
            self.shapes_inferred = self.shapes_inferred or inferred is not None
            if inferred is not None:
                keys = _type_keys(*inferred)
            elif False in self._meta_keys:
                keys = self._meta_keys[False]
            else:
                keys = _type_keys(self.model, self._holder_positions)
            self._meta_keys[infer] = keys
        return keys

    def _decode(self, key: Hashable) -> tuple[np.dtype, tuple[Dim, ...] | None] | None:
        if key in self._decoded:
            return self._decoded[key]
        result = _decode_key(key)
        self._decoded[key] = result
        return result

    def _unchanged_source(self, light: ModelProto) -> Path | None:
        """The model file when ``light`` is the model as parsed from it and the file is unchanged since: the
        inference child reads it instead of a serialized copy (at 100k nodes 30 ms holding the GIL, 10 MB written)."""
        if light is not self.model or self._source is None:
            return None
        path, then = self._source
        try:
            now = os.stat(path)
        except OSError:
            return None
        return (
            path
            if (now.st_size, now.st_mtime_ns, now.st_ino) == (then.st_size, then.st_mtime_ns, then.st_ino)
            else None
        )

    def _infer_shapes(
        self, separate_process: bool = False, cancel: CancelToken | None = None
    ) -> tuple[ModelProto, list[int]] | None:
        """``onnx.shape_inference`` (strict, then lenient) on a weight-less, topologically sorted copy.

        Returns the inferred model and the positions of its subgraph-owning nodes; keeps the
        reason in :attr:`shape_inference_error` when strict inference fails.
        """
        light = _light_copy(self.model, self._top_order)
        order = self._top_order
        holders = self._holder_positions
        if order is not None:
            owners = set(holders)
            holders = [i for i, p in enumerate(order) if p in owners]
        if separate_process:
            from engine_core.model.infer_child import infer_in_child

            inferred, self.shape_inference_error = infer_in_child(light, cancel, self._unchanged_source(light))
            return (inferred, holders) if inferred is not None else None
        from onnx import shape_inference

        try:
            return shape_inference.infer_shapes(light, strict_mode=True, data_prop=True), holders
        except Exception as exc:
            self.shape_inference_error = first_line(exc)
        try:
            return shape_inference.infer_shapes(light, strict_mode=False, data_prop=True), holders
        except Exception:
            return None


# ---------------------------------------------------------------------- helpers
_NP_DTYPES: dict[int, np.dtype | None] = {
    TensorProto.UNDEFINED: None,
    **{
        getattr(TensorProto, onnx_name): np.dtype(np_name)
        for onnx_name, np_name in (
            ("FLOAT", "float32"),
            ("UINT8", "uint8"),
            ("INT8", "int8"),
            ("UINT16", "uint16"),
            ("INT16", "int16"),
            ("INT32", "int32"),
            ("INT64", "int64"),
            ("STRING", "object"),
            ("BOOL", "bool"),
            ("FLOAT16", "float16"),
            ("DOUBLE", "float64"),
            ("UINT32", "uint32"),
            ("UINT64", "uint64"),
            ("COMPLEX64", "complex64"),
            ("COMPLEX128", "complex128"),
        )
    },
}
"""numpy's own types here; the others (bfloat16, float8, int4, …) come from onnx's mapping (ml_dtypes) on first use."""


def np_dtype(elem_type: int) -> np.dtype | None:
    """numpy dtype of an ONNX element type (ml_dtypes for bfloat16/float8/int4); ``None`` if unknown."""
    if elem_type not in _NP_DTYPES:
        from onnx.helper import tensor_dtype_to_np_dtype

        try:
            _NP_DTYPES[elem_type] = np.dtype(tensor_dtype_to_np_dtype(elem_type))
        except (KeyError, ValueError, TypeError):
            _NP_DTYPES[elem_type] = None
    return _NP_DTYPES[elem_type]


_DTYPE_NAMES: dict[np.dtype | None, str] = {None: "unknown"}


def dtype_name(dtype: np.dtype | None) -> str:
    """Display name of a dtype (``string`` for ONNX strings); cached, ``np.dtype.name`` is slow."""
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = "string" if dtype.kind == "O" else dtype.name  # type: ignore[union-attr]
        _DTYPE_NAMES[dtype] = name
    return name


def _type_keys(model: ModelProto, holder_positions: list[int]) -> dict[str, Hashable]:
    """``{name: key}`` where key is a serialized TypeProto or ``(elem_type, dims)`` for initializers.

    Precedence like Polygraphy: value_info < initializers < inputs < outputs; main graph wins
    over subgraphs.
    """
    keys: dict[str, Hashable] = {}
    graphs = [model.graph]
    nodes = model.graph.node
    stack = [g for pos in holder_positions if pos < len(nodes) for _, g in subgraphs_of(nodes[pos])]
    while stack:
        g = stack.pop()
        graphs.append(g)
        for n in g.node:
            stack.extend(sg for _, sg in subgraphs_of(n))
    for g in reversed(graphs):
        keys.update({vi.name: vi.type.SerializeToString() for vi in g.value_info})
        keys.update({t.name: (t.data_type, tuple(t.dims)) for t in g.initializer})
        keys.update({vi.name: vi.type.SerializeToString() for vi in g.input})
        keys.update({vi.name: vi.type.SerializeToString() for vi in g.output})
    return keys


def _decode_key(key: Hashable) -> tuple[np.dtype, tuple[Dim, ...] | None] | None:
    if isinstance(key, tuple):
        dtype = np_dtype(key[0])
        return (dtype, tuple(int(d) for d in key[1])) if dtype is not None else None
    tp = TypeProto()
    tp.ParseFromString(key)
    while tp.WhichOneof("value") == "optional_type":
        tp = tp.optional_type.elem_type
    kind = tp.WhichOneof("value")
    if kind not in ("tensor_type", "sparse_tensor_type"):
        return None
    tt = getattr(tp, kind)
    dtype = np_dtype(tt.elem_type)
    if dtype is None:
        return None
    if not tt.HasField("shape"):
        return dtype, None
    dims: list[Dim] = []
    for d in tt.shape.dim:
        which = d.WhichOneof("value")
        dims.append(d.dim_value if which == "dim_value" else d.dim_param if which == "dim_param" else None)
    return dtype, tuple(dims)


def _describe(decoded: tuple[np.dtype, tuple[Dim, ...] | None] | None) -> str:
    if decoded is None:
        return ""
    dtype, shape = decoded
    if shape is None:
        return f"[dtype={dtype_name(dtype)}]"
    dims = tuple(-1 if d is None else d for d in shape)
    return f"[dtype={dtype_name(dtype)}, shape={dims}]"


def _light_copy(model: ModelProto, order: list[int] | None) -> ModelProto:
    """The model for shape inference: nodes in ``order`` (``None``: as stored) and large
    initializers replaced by typed graph inputs (their data is not needed).

    Returns ``model`` itself when nothing needs reordering or stripping.
    """
    src = model.graph

    def keep(t: TensorProto) -> bool:
        return (
            t.data_location != TensorProto.EXTERNAL
            and int(np.prod(t.dims, dtype=np.int64)) <= _KEEP_INITIALIZER_ELEMENTS
        )

    kept = [keep(t) for t in src.initializer]
    if order is None and all(kept):
        return model
    light = ModelProto()
    light.ir_version = model.ir_version
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    g = light.graph
    g.name = src.name
    if order is None:
        g.node.extend(src.node)
    else:
        nodes = src.node
        g.node.extend(nodes[p] for p in order)
    g.input.extend(src.input)
    g.output.extend(src.output)
    g.value_info.extend(src.value_info)
    g.sparse_initializer.extend(src.sparse_initializer)
    declared = {vi.name for vi in src.input}
    for t, small in zip(src.initializer, kept):
        if small:
            g.initializer.append(t)
        elif t.name not in declared:  # as onnx.helper.make_tensor_value_info makes it
            vi = g.input.add()
            vi.name = t.name
            tensor_type = vi.type.tensor_type
            tensor_type.elem_type = t.data_type
            tensor_type.shape.SetInParent()
            for d in t.dims:
                tensor_type.shape.dim.add().dim_value = d
    return light


def _numeric(arr: np.ndarray) -> tuple[np.ndarray, bool] | None:
    """``(values to reduce, is_float)``; narrow/exotic floats widen to float32, bool/int4 to ints."""
    kind, name = arr.dtype.kind, arr.dtype.name
    if kind in "OSU":
        return None
    if kind == "b":
        return arr.astype(np.uint8), False
    if kind == "c":
        return np.abs(arr), True
    if "float" in name:
        return (arr if kind == "f" and arr.dtype.itemsize >= 4 else arr.astype(np.float32)), True
    return (arr if kind in "iu" else arr.astype(np.int32)), False


_CHUNK = 1 << 18
"""Elements reduced at a time by :func:`_array_stats` (a chunk and its temporaries stay in the CPU cache)."""


def _array_stats(name: str, arr: np.ndarray) -> InitializerStats:
    """min/max/mean/std over finite values, NaN/Inf counts, and float16 range counts for floats.

    One pass over cache-sized chunks (a memory-mapped weight of hundreds of MB is read once, with no full-size
    temporaries); the chunks' means and squared deviations are combined exactly as a two-pass std would be."""
    shape = tuple(arr.shape)
    numeric = _numeric(arr)
    if numeric is None:
        return InitializerStats(name, arr.dtype, shape, arr.size, None, None, None, None, 0, 0, None, None)
    values, is_float = numeric
    flat = values.reshape(-1)
    n, mean, m2, lo, hi = 0, 0.0, 0.0, math.inf, -math.inf
    nan = inf = 0
    overflow = underflow = 0 if is_float else None
    for start in range(0, flat.size, _CHUNK):
        v = flat[start : start + _CHUNK]
        v_lo, v_hi = float(v.min()), float(v.max())
        if is_float:
            if not (math.isfinite(v_lo) and math.isfinite(v_hi)):  # NaN or Inf in the chunk (rare): filter
                finite = np.isfinite(v)
                k = int(np.count_nonzero(finite))
                nans = int(np.count_nonzero(np.isnan(v)))
                nan, inf = nan + nans, inf + v.size - k - nans
                v = v[finite]
                if not k:
                    continue
                v_lo, v_hi = float(v.min()), float(v.max())
            mag = np.abs(v)
            if max(-v_lo, v_hi) > FP16_MAX:
                overflow = (overflow or 0) + int(np.count_nonzero(mag > FP16_MAX))
            underflow = (underflow or 0) + int(np.count_nonzero(flushes_to_zero(mag)))
        k = v.size
        lo, hi = min(lo, v_lo), max(hi, v_hi)
        chunk_mean = float(v.mean(dtype=np.float64))
        d = v - (v.dtype.type(chunk_mean) if v.dtype.kind == "f" else chunk_mean)
        total = n + k
        delta = chunk_mean - mean
        mean += delta * k / total
        m2 += float(np.dot(d, d)) + delta * delta * n * k / total
        n = total
    if n == 0:
        return InitializerStats(name, arr.dtype, shape, arr.size, None, None, None, None, nan, inf, overflow, underflow)
    return InitializerStats(
        name, arr.dtype, shape, arr.size, lo, hi, mean, math.sqrt(m2 / n), nan, inf, overflow, underflow
    )
