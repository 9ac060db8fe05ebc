"""Engine information: what TensorRT built, as layers with their ONNX origin, and the engine's I/O.

Three sources give the same :class:`EngineInfo`:

* the engine inspector's JSON (``IEngineInspector.get_engine_information(JSON)``, or a file written by
  ``trtexec --exportLayerInfo``), in the 10.x schema (``Bindings``: a list of names; per tensor a
  combined ``Format/Datatype`` string) and the 11.x schema (``I/O Tensors`` with ``IOMode``,
  ``DataType``, ``ProfileInfo``; split ``Format`` + ``Datatype``) — both parsed defensively;
* the layer listing a build logs at VERBOSE level (``Layers:`` … ``I/O Tensors:``, TensorRT-RTX's
  one-line-per-layer form), available without a GPU;
* a deserialized engine (:func:`inspect_plan`, needs a GPU the engine can run on).

Fused layers carry the ONNX nodes they implement in ``Metadata`` as ``[ONNX Layer: NAME]`` tags
joined by the ASCII unit separator ``\\x1f`` (seen in TensorRT-RTX 1.7.1 build logs).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from engine_core.errors import TrtdbgError

_TAG = re.compile(r"^\[ONNX Layer: (.*?)(?: \| Local Function: .*)?\]$")
_DTYPE_WORDS = (
    ("FP32", "Float"),
    ("FP16", "Half"),
    ("BF16", "BFloat16"),
    ("FP8", "FP8"),
    ("Int8", "Int8"),
    ("INT8", "Int8"),
    ("Int32", "Int32"),
    ("INT32", "Int32"),
    ("Int64", "Int64"),
    ("INT64", "Int64"),
    ("Bool", "Bool"),
    ("BOOL", "Bool"),
    ("UInt8", "UInt8"),
    ("FP4", "FP4"),
    ("Int4", "Int4"),
)


def onnx_nodes_from_metadata(metadata: str) -> tuple[str, ...]:
    """ONNX node names from a layer's ``Metadata`` (``[ONNX Layer: a]\\x1f[ONNX Layer: b]`` → ``(a, b)``)."""
    nodes: list[str] = []
    for part in re.split(r"[\x1f\n]", metadata or ""):
        m = _TAG.match(part.strip())
        if m and m.group(1) not in nodes:
            nodes.append(m.group(1))
    return tuple(nodes)


@dataclass(frozen=True)
class TensorDesc:
    """A tensor as an engine layer reads or writes it."""

    name: str
    dims: tuple[int, ...] | None = None
    dtype: str = ""
    format: str = ""

    def describe(self) -> str:
        """``name [Half, (1, 8, 32, 32)]``."""
        dims = "?" if self.dims is None else str(self.dims)
        return f"{self.name} [{self.dtype or '?'}, {dims}]"


@dataclass(frozen=True)
class EngineLayer:
    """One engine layer (possibly a fusion of several network layers)."""

    name: str
    type: str = ""
    inputs: tuple[TensorDesc, ...] = ()
    outputs: tuple[TensorDesc, ...] = ()
    tactic: str = ""
    metadata: str = ""

    @property
    def onnx_nodes(self) -> tuple[str, ...]:
        """The ONNX nodes this layer implements, from its metadata."""
        return onnx_nodes_from_metadata(self.metadata)

    @property
    def precision(self) -> str:
        """Output data types, e.g. ``Half`` or ``Float,Half``."""
        return ",".join(dict.fromkeys(t.dtype for t in self.outputs if t.dtype))


@dataclass(frozen=True)
class IOTensor:
    """An engine input or output."""

    name: str
    mode: str = ""
    """``Input`` / ``Output`` (empty when the 10.x schema gives names only)."""
    dtype: str = ""
    dims: tuple[int, ...] | None = None
    location: str = ""
    profiles: tuple[dict[str, Any], ...] = ()
    """Per profile: ``MinShape``/``OptShape``/``MaxShape`` (inputs) and ``Format``."""


@dataclass
class EngineInfo:
    """What an engine contains, whatever source it came from."""

    layers: list[EngineLayer]
    io: list[IOTensor]
    schema: str
    """``10.x`` (Bindings), ``11.x`` (I/O Tensors), ``build-log`` or ``names-only``."""
    source: str
    device_memory: int | None = None
    notes: list[str] = field(default_factory=list)

    def tensor_names(self) -> set[str]:
        """Every tensor name the engine materializes (layer inputs and outputs, engine I/O)."""
        names = {t.name for t in self.io}
        for layer in self.layers:
            names.update(t.name for t in layer.inputs)
            names.update(t.name for t in layer.outputs)
        return names

    def to_json(self) -> dict[str, Any]:
        """A stable JSON form (lists of plain dicts; ``onnx_nodes`` added per layer)."""
        layers = []
        for layer in self.layers:
            d = asdict(layer)
            d["onnx_nodes"] = list(layer.onnx_nodes)
            d["precision"] = layer.precision
            layers.append(d)
        return {
            "schema": self.schema,
            "source": self.source,
            "device_memory": self.device_memory,
            "io": [asdict(t) for t in self.io],
            "layers": layers,
            "notes": list(self.notes),
        }


