"""ONNX Runtime backend: CPU or CUDA provider, chosen explicitly, with any top-level tensor observable."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from engine_core.backend.base import Runner
from engine_core.errors import TrtdbgError
from engine_core.model import weights
from engine_core.model.loader import ort_session_options
from engine_core.types import TensorMeta

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
OPT_LEVELS = ("disable", "basic", "extended", "all")


class OrtRunner(Runner):
    """Runs a model in ONNX Runtime; ``infer(feed, outputs=[...])`` returns any top-level tensor.

    A session is created per distinct output set and cached (the last few), so a batch of marked
    tensors costs one session; after :meth:`expose`, any subset of the exposed tensors runs on one session. The CUDA provider is used only when asked for, and activation fails
    with a clear message if ONNX Runtime cannot actually run on it (never a silent CPU fallback).
    """

    def __init__(
        self,
        model: onnx.ModelProto,
        model_path: str | os.PathLike[str] | None = None,
        provider: str = "cpu",
        opt_level: str = "all",
        observable: Sequence[str] = (),
        unobservable: Mapping[str, str] | None = None,
        name: str | None = None,
        allow_tf32: bool = False,
        data_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if provider not in PROVIDERS:
            raise TrtdbgError(f"unknown ONNX Runtime provider '{provider}'; choose one of {', '.join(PROVIDERS)}")
        if opt_level not in OPT_LEVELS:
            raise TrtdbgError(f"unknown graph optimization level '{opt_level}'; choose one of {', '.join(OPT_LEVELS)}")
        self.model = model
        self.model_path = Path(model_path) if model_path else None
        self.data_dir = Path(data_dir) if data_dir else self.model_path.parent if self.model_path else None
        """The folder of the model's external data (``data_dir``, else beside ``model_path``)."""
        self.provider = provider
        self.opt_level = opt_level
        self.allow_tf32 = allow_tf32
        """CUDA only: let FP32 matrix products run in TF32 (ORT's default; off here so FP32 means FP32)."""
        self.name = name or ("ort" if provider == "cpu" else f"ort-{provider}")
        self._observable = list(observable)
        self._unobservable = dict(unobservable or {})
        self._sessions: dict[tuple[str, ...], Any] = {}
        self._exposed: tuple[str, ...] = ()
        """Extra outputs of the session that serves any subset of them (:meth:`expose`)."""
        self._inputs: list[TensorMeta] = []
        self._outputs: list[str] = []
        self._active = False

    # -- lifecycle -------------------------------------------------------------------------
    def activate(self) -> None:
        """Read the model's I/O; the first session is created by the first ``infer`` (for its output set)."""
        if self._active:
            return
        graph = self.model.graph
        inits = {t.name for t in graph.initializer}
        self._inputs = [_meta(vi) for vi in graph.input if vi.name not in inits]
        self._outputs = [vi.name for vi in graph.output]
        self._active = True

    def deactivate(self) -> None:
        self._sessions.clear()
        self._active = False

    def expose(self, names: Sequence[str]) -> None:
        """One session with all of ``names`` (less the model outputs and unobservable tensors) as outputs serves
        every later ``infer`` asking for some of them; ONNX Runtime returns only the names asked for."""
        self.activate()
        self._exposed = tuple(n for n in dict.fromkeys(names) if n not in self._outputs and n not in self._unobservable)

    # -- inference -------------------------------------------------------------------------
    def infer(self, feed: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        self.activate()
        extra = tuple(n for n in (outputs or ()) if n not in self._outputs)
        bad = [n for n in extra if n in self._unobservable]
        if bad:
            raise TrtdbgError(f"tensor '{bad[0]}' is not observable in ONNX Runtime: {self._unobservable[bad[0]]}")
        sess = self._session(self._exposed if self._exposed and set(extra) <= set(self._exposed) else extra)
        names = list(outputs) if outputs else self._outputs
        try:
            values = _run(sess, names, feed)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise TrtdbgError(f"ONNX Runtime ({self.name}) failed to run {self._where()}: {_first_line(exc)}") from exc
        return dict(zip(names, values))

    # -- internals -------------------------------------------------------------------------
    def _where(self) -> str:
        return str(self.model_path) if self.model_path else f"model '{self.model.graph.name}'"

    def _session(self, extra: tuple[str, ...]) -> Any:
        key = tuple(sorted(extra))
        sess = self._sessions.get(key)
        if sess is not None:
            return sess
        import onnxruntime as ort

        if len(self._sessions) >= 2:  # keep the base session and the current batch only
            for k in [k for k in self._sessions if k]:
                del self._sessions[k]
        so = ort_session_options(self.opt_level)
        so.enable_cpu_mem_arena = False  # return intermediate memory after each run (mark-all budgets)
        # Idle worker threads sleep instead of spinning between kernels: half the CPU time of a run, and faster
        # on a loaded machine (mark-all runs, not latency benchmarks, which keep ORT's default).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        provider = PROVIDERS[self.provider]
        if provider not in ort.get_available_providers():
            raise TrtdbgError(
                f"{self.name}: this onnxruntime build has no {provider}; install onnxruntime-gpu or use --ref/--subject ort"
            )
        options = {"use_tf32": "1" if self.allow_tf32 else "0"} if self.provider == "cuda" else {}
        self.report_stage("building ONNX Runtime session", len(self._outputs) + len(extra), None, "outputs")
        try:
            sess = weights.open_session(self._model_with_outputs(extra), self.data_dir, so, [(provider, options)])
        except TrtdbgError:
            raise
        except Exception as exc:
            raise TrtdbgError(f"ONNX Runtime cannot load {self._where()}: {_first_line(exc)}") from exc
        if sess.get_providers()[0] != provider:
            raise TrtdbgError(
                f"{self.name}: ONNX Runtime could not start {provider} (its CUDA 13/cuDNN 9 libraries are not "
                "loadable or there is no GPU); refusing to fall back to CPU silently — fix LD_LIBRARY_PATH or use ort"
            )
        self._sessions[key] = sess
        return sess

    def _model_with_outputs(self, extra: tuple[str, ...]) -> onnx.ModelProto:
        """The model with ``extra`` exposed as outputs (external weights stay external), each with the element
        type the model's ``value_info`` gives it: ONNX Runtime creates a session with thousands of untyped outputs
        far more slowly (a 23k-node graph with 7.7k of them: 4.4 s instead of 2.0 s)."""
        model = self.model
        if extra:
            model = onnx.ModelProto()
            model.CopyFrom(self.model)
            existing = {o.name for o in model.graph.output}
            types = {vi.name: vi.type.tensor_type.elem_type for vi in model.graph.value_info}
            for name in extra:
                if name not in existing:
                    out = model.graph.output.add()
                    out.name = name
                    if types.get(name):
                        out.type.tensor_type.elem_type = types[name]
        return model


def _meta(vi: onnx.ValueInfoProto) -> TensorMeta:
    """TensorMeta of a graph input from its declared type (dims: int, symbolic name, or None)."""
    tt = vi.type.tensor_type
    try:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type))
    except (KeyError, TypeError):
        dtype = np.dtype(np.float32)
    shape = None
    if tt.HasField("shape"):
        shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim)
    return TensorMeta(vi.name, dtype, shape)


