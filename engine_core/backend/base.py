"""The runner interface every backend implements (ONNX Runtime now, TensorRT later)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import numpy as np

from engine_core.jobs import Stage, StageCallback
from engine_core.types import TensorMeta


class Runner(ABC):
    """Runs one model on one backend and can expose intermediate tensors as outputs.

    Lifecycle: ``activate()`` (create sessions), any number of ``infer()``, ``deactivate()``.
    Also usable as a context manager.
    """

    name: str
    _inputs: list[TensorMeta]
    _outputs: list[str]
    _observable: list[str]
    _unobservable: dict[str, str]
    on_stage: StageCallback | None = None
    """Where slow set-up steps are reported (a job's :attr:`~engine_core.jobs.JobEvents.on_stage`)."""
    stage_label: str | None = None
    """The runner as its set-up steps name it (default :attr:`name`; a precision subject names its base runner)."""

    def report_stage(self, what: str, done: int | None = None, total: int | None = None, unit: str = "") -> None:
        """Report a set-up step, ``what (runner)``, to :attr:`on_stage` if set."""
        if self.on_stage is not None:
            self.on_stage(Stage(f"{what} ({self.stage_label or self.name})", done, total, unit))

    @abstractmethod
    def activate(self) -> None:
        """Prepare the backend (load libraries, create sessions)."""

    def deactivate(self) -> None:
        """Release backend resources."""

    def _describe(self) -> None:
        """Learn the model's inputs and outputs (:attr:`_inputs`, :attr:`_outputs`); by default by activating."""
        self.activate()

    def input_metadata(self) -> list[TensorMeta]:
        """The model's inputs, in order."""
        self._describe()
        return list(self._inputs)

    def output_names(self) -> list[str]:
        """The model's own outputs, in order."""
        self._describe()
        return list(self._outputs)

    def observable_tensors(self) -> list[str]:
        """Every tensor that ``infer(..., outputs=...)`` can return, in topological order."""
        return list(self._observable)

    def unobservable_tensors(self) -> dict[str, str]:
        """Tensors that exist in the model but cannot be returned, with the reason."""
        return dict(self._unobservable)

    def expose(self, names: Sequence[str]) -> None:
        """Get ready to return any of ``names``, a few at a time, from later :meth:`infer` calls without new set-up.

        For a backend whose set-up depends on the requested outputs (ONNX Runtime: a session per output set), the
        next set-up exposes all of ``names`` and later ``infer(feed, outputs=[n])`` for ``n`` among them reuse it,
        returning only ``n``. The default does nothing (each output set is set up as it comes)."""

    @abstractmethod
    def infer(self, feed: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Run one inference; return ``outputs`` (default: the model outputs) by name, in order."""

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()