# ------------------------------------------------------------------------------------- inspector JSON


def from_inspector_json(doc: Any, source: str = "engine inspector") -> EngineInfo:
    """Normalize engine-inspector JSON of TensorRT 10.x or 11.x (or one layer's JSON)."""
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except ValueError as exc:
            raise TrtdbgError(
                f"{source}: not engine-inspector JSON ({exc}); expected the output of "
                "trtexec --exportLayerInfo or IEngineInspector"
            ) from exc
    if isinstance(doc, dict) and "Layers" not in doc and "Name" in doc:
        doc = {"Layers": [doc]}
    if not isinstance(doc, dict) or not isinstance(doc.get("Layers"), list):
        raise TrtdbgError(
            f"{source}: not engine-inspector JSON (no 'Layers' list); expected the output of "
            "trtexec --exportLayerInfo or IEngineInspector"
        )
    raw_layers = doc["Layers"]
    layers = [_layer_from_json(x) for x in raw_layers]
    notes: list[str] = []
    if raw_layers and all(isinstance(x, str) for x in raw_layers):
        schema = "names-only"
        notes.append(
            "the engine was built with ProfilingVerbosity LAYER_NAMES_ONLY: no tensors, tactics or ONNX "
            "origin; rebuild with detailed profiling verbosity"
        )
    else:
        schema = "11.x" if "I/O Tensors" in doc else "10.x"
    if "I/O Tensors" in doc:
        io = [_io_from_json(t) for t in doc["I/O Tensors"] if isinstance(t, dict)]
    else:
        io = [IOTensor(str(n)) for n in doc.get("Bindings", []) if isinstance(n, str)]
        if io:
            io = _infer_modes(io, layers)
    return EngineInfo(layers, io, schema, source, notes=notes)


def _layer_from_json(x: Any) -> EngineLayer:
    if isinstance(x, str):
        return EngineLayer(name=x)
    if not isinstance(x, dict):
        return EngineLayer(name=str(x))
    tactic = x.get("TacticName") or x.get("TacticValue") or x.get("Tactic") or ""
    return EngineLayer(
        name=str(x.get("Name", "")),
        type=str(x.get("LayerType", "")),
        inputs=tuple(_tensor_from_json(t) for t in x.get("Inputs", []) if isinstance(t, dict)),
        outputs=tuple(_tensor_from_json(t) for t in x.get("Outputs", []) if isinstance(t, dict)),
        tactic=str(tactic),
        metadata=str(x.get("Metadata", "")),
    )


def _tensor_from_json(t: dict[str, Any]) -> TensorDesc:
    fmt = str(t.get("Format/Datatype", t.get("Format", "")))
    dtype = str(t.get("Datatype", t.get("DataType", ""))) or _dtype_from_format(fmt)
    return TensorDesc(str(t.get("Name", "")), _dims(t.get("Dimensions")), dtype, fmt)


def _io_from_json(t: dict[str, Any]) -> IOTensor:
    profiles = tuple(p for p in t.get("ProfileInfo", []) if isinstance(p, dict))
    return IOTensor(
        str(t.get("Name", "")),
        str(t.get("IOMode", "")),
        str(t.get("DataType", t.get("Datatype", ""))),
        _dims(t.get("Dimensions")),
        str(t.get("Location", "")),
        profiles,
    )


def _infer_modes(io: list[IOTensor], layers: list[EngineLayer]) -> list[IOTensor]:
    """10.x ``Bindings`` lists names only: an engine tensor no layer writes is an input."""
    written = {t.name for layer in layers for t in layer.outputs}
    read = {t.name: t for layer in layers for t in layer.inputs}
    out = []
    for t in io:
        if not written and not read:
            out.append(t)
            continue
        mode = "Output" if t.name in written else "Input"
        desc = read.get(t.name) or next((o for layer in layers for o in layer.outputs if o.name == t.name), None)
        out.append(IOTensor(t.name, mode, desc.dtype if desc else "", desc.dims if desc else None))
    return out


def _dtype_from_format(fmt: str) -> str:
    for word, dtype in _DTYPE_WORDS:
        if re.search(rf"\b{word}\b", fmt):
            return dtype
    return ""


def _dims(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, (list, tuple)):
        try:
            return tuple(int(v) for v in value)
        except (TypeError, ValueError):
            return None
    if isinstance(value, str):
        nums = re.findall(r"-?\d+", value)
        return tuple(int(v) for v in nums) if nums or value.strip("[]() ") == "" else None
    return None


