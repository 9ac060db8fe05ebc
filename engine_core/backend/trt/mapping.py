"""TensorRT network and engine ↔ ONNX: which layer came from which node, which tensors exist.

Names (onnx-tensorrt importer): a network tensor made for an ONNX value keeps the ONNX tensor name
(clashes inside Loop/If get a suffix); a layer made for an ONNX node gets the node's name (or
``node_of_<first output>``) and ``[ONNX Layer: NAME]`` metadata; extra layers are ``ONNXTRT_*``;
initializers and Constant nodes become constant layers whose output is ``<name>_output``.

Two levels of "does this ONNX tensor exist in TensorRT":

* **network** (:func:`network_observability`): the tensor exists in the parsed network, so marking it
  as an output gives exactly its value (marking forces TensorRT to materialize it, which can change
  fusions). Folded tensors (constants, Flatten-like reshapes the parser absorbed) and shape tensors
  cannot be observed at all.
* **engine** (:func:`fusion_map`): in an engine built without that mark, the tensor is materialized
  only if an engine layer reads or writes it under its exact ONNX name. Myelin's internal names that
  merely contain an ONNX name (``/relu1/Relu_output_0.1_2_myl0``) are different buffers (often other
  layouts or even other values) and never count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine_core.backend.trt.build import ParsedNetwork
from engine_core.backend.trt.inspector import EngineInfo, onnx_nodes_from_metadata
from engine_core.model.index import ModelIndex
from engine_core.types import json_fields


@dataclass(frozen=True)
class NetTensor:
    """A tensor of the TensorRT network."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    def describe(self) -> str:
        return f"{self.name} [{self.dtype}, {self.shape}]"


@dataclass(frozen=True)
class NetworkLayer:
    """A TensorRT network layer (before fusion) and the ONNX node(s) it came from."""

    index: int
    name: str
    type: str
    onnx_nodes: tuple[str, ...]
    inputs: tuple[NetTensor, ...]
    outputs: tuple[NetTensor, ...]
    precision: str | None
    """Compute precision set on the layer (weak typing only), else ``None`` (strong typing: the dtypes decide)."""

    def to_json(self) -> dict[str, Any]:
        return json_fields(self)


def _net_tensor(t: Any) -> NetTensor:
    try:
        shape = tuple(int(d) for d in t.shape)
    except (TypeError, ValueError):
        shape = ()
    return NetTensor(t.name, getattr(t.dtype, "name", str(t.dtype)), shape)


def network_layers(parsed: ParsedNetwork) -> list[NetworkLayer]:
    """Every layer of the parsed network with its ONNX origin, I/O tensors and (weak-typing) precision."""
    out = []
    for i, layer in enumerate(parsed.layers()):
        precision = None
        if getattr(layer, "precision_is_set", False):
            precision = getattr(layer.precision, "name", str(layer.precision))
        ins = tuple(_net_tensor(layer.get_input(j)) for j in range(layer.num_inputs) if layer.get_input(j) is not None)
        outs = tuple(_net_tensor(layer.get_output(j)) for j in range(layer.num_outputs))
        out.append(
            NetworkLayer(
                i,
                layer.name,
                getattr(layer.type, "name", str(layer.type)),
                onnx_nodes_from_metadata(getattr(layer, "metadata", "") or ""),
                ins,
                outs,
                precision,
            )
        )
    return out


@dataclass
class Observability:
    """Which ONNX tensors a TensorRT runner can return, under which network name, and why not the others."""

    observable: list[str]
    aliases: dict[str, str]
    """ONNX name → network tensor name, where the parser gave the value another name."""
    unobservable: dict[str, str]


def network_observability(
    parsed: ParsedNetwork, index: ModelIndex, candidates: Sequence[str], already_hidden: Mapping[str, str] | None = None
) -> Observability:
    """Classify ``candidates`` (ONNX tensor names) against the parsed network."""
    tensors = parsed.tensors()
    hidden = dict(already_hidden or {})
    observable: list[str] = []
    aliases: dict[str, str] = {}
    unobservable: dict[str, str] = {}
    for name in candidates:
        if name in hidden:
            unobservable[name] = hidden[name]
            continue
        t = tensors.get(name)
        if t is None:
            t = _by_producer(parsed, index, name)
            if t is not None:
                aliases[name] = t.name
        if t is None:
            unobservable[name] = _why_missing(index, name)
        elif t.is_shape_tensor or not t.is_execution_tensor:
            unobservable[name] = "a shape tensor that TensorRT computes at build time, not a GPU tensor"
        else:
            observable.append(name)
    return Observability(observable, aliases, unobservable)


def _by_producer(parsed: ParsedNetwork, index: ModelIndex, name: str) -> Any:
    """The network tensor the parser registered for ONNX output ``name`` (``get_layer_output_tensor``)."""
    pos = index.producer(name)
    if pos is None or not hasattr(parsed.parser, "get_layer_output_tensor"):
        return None
    node = index.node(pos)
    if not node.top_level:
        return None
    node_name = node.onnx_name or f"node_of_{next((o for o in node.outputs if o), '')}"
    try:
        slot = list(node.outputs).index(name)
        return parsed.parser.get_layer_output_tensor(node_name, slot)
    except Exception:
        return None


def _why_missing(index: ModelIndex, name: str) -> str:
    pos = index.producer(name)
    op = index.op_type(pos) if pos is not None else ""
    if op == "Constant":
        return "a Constant output: TensorRT holds it as weights, not a computed tensor"
    if index.is_initializer(name):
        return "an initializer: TensorRT holds it as weights"
    return f"not in the TensorRT network: the ONNX parser folded it{f' ({op})' if op else ''}"


@dataclass
class FusionMap:
    """How ONNX nodes and tensors ended up in an engine."""

    node_layers: dict[str, list[str]]
    """ONNX node → engine layers that implement it (several when TensorRT split it)."""
    tensors: dict[str, str]
    """ONNX tensor → ``materialized`` or the reason it has no buffer in this engine."""
    no_layer: list[str] = field(default_factory=list)
    """ONNX nodes no engine layer names (folded at parse/build time, or metadata missing)."""

    @property
    def fused(self) -> dict[str, str]:
        """Tensors with no buffer of their own in this engine, with where they went."""
        return {k: v for k, v in self.tensors.items() if v != "materialized"}

    def to_json(self) -> dict[str, Any]:
        return {"node_layers": self.node_layers, "tensors": self.tensors, "no_layer": self.no_layer}


def fusion_map(index: ModelIndex, info: EngineInfo) -> FusionMap:
    """Map the top-level ONNX nodes and tensors of ``index`` onto the engine ``info``."""
    node_layers: dict[str, list[str]] = {}
    for layer in info.layers:
        for onnx_node in layer.onnx_nodes:
            node_layers.setdefault(onnx_node, []).append(layer.name)
    materialized = info.tensor_names()
    tensors: dict[str, str] = {}
    no_layer: list[str] = []
    for node in index.nodes(top_level_only=True):
        key = node.onnx_name or f"node_of_{next((o for o in node.outputs if o), '')}"
        layers = node_layers.get(key) or node_layers.get(node.name) or []
        if not layers and node.op_type != "Constant":
            no_layer.append(node.name)
        for out in node.outputs:
            if not out or node.op_type == "Constant":
                continue
            if out in materialized:
                tensors[out] = "materialized"
            elif layers:
                tensors[out] = f"fused inside engine layer {layers[-1]}"
            else:
                tensors[out] = "no engine layer: folded at parse or build time"
    return FusionMap(node_layers, tensors, no_layer)
