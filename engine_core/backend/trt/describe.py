"""What ``trtdbg inspect`` shows for TensorRT: the network view of a model and engine files.

:func:`network_view` parses a model (no GPU) and lists layers as TensorRT makes them, each with its
ONNX origin and output types; :func:`engine_view` optionally builds the engine (cached) and adds its
fused layers and which ONNX tensors have no buffer in it. :func:`read_engine_file` reads a serialized
engine (needs a GPU it can run on) or engine-inspector JSON (both schemas).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from engine_core.backend.trt.build import ParsedNetwork
from engine_core.backend.trt.inspector import (
    EngineInfo,
    engine_text,
    from_inspector_json,
    from_layer_text,
    inspect_plan,
)
from engine_core.backend.trt.mapping import FusionMap, NetTensor, network_layers
from engine_core.errors import TrtdbgError

ENGINE_SUFFIXES = (".plan", ".engine", ".trt")


def network_view(parsed: ParsedNetwork) -> dict[str, Any]:
    """JSON form of the parsed network: flavour, typing, inputs, outputs, layers with ONNX origin."""
    flavour = parsed.flavour
    return {
        "module": flavour.name,
        "version": flavour.version,
        "strongly_typed": parsed.strongly_typed,
        "features": flavour.features(),
        "inputs": [_t(t) for t in parsed.inputs()],
        "outputs": [_t(t) for t in parsed.outputs()],
        "layers": [layer.to_json() for layer in network_layers(parsed)],
    }


def _t(t: Any) -> dict[str, Any]:
    return {"name": t.name, "dtype": getattr(t.dtype, "name", str(t.dtype)), "shape": [int(d) for d in t.shape]}


def network_text(parsed: ParsedNetwork, title: str) -> str:
    """Polygraphy ``--display-as trt`` layout, plus each layer's ONNX node(s) and set precision."""
    flavour = parsed.flavour
    typing = "strongly typed" if parsed.strongly_typed else "weakly typed"
    lines = [f"[I] ==== TensorRT Network ({flavour.label}, {typing}) ====", f"    Name: {title}"]
    for label, tensors in (("Network Input(s)", parsed.inputs()), ("Network Output(s)", parsed.outputs())):
        lines.append(f"    ---- {len(tensors)} {label} ----")
        lines.append("    {" + ", ".join(_desc(t) for t in tensors) + "}")
    layers = network_layers(parsed)
    lines.append(f"    ---- {len(layers)} Layer(s) ----")
    for layer in layers:
        lines.append(f"    Layer {layer.index:<4} | {layer.name} [Op: {layer.type}]")
        lines.append("        {" + ", ".join(_nt(t) for t in layer.inputs) + "}")
        lines.append("         -> {" + ", ".join(_nt(t) for t in layer.outputs) + "}")
        origin = ", ".join(layer.onnx_nodes) if layer.onnx_nodes else "(added by the parser)"
        lines.append(f"        ONNX: {origin}" + (f" | Precision: {layer.precision}" if layer.precision else ""))
    return "\n".join(lines)


def _desc(t: Any) -> str:
    return f"{t.name} [dtype={getattr(t.dtype, 'name', t.dtype)}, shape={tuple(int(d) for d in t.shape)}]"


def _nt(t: NetTensor) -> str:
    return f"{t.name} [dtype={t.dtype}, shape={t.shape}]"


def fusion_text(fusion: FusionMap, limit: int | None = None) -> str:
    """Which ONNX tensors have no buffer in the engine (fused), and ONNX nodes with no engine layer."""
    fused = fusion.fused
    lines = [
        f"    ---- Fusion: {len(fused)} of {len(fusion.tensors)} ONNX tensor(s) have no buffer in this engine ----",
        "    (comparing one of them needs it marked, which makes TensorRT materialize it and can change fusions)",
    ]
    items = list(fused.items())
    for name, why in items[:limit] if limit else items:
        lines.append(f"    {name}: {why}")
    if limit and len(items) > limit:
        lines.append(f"    ... {len(items) - limit} more (--json lists all)")
    if fusion.no_layer:
        shown = fusion.no_layer[:limit] if limit else fusion.no_layer
        more = f" ... +{len(fusion.no_layer) - len(shown)}" if len(shown) < len(fusion.no_layer) else ""
        lines.append(f"    ONNX node(s) with no engine layer of their own: {', '.join(shown)}{more}")
    return "\n".join(lines)


def read_engine_file(path: str | os.PathLike[str], module: str = "auto") -> EngineInfo:
    """Engine-inspector JSON (``.json``), or a serialized engine deserialized with TensorRT (needs a GPU).

    When the engine cannot be loaded here and trtdbg built it (its ``.json`` metadata is beside it with the
    build's layer listing), that listing is shown instead, with a note saying why.
    """
    p = Path(path)
    if not p.is_file():
        raise TrtdbgError(f"{p} does not exist; give an engine file (.plan/.engine) or engine-inspector JSON")
    if p.suffix.lower() == ".json":
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TrtdbgError(f"{p}: cannot read JSON ({exc}); expected trtexec --exportLayerInfo output") from exc
        if isinstance(doc, dict) and "layers_text" in doc and "Layers" not in doc:
            return _from_meta(doc, str(p), None)
        return from_inspector_json(doc, str(p))
    from engine_core.backend.trt.flavour import load_flavour

    plan = p.read_bytes()
    sidecar = p.with_suffix(".json")
    meta = _read_json(sidecar)
    if module == "auto" and meta and meta.get("module") in ("tensorrt", "tensorrt_rtx"):
        module = meta["module"]  # trtdbg built it: load it with the same flavour
    try:
        flavour = load_flavour(module)
        return inspect_plan(flavour, plan, str(p))
    except TrtdbgError as exc:
        if meta and meta.get("layers_text") and meta.get("plan_bytes") == len(plan):
            return _from_meta(meta, str(p), str(exc))
        raise


def _from_meta(meta: dict[str, Any], where: str, why: str | None) -> EngineInfo:
    info = from_layer_text(meta["layers_text"], f"trtdbg build log of {where}")
    label = f"{meta.get('module', 'TensorRT')} {meta.get('version', '')}".strip()
    note = f"built by {label}; layer listing from the build log"
    info.notes.append(note + (f" (the engine itself could not be loaded here: {why})" if why else ""))
    return info


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


__all__ = ["ENGINE_SUFFIXES", "engine_text", "fusion_text", "network_text", "network_view", "read_engine_file"]