# ---------------------------------------------------------------------------------- build-log text

_TENSOR_TEXT = re.compile(r"\{ Name: (?P<name>.*?), Dimensions: \[(?P<dims>[^\]]*)\](?P<rest>.*?)\s*\}")
_KEYS = ("Name", "LayerType", "Inputs", "Constants", "Outputs", "TacticName", "TacticValue", "StreamId", "Metadata")


def from_layer_text(text: str, source: str = "build log") -> EngineInfo:
    """Parse the ``Layers:`` listing a build logs at VERBOSE level (one line per layer, then ``I/O Tensors:``)."""
    layers: list[EngineLayer] = []
    io: list[IOTensor] = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line in ("Layers:", "I/O Tensors:", "Engine Metadata:"):
            section = line
            continue
        if not line.startswith("Name: "):
            continue
        fields = _split_fields(line)
        if section == "I/O Tensors:":
            profiles = tuple(_profile_text(p) for p in re.findall(r"\{([^{}]*)\}", fields.get("ProfileInfo", "")))
            io.append(
                IOTensor(
                    fields.get("Name", ""),
                    fields.get("IOMode", ""),
                    fields.get("DataType", ""),
                    _dims(fields.get("Dimensions")),
                    fields.get("Location", ""),
                    profiles,
                )
            )
        else:
            layers.append(
                EngineLayer(
                    name=fields.get("Name", ""),
                    type=fields.get("LayerType", ""),
                    inputs=_tensors_text(fields.get("Inputs", "")),
                    outputs=_tensors_text(fields.get("Outputs", "")),
                    tactic=fields.get("TacticName", fields.get("TacticValue", "")),
                    metadata=fields.get("Metadata", ""),
                )
            )
    if not layers and not io:
        raise TrtdbgError(f"{source}: no engine layer listing found")
    return EngineInfo(layers, io, "build-log", source)


def _split_fields(line: str) -> dict[str, str]:
    """``Name: a, LayerType: b, Inputs: [ ... ], ...`` → dict, respecting brackets and braces."""
    out: dict[str, str] = {}
    depth = 0
    key_start = 0
    i = 0
    n = len(line)
    starts: list[int] = []
    while i < n:
        c = line[i]
        if c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        elif depth == 0 and c == "," and line.startswith(" ", i + 1):
            starts.append(i)
        i += 1
    pieces: list[str] = []
    for end in starts + [n]:
        pieces.append(line[key_start:end])
        key_start = end + 2
    # Glue pieces that are not "Key: value" back onto the previous one (commas inside a name).
    merged: list[str] = []
    for piece in pieces:
        key = piece.split(":", 1)[0].strip()
        if merged and (":" not in piece or not re.fullmatch(r"[A-Za-z/ ]+", key)):
            merged[-1] += ", " + piece
        else:
            merged.append(piece)
    for piece in merged:
        key, _, value = piece.partition(":")
        out[key.strip()] = value.strip()
    return out


def _tensors_text(text: str) -> tuple[TensorDesc, ...]:
    out = []
    for m in _TENSOR_TEXT.finditer(text):
        rest = _split_fields("X: x" + m.group("rest"))
        out.append(
            TensorDesc(m.group("name"), _dims(m.group("dims")), rest.get("Datatype", ""), rest.get("Format", ""))
        )
    return tuple(out)


def _profile_text(text: str) -> dict[str, Any]:
    fields = _split_fields(text.strip())
    return {k: (list(_dims(v) or ()) if k.endswith("Shape") else v) for k, v in fields.items()}


# ------------------------------------------------------------------------------ deserialized engine


def inspect_plan(flavour: Any, plan: bytes, where: str) -> EngineInfo:
    """Deserialize ``plan`` and read the engine inspector (needs a GPU this engine was built for)."""
    from engine_core.backend.trt.flavour import make_logger

    trt = flavour.module
    logger = make_logger(flavour)
    runtime = trt.Runtime(logger)
    engine = deserialize(flavour, runtime, logger, plan, where)
    inspector = engine.create_engine_inspector()
    fmt = flavour.enum("LayerInformationFormat", "JSON")
    info = from_inspector_json(inspector.get_engine_information(fmt), f"{where} (engine inspector)")
    info.io = engine_io(flavour, engine)
    info.device_memory = device_memory_size(engine)
    return info


