"""TensorRT runner: parse and build (cached) per set of observed tensors and input shapes, then execute.

``infer(feed, outputs=[...])`` builds an engine that has the requested tensors marked (outputs, or
debug tensors with ``mark_mode='debug'``), so every returned tensor is the value of exactly that ONNX
tensor — never a fused neighbour. Marking changes fusions: the model outputs of an engine with
marks may differ slightly from the production engine; :meth:`TrtRunner.fusion` shows what the
production engine fuses away. Engines are cached in the workspace (:class:`EngineCache`).

Execution (thin, needs an NVIDIA GPU TensorRT can run on): ``set_input_shape``, device buffers from
:mod:`devmem`, ``set_tensor_address`` per I/O tensor, ``execute_async_v3`` on a stream.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from engine_core.backend.base import Runner
from engine_core.backend.trt.build import (
    BuildOptions,
    CachedEngine,
    EngineCache,
    ParsedNetwork,
    build_engine,
    dynamic_inputs,
    model_digest,
    parse_onnx,
)
from engine_core.backend.trt.devmem import DeviceMemory, open_device_memory
from engine_core.backend.trt.flavour import Flavour, load_flavour, make_logger
from engine_core.backend.trt.inspector import EngineInfo, deserialize, from_layer_text, inspect_plan
from engine_core.errors import TrtdbgError
from engine_core.types import TensorMeta

Shape = tuple[int, ...]


@dataclass(frozen=True)
class TrtOptions:
    """TensorRT settings from the command line (``--trt-*`` options)."""

    module: str = "auto"
    """``auto`` (``tensorrt``, else ``tensorrt_rtx``), ``tensorrt`` or ``tensorrt_rtx``."""
    precision: str = "fp32"
    """Label of the precision the ONNX carries (the precision plan rewrote it), for names and the cache key."""
    profiles: tuple = ()
    """Explicit optimization profiles (:meth:`BuildOptions.make_profiles`); default: each feed's own shapes."""
    pool_limit: int | None = None
    opt_level: int | None = None
    timing_cache: str | None = None
    tf32: bool = False
    mark_mode: str = "output"
    weak: tuple[tuple[str, str], ...] = ()
    """Legacy weak typing (TensorRT 10 only): see :mod:`engine_core.backend.trt.legacy`."""
    device_memory: str = "auto"
    cache_dir: str | None = None
    """Engine cache folder (default: ``engines/`` in the model's workspace); empty string disables caching."""


