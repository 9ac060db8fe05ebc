"""Where compared tensors come from: a live backend run, or a saved outputs file."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import numpy as np

from engine_core.backend.base import Runner
from engine_core.errors import TrtdbgError


class OutputSource(ABC):
    """Produces named tensors for one iteration's feed."""

    label: str

    def open(self) -> None:
        """Acquire resources (sessions)."""

    def close(self) -> None:
        """Release resources."""

    def expose(self, names: Sequence[str]) -> None:
        """Later fetches ask for some of ``names`` at a time: prepare for all of them once (default: nothing)."""

    @abstractmethod
    def available(self) -> list[str] | None:
        """Names this source can produce, or ``None`` when any observable tensor can be requested."""

    @abstractmethod
    def fetch(self, iteration: int, feed: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
        """The tensors ``names`` for iteration ``iteration`` (whose inputs are ``feed``)."""


class RunnerSource(OutputSource):
    """Runs a backend on each feed, returning the requested tensors."""

    def __init__(self, runner: Runner, label: str | None = None) -> None:
        self.runner = runner
        self.label = label or runner.name

    def open(self) -> None:
        self.runner.activate()

    def close(self) -> None:
        self.runner.deactivate()

    def expose(self, names: Sequence[str]) -> None:
        self.runner.expose(names)

    def available(self) -> list[str] | None:
        return None

    def fetch(self, iteration: int, feed: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
        return self.runner.infer(feed, list(names))


class SavedSource(OutputSource):
    """Tensors loaded from a saved outputs file (Polygraphy JSON, directory, or .npz)."""

    def __init__(self, path: str, iterations: Sequence[Mapping[str, np.ndarray]], runner_name: str) -> None:
        self.path = path
        self.runner_name = runner_name
        self.iterations = list(iterations)
        self.label = f"{runner_name} (loaded from {path})"
        self._names = list(self.iterations[0]) if self.iterations else []

    def available(self) -> list[str] | None:
        return list(self._names)

    def fetch(self, iteration: int, feed: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
        if iteration >= len(self.iterations):
            raise TrtdbgError(
                f"{self.path} holds {len(self.iterations)} iteration(s) but iteration {iteration} was requested; "
                "use as many inputs as the saved outputs have (--load-inputs with the inputs saved alongside)"
            )
        saved = self.iterations[iteration]
        missing = [n for n in names if n not in saved]
        if missing:
            raise TrtdbgError(f"{self.path}: iteration {iteration} has no tensor '{missing[0]}'")
        return {n: saved[n] for n in names}
