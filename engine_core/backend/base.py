"""The runner interface every backend implements (ONNX Runtime now, TensorRT later)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import numpy as np

from engine_core.types import TensorMeta


class Runner(ABC):
    """Runs one model on one backend and can expose intermediate tensors as outputs.

    Lifecycle: ``activate()`` (create sessions), any number of ``infer()``, ``deactivate()``.
    Also usable as a context manager.
    """

    name: str
    _observable: list[str]
    _unobservable: dict[str, str]

    @abstractmethod
    def activate(self) -> None:
        """Prepare the backend (load libraries, create sessions)."""

    def deactivate(self) -> None:
        """Release backend resources."""

    @abstractmethod
    def input_metadata(self) -> list[TensorMeta]:
        """The model's inputs, in order."""

    @abstractmethod
    def output_names(self) -> list[str]:
        """The model's own outputs, in order."""

    def observable_tensors(self) -> list[str]:
        """Every tensor that ``infer(..., outputs=...)`` can return, in topological order."""
        return list(self._observable)

    def unobservable_tensors(self) -> dict[str, str]:
        """Tensors that exist in the model but cannot be returned, with the reason."""
        return dict(self._unobservable)

    @abstractmethod
    def infer(self, feed: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Run one inference; return ``outputs`` (default: the model outputs) by name, in order."""

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()
