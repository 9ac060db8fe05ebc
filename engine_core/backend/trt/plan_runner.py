"""A saved TensorRT engine (``--subject-model x.plan``) as a runner: deserialized, never rebuilt.

An engine exposes only its I/O tensors, so only the tensors that are engine outputs can be compared (build the
engine with more tensors marked, or compare ``--subject trt --mark ...``, to see inside). Inputs come from MODEL's
data source; each feed picks the optimization profile that holds it. Deserializing needs the GPU (and TensorRT
flavour) the engine was built for; elsewhere it is a one-line error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from engine_core.backend.trt.build import CachedEngine
from engine_core.backend.trt.devmem import open_device_memory
from engine_core.backend.trt.flavour import load_flavour, make_logger
from engine_core.backend.trt.inspector import deserialize
from engine_core.backend.trt.runner import TrtOptions, TrtRunner, _Loaded
from engine_core.errors import TrtdbgError
from engine_core.types import TensorMeta


class TrtPlanRunner(TrtRunner):
    """Runs a serialized engine file (``.plan``/``.engine``/``.trt``) on each feed."""

    def __init__(
        self,
        plan_path: str | os.PathLike[str],
        options: TrtOptions | None = None,
        inputs: Sequence[TensorMeta] = (),
        name: str | None = None,
    ) -> None:
        import onnx

        super().__init__(onnx.ModelProto(), None, options, name=name or f"trt-plan:{plan_path}")
        self.plan_path = Path(plan_path)
        self._plan_inputs = list(inputs)
        self._plan_bytes: bytes | None = None
        self._engine: _Loaded | None = None

    def _where(self) -> str:
        return str(self.plan_path)

    def prepare(self) -> None:  # type: ignore[override]  # an engine file has no parsed network
        """Import TensorRT and read the engine file (no GPU needed)."""
        if self._plan_bytes is not None:
            return None
        try:
            self._plan_bytes = self.plan_path.read_bytes()
        except OSError as exc:
            raise TrtdbgError(f"cannot read engine {self.plan_path}: {exc.strerror or exc}; check the path") from exc
        if not self._plan_bytes:
            raise TrtdbgError(f"engine {self.plan_path} is empty; build it again")
        self.flavour = load_flavour(self.options.module)
        self._inputs = list(self._plan_inputs)
        return None

    def activate(self) -> None:
        """Deserialize the engine once (its outputs become the observable tensors), then open the GPU memory.

        Deserializing comes first: it is TensorRT's own call and says why an engine cannot load here.
        """
        self.prepare()
        assert self.flavour is not None and self._plan_bytes is not None
        if self._engine is None:
            if self._runtime is None:
                self._rt_logger = make_logger(self.flavour)
                self._runtime = self.flavour.module.Runtime(self._rt_logger)
            engine = deserialize(self.flavour, self._runtime, self._rt_logger, self._plan_bytes, str(self.plan_path))
            context = engine.create_execution_context()
            if context is None:
                raise TrtdbgError(f"{self.name}: cannot create an execution context for {self.plan_path}; free the GPU")
            built = CachedEngine("plan-file", self._plan_bytes, {}, self.plan_path, True)
            self._engine = self._loaded[("plan",)] = _Loaded(built, engine, context)  # freed by deactivate
            trt = self.flavour.module
            io = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            self._outputs = [n for n in io if engine.get_tensor_mode(n) != trt.TensorIOMode.INPUT]
            self._observable = list(self._outputs)
        if self._mem is None:
            self._mem = open_device_memory(self.options.device_memory)
            self._stream = self._mem.create_stream()

    def deactivate(self) -> None:
        self._engine = None
        super().deactivate()

    def output_names(self) -> list[str]:
        self.activate()
        return list(self._outputs)

    def observable_tensors(self) -> list[str]:
        return self.output_names()

    def unobservable_tensors(self) -> dict[str, str]:
        return {}

    def infer(self, feed: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        self.activate()
        assert self._engine is not None
        names = list(outputs) if outputs else list(self._outputs)
        missing = [n for n in names if n not in self._outputs]
        if missing:
            raise TrtdbgError(
                f"tensor '{missing[0]}' is not an output of engine {self.plan_path}; an engine exposes only its "
                "I/O tensors (compare --subject trt --mark ... builds one with more outputs)"
            )
        return self._execute(self._engine, feed, names)