@dataclass
class _Loaded:
    built: CachedEngine
    engine: Any
    context: Any
    buffers: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Tensor name → (device pointer, capacity in bytes), reused across runs."""


class TrtRunner(Runner):
    """Runs an ONNX model through TensorRT (10.x, 11.x or TensorRT-RTX)."""

    calibration_data: Sequence[Mapping[str, np.ndarray]] | None = None
    """Feeds for legacy INT8 calibration (default: random data, as Polygraphy without a data loader)."""

    def __init__(
        self,
        model: onnx.ModelProto,
        model_path: str | os.PathLike[str] | None = None,
        options: TrtOptions | None = None,
        observable: Sequence[str] = (),
        unobservable: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> None:
        self.model = model
        self.model_path = Path(model_path) if model_path else None
        self.options = options or TrtOptions()
        self.name = name or "trt"
        self._candidates = list(observable)
        self._hidden = dict(unobservable or {})
        self.flavour: Flavour | None = None
        self._parsed: ParsedNetwork | None = None
        self._digest = ""
        self._observable: list[str] = []
        self._unobservable: dict[str, str] = {}
        self._aliases: dict[str, str] = {}
        self._inputs: list[TensorMeta] = []
        self._outputs: list[str] = []
        self._loaded: dict[tuple, _Loaded] = {}
        self._mem: DeviceMemory | None = None
        self._stream: int | None = None
        self._runtime: Any = None
        self._rt_logger: Any = None
        self._cache: EngineCache | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def prepare(self) -> ParsedNetwork:
        """Import TensorRT and parse the model (no GPU needed); idempotent."""
        if self._parsed is not None:
            return self._parsed
        from engine_core.backend.trt.mapping import network_observability
        from engine_core.model.index import ModelIndex

        self.flavour = load_flavour(self.options.module)
        strongly_typed = not self.options.weak
        if not strongly_typed:
            from engine_core.backend.trt.legacy import require_weak_typing

            require_weak_typing(self.flavour)
        self._parsed = parse_onnx(self.flavour, self.model, self.model_path, strongly_typed=strongly_typed)
        self._digest = model_digest(self.model, self.model_path)
        index = ModelIndex(self.model, self.model_path)
        obs = network_observability(self._parsed, index, self._candidates, self._hidden)
        self._observable, self._aliases = obs.observable, obs.aliases
        self._unobservable = {**self._hidden, **obs.unobservable}
        inits = {t.name for t in self.model.graph.initializer}
        self._inputs = [_meta(vi) for vi in self.model.graph.input if vi.name not in inits]
        self._outputs = [vi.name for vi in self.model.graph.output]
        self._cache = self._engine_cache()
        return self._parsed

    def activate(self) -> None:
        """Parse, then open the GPU (device memory, stream, runtime); fails clearly without a usable GPU."""
        self.prepare()
        if self._mem is not None:
            return
        assert self.flavour is not None
        self._mem = open_device_memory(self.options.device_memory)
        self._stream = self._mem.create_stream()
        self._rt_logger = make_logger(self.flavour)
        self._runtime = self.flavour.module.Runtime(self._rt_logger)

    def deactivate(self) -> None:
        for loaded in self._loaded.values():
            self._free(loaded)
        self._loaded.clear()
        if self._mem is not None:
            if self._stream is not None:
                self._mem.destroy_stream(self._stream)
            self._mem.close()
        self._mem = self._stream = self._runtime = None

    # -- metadata --------------------------------------------------------------------------
    def _describe(self) -> None:
        self.prepare()

    def observable_tensors(self) -> list[str]:
        self.prepare()
        return super().observable_tensors()

    def unobservable_tensors(self) -> dict[str, str]:
        self.prepare()
        return super().unobservable_tensors()

    # -- building --------------------------------------------------------------------------
    def build_options(self, extra: Sequence[str] = (), shapes: Mapping[str, Shape] | None = None) -> BuildOptions:
        """Build options for an engine exposing ``extra`` tensors, with profiles fitting ``shapes``."""
        parsed = self.prepare()
        o = self.options
        profiles = o.profiles
        if not profiles:
            dyn = dynamic_inputs(parsed)
            if dyn:
                missing = [n for n in dyn if not shapes or n not in shapes]
                if missing or not shapes:
                    raise TrtdbgError(
                        f"input '{missing[0]}' has a dynamic shape {dyn[missing[0]]}; give its shape "
                        f"with --shapes {missing[0]}:1x... so TensorRT can build a profile"
                    )
                profiles = BuildOptions.make_profiles([{n: (shapes[n], shapes[n], shapes[n]) for n in dyn}])
        marks = tuple(sorted({self._aliases.get(n, n) for n in extra}))
        return BuildOptions(
            profiles=profiles,
            pool_limit=o.pool_limit,
            opt_level=o.opt_level,
            tf32=o.tf32,
            marks=marks,
            mark_mode=o.mark_mode,
            precision=o.precision,
            weak=o.weak,
            timing_cache=o.timing_cache,
        )

    def build(self, extra: Sequence[str] = (), shapes: Mapping[str, Shape] | None = None) -> CachedEngine:
        """The serialized engine exposing ``extra`` (from the cache when an identical one was built)."""
        parsed = self.prepare()
        options = self.build_options(extra, shapes)
        configure = None
        if options.weak:
            from engine_core.backend.trt.legacy import weak_typing_configurator

            configure = weak_typing_configurator(options.weak, self)
        self.report_stage("building the TensorRT engine (or reading it from the cache)")
        return build_engine(
            parsed, options, digest=self._digest, cache=self._cache, configure=configure, where=self._where()
        )

    def calibration_feeds(self) -> Sequence[Mapping[str, np.ndarray]]:
        """Feeds for legacy INT8 calibration."""
        if self.calibration_data is not None:
            return self.calibration_data
        from engine_core.data.source import make_data_source

        return list(make_data_source(self.input_metadata(), iterations=8))

    def engine_info(self, built: CachedEngine) -> EngineInfo | None:
        """Layer information of ``built`` from its build log (no GPU needed), if TensorRT logged it."""
        text = built.meta.get("layers_text")
        return from_layer_text(text, "build log") if text else None

    def fusion(self, built: CachedEngine | None = None) -> Any:
        """:class:`~engine_core.backend.trt.mapping.FusionMap` of ``built`` (default: the unmarked engine)."""
        from engine_core.backend.trt.mapping import fusion_map
        from engine_core.model.index import ModelIndex

        built = built or self.build(shapes=_hint_shapes(self._inputs, self.model_path))
        info = self.engine_info(built)
        if info is None and self._mem is not None:
            info = inspect_plan(self.flavour, built.plan, self._where())
        if info is None:
            raise TrtdbgError(
                f"{self.flavour.label if self.flavour else 'TensorRT'} logged no layer information "
                "for this engine and no GPU is open to inspect it"
            )
        return fusion_map(ModelIndex(self.model, self.model_path), info)

    # -- inference -------------------------------------------------------------------------
    def infer(self, feed: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        self.prepare()
        names = list(outputs) if outputs else list(self._outputs)
        extra = [n for n in names if n not in self._outputs]
        bad = [n for n in extra if n in self._unobservable or n not in set(self._observable) | set(self._aliases)]
        if bad:
            reason = self._unobservable.get(bad[0], "not a tensor of this model")
            raise TrtdbgError(f"tensor '{bad[0]}' is not observable in {self.name}: {reason}")
        self.activate()
        shapes = {k: tuple(np.shape(v)) for k, v in feed.items()}
        loaded = self._load(extra, shapes)
        values = self._execute(loaded, feed, [self._aliases.get(n, n) for n in names])
        return {n: values[self._aliases.get(n, n)] for n in names}

    def _load(self, extra: Sequence[str], shapes: Mapping[str, Shape]) -> _Loaded:
        options = self.build_options(extra, shapes)
        key = (options.marks, options.profiles)
        loaded = self._loaded.get(key)
        if loaded is not None:
            return loaded
        if len(self._loaded) >= 2:  # keep the base engine and the current batch only
            for k in [k for k in self._loaded if k[0]]:
                self._free(self._loaded.pop(k))
        built = self.build(extra, shapes)
        try:
            engine = deserialize(self.flavour, self._runtime, self._rt_logger, built.plan, self._where())
        except TrtdbgError:
            if not built.cached or self._cache is None:
                raise
            self._cache.discard(built.key)  # built elsewhere (another GPU or version): rebuild once
            built = self.build(extra, shapes)
            engine = deserialize(self.flavour, self._runtime, self._rt_logger, built.plan, self._where())
        context = engine.create_execution_context()
        if context is None:
            raise TrtdbgError(
                f"{self.name}: cannot create an execution context for {self._where()} "
                f"({self._rt_logger.records.error_since(0) or 'out of GPU memory?'}); free the GPU"
            )
        loaded = _Loaded(built, engine, context)
        self._loaded[key] = loaded
        return loaded

    def _execute(self, loaded: _Loaded, feed: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
        mem, stream, engine, ctx = self._mem, self._stream, loaded.engine, loaded.context
        assert self.flavour is not None and mem is not None and stream is not None
        trt = self.flavour.module
        io = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in io if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        profile = _profile_for(engine, inputs, feed)
        if engine.num_optimization_profiles > 1 and ctx.active_optimization_profile != profile:
            ctx.set_optimization_profile_async(profile, stream)
        keep: list[np.ndarray] = []
        for name in inputs:
            if name not in feed:
                raise TrtdbgError(f"{self.name}: the feed has no value for input '{name}'")
            arr = _as_dtype(feed[name], _np_dtype(trt, engine.get_tensor_dtype(name), name), name)
            if not ctx.set_input_shape(name, arr.shape):
                raise TrtdbgError(
                    f"{self.name}: input '{name}' shape {arr.shape} is outside the engine's profile "
                    f"{tuple(engine.get_tensor_profile_shape(name, profile))}; adjust the shapes"
                )
            keep.append(arr)
            if _on_host(trt, engine, name):
                ctx.set_tensor_address(name, arr.ctypes.data)
            else:
                ptr = self._buffer(loaded, name, arr.nbytes)
                if arr.nbytes:
                    mem.htod(ptr, arr, stream)
                ctx.set_tensor_address(name, ptr)
        out_meta: dict[str, tuple[Shape, np.dtype, int]] = {}
        for name in io:
            if name in inputs:
                continue
            shape = tuple(ctx.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise TrtdbgError(
                    f"{self.name}: output '{name}' has a data-dependent shape {shape}, which trtdbg "
                    "does not run on TensorRT yet; compare it on ONNX Runtime"
                )
            dtype = _np_dtype(trt, engine.get_tensor_dtype(name), name)
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            ptr = self._buffer(loaded, name, nbytes)
            ctx.set_tensor_address(name, ptr)
            out_meta[name] = (shape, dtype, ptr)
        debug = [n for n in names if n not in out_meta]
        captured = self._listen(ctx, debug) if debug else {}
        mark = self._rt_logger.records.mark()
        if not ctx.execute_async_v3(stream):
            reason = self._rt_logger.records.error_since(mark) or "execute_async_v3 returned False"
            raise TrtdbgError(f"{self.name}: TensorRT failed to run {self._where()}: {reason}")
        result = {}
        for name in names:
            if name in captured:
                result[name] = captured[name]
                continue
            if name not in out_meta:
                raise TrtdbgError(
                    f"{self.name}: TensorRT reported no value for debug tensor '{name}'; mark it as "
                    "an output instead (--trt-mark-mode output)"
                )
            shape, dtype, ptr = out_meta[name]
            result[name] = mem.from_device(ptr, shape, dtype, stream)
        mem.synchronize(stream)
        del keep
        return result

    def _listen(self, ctx: Any, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Install a debug listener that copies ``names`` (debug tensors) to host during the run."""
        assert self.flavour is not None and self._mem is not None
        trt, mem = self.flavour.module, self._mem
        captured: dict[str, np.ndarray] = {}
        wanted = set(names)

        class _Listener(trt.IDebugListener):  # type: ignore[name-defined]
            def __init__(self) -> None:
                trt.IDebugListener.__init__(self)

            def process_debug_tensor(
                self, addr: Any, location: Any, dtype: Any, shape: Any, name: str, stream: Any
            ) -> bool:
                if name in wanted:  # the data is valid only during this call: copy and wait
                    arr = np.empty(tuple(shape), _np_dtype(trt, dtype, name))
                    if arr.nbytes:
                        mem.dtoh(arr, _pointer(addr), int(stream))
                        mem.synchronize(int(stream))
                    captured[name] = arr
                return True

        listener = _Listener()
        ctx.set_debug_listener(listener)
        for name in names:
            ctx.set_tensor_debug_state(name, True)
        captured["__listener__"] = listener  # keep it alive during the run
        return captured

    def layer_times(self, feed: Mapping[str, np.ndarray], iterations: int = 10) -> dict[str, float]:
        """Mean milliseconds per engine layer over ``iterations`` profiled runs (TensorRT ``IProfiler``)."""
        self.activate()
        assert self.flavour is not None
        trt = self.flavour.module
        loaded = self._load([], {k: tuple(np.shape(v)) for k, v in feed.items()})
        totals: dict[str, float] = {}

        class _Profiler(trt.IProfiler):  # type: ignore[name-defined]
            def __init__(self) -> None:
                trt.IProfiler.__init__(self)

            def report_layer_time(self, layer_name: str, ms: float) -> None:
                totals[layer_name] = totals.get(layer_name, 0.0) + float(ms)

        profiler = _Profiler()
        loaded.context.profiler = profiler
        try:
            for _ in range(max(1, iterations)):
                self._execute(loaded, feed, [])
        finally:
            try:
                loaded.context.profiler = None
            except TypeError:  # bindings that do not accept None keep the profiler; harmless for later runs
                pass
        return {k: v / max(1, iterations) for k, v in totals.items()}

    # -- internals -------------------------------------------------------------------------
    def _buffer(self, loaded: _Loaded, name: str, nbytes: int) -> int:
        ptr, cap = loaded.buffers.get(name, (0, -1))
        if cap >= nbytes:
            return ptr
        assert self._mem is not None
        if ptr:
            self._mem.free(ptr)
        ptr = self._mem.alloc(nbytes)
        loaded.buffers[name] = (ptr, max(nbytes, 1))
        return ptr

    def _free(self, loaded: _Loaded) -> None:
        if self._mem is not None:
            for ptr, _ in loaded.buffers.values():
                self._mem.free(ptr)
        loaded.buffers.clear()

    def _where(self) -> str:
        return str(self.model_path) if self.model_path else f"model '{self.model.graph.name}'"

    def _engine_cache(self) -> EngineCache | None:
        if self.options.cache_dir == "":
            return None
        if self.options.cache_dir:
            return EngineCache(self.options.cache_dir)
        from engine_core.workspace import Workspace

        return EngineCache(Workspace.for_model(self.model_path).path("engines"))