def _run(sess: Any, names: Sequence[str], feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """``sess.run``, except that BF16 tensors (which ``run`` cannot return: numpy has no bfloat16) are fetched as
    OrtValues through an IO binding, viewed as ``ml_dtypes.bfloat16`` and returned as exact float32."""
    types = {o.name: o.type for o in sess.get_outputs()}
    if not any(types.get(n) == "tensor(bfloat16)" for n in names):
        return sess.run(list(names), dict(feed))
    binding = sess.io_binding()
    for key, value in feed.items():
        binding.bind_cpu_input(key, np.ascontiguousarray(value))
    for n in names:
        binding.bind_output(n, "cpu")
    sess.run_with_iobinding(binding)
    return [_ort_value_array(v) for v in binding.get_outputs()]


def _ort_value_array(value: Any) -> np.ndarray:
    """A host OrtValue as numpy; bfloat16 through its raw bytes (as ``ml_dtypes.bfloat16``, then exact float32)."""
    if value.data_type() != "tensor(bfloat16)":
        return value.numpy()
    import ctypes

    import ml_dtypes

    shape = tuple(value.shape())
    count = int(np.prod(shape, dtype=np.int64))
    if count == 0:
        return np.zeros(shape, np.float32)
    raw = (ctypes.c_uint16 * count).from_address(value.data_ptr())
    bits = np.frombuffer(memoryview(raw), np.uint16).copy().reshape(shape)
    return bits.view(ml_dtypes.bfloat16).astype(np.float32)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ")
    return text[:400]
