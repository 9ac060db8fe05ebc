"""Parse ONNX into a TensorRT network, mark tensors, build a strongly typed engine, cache engines.

:func:`parse_onnx` reports every parser error with the node's name and op. :func:`build_engine`
applies :class:`BuildOptions` (optimization profiles, workspace pool limit, builder optimization
level, timing cache, TF32, marked tensors) and stores the plan in an :class:`EngineCache` keyed by
the model's content hash, the TensorRT flavour and version and every option that changes the
engine, so an identical engine is never built twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import onnx

from engine_core.backend.trt.flavour import Flavour, LogRecords, make_logger
from engine_core.errors import TrtdbgError
from engine_core.model import weights
from engine_core.workspace import atomic_write_bytes, atomic_write_json

Shape = tuple[int, ...]
ProfileShapes = dict[str, tuple[Shape, Shape, Shape]]
"""One optimization profile: input name → (min, opt, max) shape."""

MARK_MODES = ("output", "debug")


@dataclass(frozen=True)
class ParseIssue:
    """One ONNX parser error."""

    node_index: int
    node_name: str
    op: str
    code: str
    message: str
    function: str

    def describe(self) -> str:
        """``node 'foo1' (FooBarOp, #1): <message>``."""
        where = f"node '{self.node_name}' ({self.op}, #{self.node_index})" if self.node_index >= 0 else "the model"
        return f"{where}: {self.message}"


class TrtParseError(TrtdbgError):
    """The ONNX parser rejected the model; ``issues`` lists every error."""

    def __init__(self, message: str, issues: Sequence[ParseIssue]) -> None:
        super().__init__(message)
        self.issues = list(issues)


@dataclass(eq=False)
class ParsedNetwork:
    """A TensorRT network parsed from ONNX, with the builder, parser and logger that own it.

    The parser must live as long as the network (it owns the weights), so they stay together.
    """

    flavour: Flavour
    builder: Any
    network: Any
    parser: Any
    logger: Any
    strongly_typed: bool
    _tensors: dict[str, Any] | None = field(default=None, init=False, repr=False)

    @property
    def records(self) -> LogRecords:
        """What TensorRT logged so far."""
        return self.logger.records

    def inputs(self) -> list[Any]:
        """Network input tensors in order."""
        return [self.network.get_input(i) for i in range(self.network.num_inputs)]

    def outputs(self) -> list[Any]:
        """Network output tensors in order."""
        return [self.network.get_output(i) for i in range(self.network.num_outputs)]

    def layers(self) -> list[Any]:
        """Network layers in order."""
        return [self.network.get_layer(i) for i in range(self.network.num_layers)]

    def tensors(self) -> dict[str, Any]:
        """Every tensor of the network by name (inputs and layer outputs)."""
        if self._tensors is None:
            found = {t.name: t for t in self.inputs()}
            for layer in self.layers():
                for j in range(layer.num_outputs):
                    t = layer.get_output(j)
                    if t is not None:
                        found.setdefault(t.name, t)
            self._tensors = found
        return dict(self._tensors)


def parse_onnx(
    flavour: Flavour,
    model: onnx.ModelProto | bytes,
    model_path: str | os.PathLike[str] | None = None,
    *,
    strongly_typed: bool = True,
) -> ParsedNetwork:
    """Parse ``model`` (external weights are found next to ``model_path``); raise :class:`TrtParseError`.

    A model holding weights trtdbg made in memory (an FP16 rewrite of a model with external data) is first written
    with external data to a temporary folder beside nothing else (the weights it shares are copied there: ONNX
    refuses links) and parsed from that path, so no protobuf of the weights is ever made.
    """
    if not isinstance(model, bytes) and any(weights.is_memory(t) for t in model.graph.initializer):
        import tempfile

        from engine_core.model.save import save_rewritten

        base = Path(model_path).resolve().parent if model_path else None
        with tempfile.TemporaryDirectory(prefix="trtdbg-parse-") as tmp:
            staged = Path(tmp) / "model.onnx"
            save_rewritten(model, staged, base, model_path or "")
            bare = onnx.load(str(staged), load_external_data=False)
            return parse_onnx(flavour, bare, staged, strongly_typed=strongly_typed)
    trt = flavour.module
    data = model if isinstance(model, bytes) else model.SerializeToString()
    logger = make_logger(flavour)
    builder = create_builder(flavour, logger)
    flags = 0
    if strongly_typed and flavour.has("NetworkDefinitionCreationFlag", "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)  # its value differs between 10 and 11
    network = builder.create_network(flags)
    if not strongly_typed and _network_is_strongly_typed(flavour, network):
        raise TrtdbgError(f"{flavour.label} networks are always strongly typed; weak typing needs TensorRT 10.x")
    parser = trt.OnnxParser(network, logger)
    where = str(model_path) if model_path else "the model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ok = parser.parse(data, str(model_path)) if model_path else parser.parse(data)
    if not ok or parser.num_errors:
        issues = [_issue(parser.get_error(i)) for i in range(parser.num_errors)]
        raise TrtParseError(_parse_message(flavour, where, issues, logger.records), issues)
    return ParsedNetwork(flavour, builder, network, parser, logger, strongly_typed)


def create_builder(flavour: Flavour, logger: Any) -> Any:
    """``Builder(logger)``, or a one-line error when TensorRT cannot start (no GPU or driver for TensorRT 10/11)."""
    mark = logger.records.mark()
    try:
        builder = flavour.module.Builder(logger)
    except Exception as exc:
        builder = None
        reason = logger.records.error_since(mark) or str(exc)
    else:
        reason = logger.records.error_since(mark) or "Builder() returned nothing"
    if builder is None:
        raise TrtdbgError(
            f"{flavour.label} cannot create a builder ({_short(reason)}); it needs an NVIDIA GPU with a "
            f"working driver (TensorRT-RTX can build without one: pip install trtdbg[trt-rtx])"
        )
    return builder


def _network_is_strongly_typed(flavour: Flavour, network: Any) -> bool:
    if not flavour.has("NetworkDefinitionCreationFlag", "STRONGLY_TYPED"):
        return False
    try:
        return bool(network.get_flag(flavour.module.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    except Exception:
        return False


def _issue(err: Any) -> ParseIssue:
    def call(name: str, default: Any) -> Any:
        try:
            return getattr(err, name)()
        except Exception:
            return default

    code = call("code", "")
    return ParseIssue(
        node_index=int(call("node", -1)),
        node_name=str(call("node_name", "") or ""),
        op=str(call("node_operator", "") or ""),
        code=getattr(code, "name", str(code)),
        message=_clean_desc(str(call("desc", "") or str(err))),
        function=str(call("func", "") or ""),
    )


def _clean_desc(desc: str) -> str:
    """The human part of a parser assertion: ``creator && "Plugin not found..."`` → ``Plugin not found...``."""
    text = " ".join(desc.split())
    m = re.search(r'&&\s*"(.*)"\s*$', text)
    if m:
        return m.group(1)
    m = re.match(r"Assertion failed: \(.*?\): (.+)$", text)
    return m.group(1) if m else text


def _parse_message(flavour: Flavour, where: str, issues: list[ParseIssue], records: LogRecords) -> str:
    if not issues:
        reason = records.error_since(0) or "the parser gave no reason"
        return f"{flavour.label} cannot parse {where}: {_short(reason)}"
    first = issues[0]
    more = f" (+{len(issues) - 1} more error(s))" if len(issues) > 1 else ""
    if first.code == "MODEL_DESERIALIZE_FAILED":
        hint = "the file is not a valid ONNX model; check it with `trtdbg inspect MODEL`"
    elif "Plugin not found" in first.message:
        hint = (
            f"TensorRT has no importer or plugin for op {first.op}; load the plugin that implements it "
            f"(TensorRT-RTX has no plugins) or rewrite the node"
        )
    elif first.code == "UNSUPPORTED_NODE" or first.code == "UNSUPPORTED_NODE_ATTR":
        hint = "TensorRT does not support this node as written; check its attributes and inputs, or rewrite the node"
    else:
        hint = "fix or rewrite that node (trtdbg inspect MODEL --display-as trt shows how TensorRT sees the model)"
    return f"{flavour.label} cannot parse {where}: {_short(first.describe(), 300)}{more}; {hint}"


def _short(text: str, limit: int = 240) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class BuildOptions:
    """Everything that changes the engine (and therefore its cache key), plus the timing cache file."""

    profiles: tuple[tuple[tuple[str, Shape, Shape, Shape], ...], ...] = ()
    """Optimization profiles: each a tuple of (input, min, opt, max)."""
    pool_limit: int | None = None
    """Workspace memory pool limit in bytes (TensorRT's default when ``None``)."""
    opt_level: int | None = None
    """Builder optimization level 0–5 (TensorRT's default, 3, when ``None``)."""
    tf32: bool = False
    """Allow TF32 for FP32 math; cleared by default (as Polygraphy does) so FP32 stays FP32."""
    marks: tuple[str, ...] = ()
    """Tensors made observable: marked as outputs (``mark_mode='output'``) or debug tensors."""
    mark_mode: str = "output"
    precision: str = "fp32"
    """What precision the ONNX carries (a label for the cache key and messages: ``fp32``, ``fp16 plan 1a2b``)."""
    weak: tuple[tuple[str, str], ...] = ()
    """Legacy weak-typing settings (TensorRT 10.x), as (name, value) pairs; see :mod:`legacy`."""
    timing_cache: str | None = field(default=None, compare=False)
    """Timing cache file read before and written after a build (not part of the key)."""

    @staticmethod
    def make_profiles(profiles: Sequence[Mapping[str, tuple[Shape, Shape, Shape]]]) -> tuple:
        """Normalize ``[{name: (min, opt, max)}]`` for the ``profiles`` field."""
        return tuple(
            tuple(
                sorted(
                    (name, tuple(map(int, lo)), tuple(map(int, op)), tuple(map(int, hi)))
                    for name, (lo, op, hi) in p.items()
                )
            )
            for p in profiles
        )

    def key_data(self) -> dict[str, Any]:
        """The options that define the engine, JSON-able, marks sorted."""
        data = asdict(self)
        data.pop("timing_cache")
        data["marks"] = sorted(self.marks)
        return data


# ------------------------------------------------------------------------------------------------ cache


def model_digest(model: onnx.ModelProto | bytes, model_path: str | os.PathLike[str] | None = None) -> str:
    """SHA-256 of the serialized model, plus name, size and mtime of its external data files."""
    data = model if isinstance(model, bytes) else model.SerializeToString()
    h = hashlib.sha256(data)
    if model_path is not None and not isinstance(model, bytes):
        base = Path(model_path).resolve().parent
        for loc in sorted(_external_locations(model)):
            try:
                st = (base / loc).stat()
                h.update(f"\0{loc}\0{st.st_size}\0{st.st_mtime_ns}".encode())
            except OSError:
                h.update(f"\0{loc}\0missing".encode())
    return h.hexdigest()


def _external_locations(model: onnx.ModelProto) -> set[str]:
    locs: set[str] = set()
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            locs.update(e.value for e in t.external_data if e.key == "location")
    return locs


@dataclass
class CachedEngine:
    """A serialized engine and what trtdbg recorded about it."""

    key: str
    plan: bytes
    meta: dict[str, Any]
    path: Path | None
    cached: bool
    """True when it came from the cache (no build ran)."""


class EngineCache:
    """Engines under ``ROOT/<key>.plan`` with ``ROOT/<key>.json`` beside each (atomic writes).

    Keeps the ``max_entries`` most recently used engines.
    """

    def __init__(self, root: str | os.PathLike[str], max_entries: int = 64) -> None:
        self.root = Path(root)
        self.max_entries = max_entries

    @staticmethod
    def key(digest: str, flavour: Flavour, options: BuildOptions) -> str:
        """Content hash of model digest + flavour + version + engine options."""
        doc = {"model": digest, "module": flavour.name, "version": flavour.version, "options": options.key_data()}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]

    def paths(self, key: str) -> tuple[Path, Path]:
        """The plan file and its metadata file."""
        return self.root / f"{key}.plan", self.root / f"{key}.json"

    def load(self, key: str) -> CachedEngine | None:
        """The cached engine for ``key``, or ``None``."""
        plan_path, meta_path = self.paths(key)
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            plan = plan_path.read_bytes()
        except (OSError, ValueError):
            return None
        if len(plan) != meta.get("plan_bytes"):
            return None
        os.utime(meta_path)
        return CachedEngine(key, plan, meta, plan_path, cached=True)

    def store(self, key: str, plan: bytes, meta: dict[str, Any]) -> Path:
        """Write the plan, then its metadata (an entry counts only when both exist); prune old entries."""
        plan_path, meta_path = self.paths(key)
        atomic_write_bytes(plan_path, plan)
        atomic_write_json(meta_path, {**meta, "plan_bytes": len(plan)})
        self.prune()
        return plan_path

    def discard(self, key: str) -> None:
        """Remove an entry (e.g. a plan this GPU or TensorRT version cannot load)."""
        for p in self.paths(key):
            try:
                p.unlink()
            except OSError:
                pass

    def prune(self) -> None:
        """Delete the least recently used entries beyond ``max_entries``."""
        try:
            metas = sorted(self.root.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        except OSError:
            return
        for meta in metas[self.max_entries :]:
            self.discard(meta.stem)


# ------------------------------------------------------------------------------------------------ build


def mark_tensors(parsed: ParsedNetwork, names: Sequence[str], mode: str = "output") -> tuple[list[Any], dict[str, str]]:
    """Make ``names`` observable (outputs or debug tensors).

    Returns the tensors marked here (for :func:`unmark_tensors`) and those that cannot be, with the reason.
    """
    if mode not in MARK_MODES:
        raise TrtdbgError(f"unknown mark mode '{mode}'; choose one of {', '.join(MARK_MODES)}")
    if mode == "debug" and not parsed.flavour.debug_tensors:
        raise TrtdbgError(
            f"{parsed.flavour.label} has no debug tensors (INetworkDefinition.mark_debug); "
            "mark tensors as outputs instead"
        )
    tensors = parsed.tensors()
    inputs = {t.name for t in parsed.inputs()}
    refused: dict[str, str] = {}
    marked: list[Any] = []
    for name in names:
        t = tensors.get(name)
        if t is None:
            refused[name] = "not in the TensorRT network (folded by the ONNX parser)"
        elif name in inputs or t.is_network_output:
            continue
        elif t.is_shape_tensor or not t.is_execution_tensor:
            refused[name] = "a shape tensor TensorRT computes at build time, not a GPU tensor"
        elif mode == "output":
            parsed.network.mark_output(t)
            marked.append(t)
        else:
            parsed.network.mark_debug(t)
            marked.append(t)
    return marked, refused


def unmark_tensors(parsed: ParsedNetwork, tensors: Sequence[Any], mode: str = "output") -> None:
    """Undo :func:`mark_tensors` so the network can be built again with other marks."""
    for t in tensors:
        if mode == "output":
            parsed.network.unmark_output(t)
        else:
            parsed.network.unmark_debug(t)


def dynamic_inputs(parsed: ParsedNetwork) -> dict[str, Shape]:
    """Network inputs with a ``-1`` dimension, with their shapes."""
    return {t.name: tuple(t.shape) for t in parsed.inputs() if any(d < 0 for d in tuple(t.shape))}


def build_engine(
    parsed: ParsedNetwork,
    options: BuildOptions,
    *,
    digest: str,
    cache: EngineCache | None = None,
    configure: Callable[[ParsedNetwork, Any, BuildOptions], None] | None = None,
    where: str = "the model",
) -> CachedEngine:
    """Build (or load from ``cache``) the engine of ``parsed`` with ``options``; ``options.marks`` are marked here.

    ``configure(parsed, config, options)`` may adjust the builder config last (legacy weak typing).
    """
    flavour = parsed.flavour
    key = EngineCache.key(digest, flavour, options)
    if cache is not None:
        hit = cache.load(key)
        if hit is not None:
            return hit
    marked, refused = mark_tensors(parsed, options.marks, options.mark_mode)
    try:
        config = _config(parsed, options, where)
        if configure is not None:
            configure(parsed, config, options)
        mark = parsed.records.mark()
        parsed.records.layers_text = None
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                serialized = parsed.builder.build_serialized_network(parsed.network, config)
            except Exception as exc:
                serialized = None
                parsed.records.errors.append(str(exc))
        seconds = time.perf_counter() - start
    finally:
        unmark_tensors(parsed, marked, options.mark_mode)
    if serialized is None:
        raise TrtdbgError(_build_message(flavour, where, parsed.records.error_since(mark)))
    plan = bytes(serialized)
    notes = _save_timing_cache(flavour, config, options.timing_cache)
    meta = {
        "module": flavour.name,
        "version": flavour.version,
        "model": where,
        "model_digest": digest,
        "options": options.key_data(),
        "build_seconds": round(seconds, 3),
        "created": time.time(),
        "refused_marks": refused,
        "notes": notes,
        "layers_text": parsed.records.layers_text,
        "warnings": parsed.records.warnings[-20:],
    }
    path = cache.store(key, plan, meta) if cache is not None else None
    return CachedEngine(key, plan, meta, path, cached=False)


def _config(parsed: ParsedNetwork, options: BuildOptions, where: str) -> Any:
    flavour, trt = parsed.flavour, parsed.flavour.module
    config = parsed.builder.create_builder_config()
    if options.pool_limit is not None:
        config.set_memory_pool_limit(flavour.enum("MemoryPoolType", "WORKSPACE"), int(options.pool_limit))
    if options.opt_level is not None:
        if not 0 <= options.opt_level <= 5:
            raise TrtdbgError(f"builder optimization level {options.opt_level} is out of range; use 0 to 5")
        config.builder_optimization_level = int(options.opt_level)
    if flavour.has("ProfilingVerbosity", "DETAILED"):
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer ↔ ONNX mapping needs it
    if flavour.has("BuilderFlag", "TF32"):
        (config.set_flag if options.tf32 else config.clear_flag)(trt.BuilderFlag.TF32)
    dynamic = dynamic_inputs(parsed)
    given = {name for p in options.profiles for name, *_ in p}
    missing = sorted(set(dynamic) - given)
    if missing:
        name = missing[0]
        raise TrtdbgError(
            f"input '{name}' of {where} has a dynamic shape {dynamic[name]}; give its shape with "
            f"--shapes {name}:1x... (or min/opt/max shapes) so TensorRT can build a profile"
        )
    inputs = {t.name for t in parsed.inputs()}
    for prof in options.profiles:
        profile = parsed.builder.create_optimization_profile()
        for name, lo, opt, hi in prof:
            if name not in inputs:
                raise TrtdbgError(
                    f"shape given for '{name}', which is not an input of {where}; inputs: {', '.join(sorted(inputs))}"
                )
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
    if options.timing_cache and flavour.timing_cache:
        try:
            blob = Path(options.timing_cache).read_bytes()
        except FileNotFoundError:
            blob = b""
        except OSError as exc:
            raise TrtdbgError(
                f"cannot read timing cache {options.timing_cache}: {exc.strerror}; "
                "pass a readable file or drop --timing-cache"
            ) from exc
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, True)  # a cache from another version/GPU is ignored, not fatal
    return config


def _save_timing_cache(flavour: Flavour, config: Any, path: str | None) -> list[str]:
    if not path:
        return []
    if not flavour.timing_cache:
        return [f"{flavour.label} has no timing cache (its timing-cache calls are no-ops); {path} not written"]
    cache = config.get_timing_cache()
    if cache is not None:
        atomic_write_bytes(path, bytes(cache.serialize()))
    return []


def _build_message(flavour: Flavour, where: str, reason: str | None) -> str:
    reason = reason or "TensorRT gave no reason"
    low = reason.lower()
    if "out of memory" in low or "outofmemory" in low or "memoryallocation" in low:
        hint = "the GPU ran out of memory while building; lower --trt-pool-limit, use smaller shapes, or free the GPU"
    elif "optimization profile" in low:
        hint = "give shapes for the dynamic inputs (--shapes NAME:1x3x224x224)"
    elif "cudaerror" in low or "cuda driver" in low or "no cuda-capable" in low:
        hint = "TensorRT needs an NVIDIA GPU with a working driver for this build"
    else:
        hint = "rerun with --debug, or simplify the model around the layer named above"
    return f"{flavour.label} failed to build an engine for {where}: {_short(reason)}; {hint}"