def _meta(vi: onnx.ValueInfoProto) -> TensorMeta:
    from engine_core.backend.ort import _meta as ort_meta

    return ort_meta(vi)


def _hint_shapes(metas: Sequence[TensorMeta], model_path: str | os.PathLike[str] | None = None) -> dict[str, Shape]:
    """Concrete input shapes: the one shape policy (:func:`~engine_core.data.shape_choice.choose_shapes`)."""
    from engine_core.data.shape_choice import choose_shapes

    return choose_shapes(list(metas), (), model_path).shapes


def _np_dtype(trt: Any, dtype: Any, name: str) -> np.dtype:
    try:
        return np.dtype(trt.nptype(dtype))
    except (TypeError, KeyError, ValueError) as exc:
        raise TrtdbgError(
            f"tensor '{name}' has TensorRT type {getattr(dtype, 'name', dtype)}, which has no numpy "
            "equivalent; keep engine I/O in float32/float16/int types (add a Cast in the ONNX)"
        ) from exc


def _as_dtype(value: np.ndarray, dtype: np.dtype, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == dtype:
        return np.ascontiguousarray(arr)
    if arr.dtype.kind in "iu" and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise TrtdbgError(f"input '{name}' has values outside {dtype.name}, the type TensorRT uses for it")
    elif not np.can_cast(arr.dtype, dtype, casting="same_kind"):
        raise TrtdbgError(f"input '{name}' is {arr.dtype.name} but the engine expects {dtype.name}")
    return np.ascontiguousarray(arr.astype(dtype))


def _pointer(addr: Any) -> int:
    """A device address TensorRT passes as an int or a PyCapsule."""
    if isinstance(addr, int):
        return addr
    import ctypes

    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return int(get(addr, None))


def _on_host(trt: Any, engine: Any, name: str) -> bool:
    if not hasattr(engine, "get_tensor_location") or not hasattr(trt, "TensorLocation"):
        return False
    return engine.get_tensor_location(name) == trt.TensorLocation.HOST


def _profile_for(engine: Any, inputs: Sequence[str], feed: Mapping[str, np.ndarray]) -> int:
    """The first optimization profile whose min/max shapes hold every input of ``feed`` (else 0)."""
    for k in range(int(getattr(engine, "num_optimization_profiles", 1) or 1)):
        fits = True
        for name in inputs:
            if name not in feed:
                continue
            lo, _, hi = (tuple(s) for s in engine.get_tensor_profile_shape(name, k))
            shape = tuple(np.shape(feed[name]))
            if len(lo) != len(shape) or any(not a <= d <= b for a, d, b in zip(lo, shape, hi)):
                fits = False
                break
        if fits:
            return k
    return 0