def deserialize(flavour: Any, runtime: Any, logger: Any, plan: bytes, where: str) -> Any:
    """``runtime.deserialize_cuda_engine(plan)`` or a one-line error saying why it cannot load here."""
    mark = logger.records.mark()
    try:
        engine = runtime.deserialize_cuda_engine(plan)
    except Exception as exc:
        engine = None
        logger.records.errors.append(str(exc))
    if engine is not None:
        return engine
    reason = logger.records.error_since(mark) or "TensorRT gave no reason"
    low = reason.lower()
    if "cudaerror 35" in low or "driver" in low or "no cuda-capable" in low or "cudaerror 100" in low:
        hint = "no usable NVIDIA GPU or driver here; run where the engine's GPU is"
    elif "compute capability" in low or "another device" in low or "different" in low:
        hint = "the engine was built for another GPU; rebuild it on this one"
    elif "version" in low or "magic" in low or "serialization" in low:
        hint = f"the engine was built by another TensorRT version or flavour; rebuild it with {flavour.label}"
    else:
        hint = "rebuild the engine here, with this TensorRT"
    raise TrtdbgError(f"{flavour.label} cannot load engine {where}: {' '.join(reason.split())[:240]}; {hint}")


def engine_io(flavour: Any, engine: Any) -> list[IOTensor]:
    """Engine I/O tensors with modes, dtypes, shapes and per-profile shapes from the engine API."""
    trt = flavour.module
    out = []
    nprof = int(getattr(engine, "num_optimization_profiles", 1))
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        profiles = []
        if is_input:
            for p in range(nprof):
                lo, opt, hi = engine.get_tensor_profile_shape(name, p)
                profiles.append({"MinShape": list(lo), "OptShape": list(opt), "MaxShape": list(hi)})
        loc = engine.get_tensor_location(name) if hasattr(engine, "get_tensor_location") else None
        out.append(
            IOTensor(
                name,
                "Input" if is_input else "Output",
                getattr(engine.get_tensor_dtype(name), "name", ""),
                tuple(engine.get_tensor_shape(name)),
                getattr(loc, "name", ""),
                tuple(profiles),
            )
        )
    return out


def device_memory_size(engine: Any) -> int | None:
    """Activation memory the engine needs (``device_memory_size_v2``, else the pre-10.1 name)."""
    for attr in ("device_memory_size_v2", "device_memory_size"):
        if hasattr(engine, attr):
            return int(getattr(engine, attr))
    return None


# ---------------------------------------------------------------------------------------------- text


def engine_text(info: EngineInfo, title: str) -> str:
    """Polygraphy-like text of an engine: I/O, profiles, memory, then every layer with its ONNX origin."""
    lines = [f"[I] ==== TensorRT Engine ({info.schema} schema, from {info.source}) ====", f"    Name: {title}"]
    ins = [t for t in info.io if t.mode.lower() == "input"]
    outs = [t for t in info.io if t.mode.lower() == "output"]
    other = [t for t in info.io if t.mode.lower() not in ("input", "output")]
    for label, group in (("Engine Input(s)", ins), ("Engine Output(s)", outs), ("Engine Tensor(s)", other)):
        if group or label != "Engine Tensor(s)":
            lines.append(f"    ---- {len(group)} {label} ----")
            lines.append("    {" + ", ".join(_io_desc(t) for t in group) + "}")
    if info.device_memory is not None:
        lines += ["    ---- Memory ----", f"    Device Memory: {info.device_memory} bytes"]
    nprof = max((len(t.profiles) for t in ins), default=0)
    if nprof:
        lines.append(f"    ---- {nprof} Profile(s) ({len(ins)} Input Tensor(s) Each) ----")
        for p in range(nprof):
            lines.append(f"    - Profile: {p}")
            for idx, t in enumerate(ins):
                if p < len(t.profiles):
                    pr = t.profiles[p]
                    lines.append(
                        f"        Tensor: {t.name} (Input), Index: {idx} | Shapes: min={_tup(pr.get('MinShape'))}, "
                        f"opt={_tup(pr.get('OptShape'))}, max={_tup(pr.get('MaxShape'))}"
                    )
    lines.append(f"    ---- {len(info.layers)} Layer(s) ----")
    for i, layer in enumerate(info.layers):
        lines.append(
            f"    Layer {i:<4} | {layer.name} [Op: {layer.type or '?'}]"
            + (f" [Tactic: {layer.tactic}]" if layer.tactic else "")
        )
        if layer.inputs or layer.outputs:
            lines.append("        {" + ", ".join(t.describe() for t in layer.inputs) + "}")
            lines.append("         -> {" + ", ".join(t.describe() for t in layer.outputs) + "}")
        nodes = layer.onnx_nodes
        if nodes:
            lines.append(f"        ONNX: {', '.join(nodes)}")
    for note in info.notes:
        lines.append(f"    Note: {note}")
    return "\n".join(lines)


def _io_desc(t: IOTensor) -> str:
    return f"{t.name} [dtype={t.dtype or '?'}, shape={_tup(t.dims)}]"


def _tup(dims: Iterable[int] | None) -> str:
    return "?" if dims is None else str(tuple(dims))
