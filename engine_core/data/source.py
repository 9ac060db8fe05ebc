"""Where a run's inputs come from: random data, a data loader script, or saved input files.

:func:`make_data_source` turns the user's data options into one :class:`DataSource`; every feed it
yields has passed :func:`~engine_core.data.validate.check_feed`. As in Polygraphy, a script or
loaded inputs replace random data, so seed, value range, iterations and shapes are then ignored
(with a warning).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

from engine_core.data.generate import RandomDataLoader, parse_val_range, value_range_for
from engine_core.data.script import ScriptDataLoader
from engine_core.data.shape_choice import choose_shapes
from engine_core.data.shapes import format_dims
from engine_core.data.store import load_inputs as load_input_files
from engine_core.data.validate import check_feed
from engine_core.errors import TrtdbgError
from engine_core.jobs import JobEvents
from engine_core.types import TensorMeta

Feed = dict[str, np.ndarray]


class DataSource:
    """Re-iterable feed dicts, checked against the model inputs; NaN/Inf warnings collect in :attr:`warnings`."""

    def __init__(
        self,
        metas: Sequence[TensorMeta],
        produce: Callable[[], Iterable[tuple[str, Feed]]],
        description: str,
        iterations: int | None,
        warnings: Sequence[str] = (),
        generated: bool = False,
    ) -> None:
        self.metas = list(metas)
        self.generated = generated
        """True for random data (made here), False for a script's or loaded inputs."""
        self._produce = produce
        self._description = description
        self.iterations = iterations
        """Number of feeds, or ``None`` when only iterating tells (scripts)."""
        self._warnings: dict[str, None] = dict.fromkeys(warnings)

    @property
    def warnings(self) -> list[str]:
        """Option and data warnings so far (each once), in the order they arose."""
        return list(self._warnings)

    def describe(self) -> str:
        """One line: ``random, seed 1, range [0,1], shapes x:1x3x224x224`` / ``script inputs.py:load_data`` / …"""
        return self._description

    def __iter__(self) -> Iterator[Feed]:
        for where, feed in self._produce():
            self._warnings.update(dict.fromkeys(check_feed(feed, self.metas, where)))
            yield feed


def _range_text(lo: float, hi: float) -> str:
    return f"[{lo:g},{hi:g}]"


def _random_source(
    metas: Sequence[TensorMeta],
    shapes: Sequence[str],
    seed: int,
    val_range: Sequence[str],
    iterations: int,
    model: str | os.PathLike[str] | None,
) -> DataSource:
    ranges = parse_val_range(val_range)
    choice = choose_shapes(metas, shapes, model)
    loader = RandomDataLoader(metas, choice.shapes, seed, ranges, iterations)
    parts = [f"random, seed {seed}"]
    if iterations != 1:
        parts.append(f"{iterations} iterations")
    default = _range_text(*value_range_for("", ranges))
    own = [f"{m.name}:{_range_text(*ranges[m.name])}" for m in metas if m.name in ranges]
    parts.append("range " + " ".join([default, *own]))
    parts.append("shapes " + " ".join(f"{name}:{format_dims(shape)}" for name, shape in loader.shapes.items()))

    def produce() -> Iterator[tuple[str, Feed]]:
        for index, feed in enumerate(loader):
            yield f"random inputs, iteration {index}", feed

    note = choice.note()
    return DataSource(metas, produce, ", ".join(parts), iterations, [note] if note else [], generated=True)


def _loaded_source(metas: Sequence[TensorMeta], paths: Sequence[str], warnings: list[str]) -> DataSource:
    labelled: list[tuple[str, Feed]] = []
    for path in paths:
        feeds = load_input_files([path])
        labelled.extend((f"{path} iteration {index}", feed) for index, feed in enumerate(feeds))
    names = ", ".join(os.fspath(p) for p in paths)
    plural = "" if len(labelled) == 1 else "s"
    source = DataSource(
        metas, lambda: iter(labelled), f"loaded {names} ({len(labelled)} iteration{plural})", len(labelled), warnings
    )
    for _ in source:  # check every feed now: bad files fail before anything runs
        pass
    return source


def _script_source(metas: Sequence[TensorMeta], spec: str, warnings: list[str], timeout: float | None) -> DataSource:
    loader = ScriptDataLoader(spec, timeout=timeout)

    def produce() -> Iterator[tuple[str, Feed]]:
        for index, feed in enumerate(loader):
            yield f"data loader {loader.path_text}:{loader.func_name}, iteration {index}", feed

    return DataSource(metas, produce, loader.describe(), None, warnings)


def make_data_source(
    metas: Sequence[TensorMeta],
    *,
    shapes: Sequence[str] = (),
    seed: int = 1,
    val_range: Sequence[str] = (),
    iterations: int = 1,
    script: str | None = None,
    load_inputs: Sequence[str] = (),
    model: str | os.PathLike[str] | None = None,
    loader_timeout: float | None = None,
) -> DataSource:
    """Random data (default), a data loader ``script`` or ``load_inputs`` files; the last two are exclusive.

    With the ``model`` file, guessed random-input shapes are checked by running it (:func:`choose_shapes`).
    ``loader_timeout``: seconds one step of the script (import, call, one sample) may take (default
    :data:`~engine_core.data.script.DEFAULT_TIMEOUT`).
    """
    if script and load_inputs:
        raise TrtdbgError("a data loader script and loaded inputs cannot be used together; give one of them")
    if not script and not load_inputs:
        return _random_source(metas, shapes, seed, val_range, iterations, model)
    ignored = [
        label
        for label, given in (
            ("seed", seed != 1),
            ("value range", bool(val_range)),
            ("iterations", iterations != 1),
            ("shapes", bool(shapes)),
        )
        if given
    ]
    origin = "the data loader script" if script else "the loaded inputs"
    warnings = [f"{', '.join(ignored)} ignored: inputs come from {origin}"] if ignored else []
    if script:
        return _script_source(metas, script, warnings, loader_timeout)
    return _loaded_source(metas, [load_inputs] if isinstance(load_inputs, str) else list(load_inputs), warnings)


def read_feeds(source: DataSource, events: JobEvents) -> list[Feed]:
    """Every feed of ``source``, reporting ``generating input data: sample k/N`` (or ``reading``) as each is made."""
    total = source.iterations
    what = "generating input data" if source.generated else "reading input data"
    feeds: list[Feed] = []
    events.stage(what, 1, total, "sample")
    for feed in source:
        feeds.append(feed)
        if total is None or len(feeds) < total:
            events.stage(what, len(feeds) + 1, total, "sample")
    return feeds
