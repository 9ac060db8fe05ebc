"""Typed user options shared by every command: where input data comes from, and what a tolerance is.

The CLI fills them from its argument groups (:mod:`tui.cli.args`), the app from its forms; the engine
takes only these, never an ``argparse`` namespace. Each validates on construction: a nonsense value
raises :class:`~engine_core.errors.TrtdbgError` (one line, exit code 2) before any work starts.
Values are kept as the user wrote them (``NAME:1x3x224x224``, ``[NAME:]VALUE``) so they round-trip
through saved state files; :meth:`DataOptions.source` and :meth:`ToleranceOptions.settings` give the
parsed forms.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from engine_core.errors import TrtdbgError

if TYPE_CHECKING:
    import numpy as np

    from engine_core.comparator.tolerances import CompareSettings
    from engine_core.data.source import DataSource
    from engine_core.jobs import JobEvents
    from engine_core.types import TensorMeta


def _strings(values: Sequence[str] | str | None) -> tuple[str, ...]:
    """A tuple of option values (a lone string is one value, not characters)."""
    if values is None:
        return ()
    if isinstance(values, str):
        return (values,)
    return tuple(str(v) for v in values)


def _option_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _differences(new: Any, old: Any) -> list[str]:
    """``--option NEW (was OLD)`` for each field of two dataclasses of one type that differ."""
    out = []
    for f in fields(new):
        if not f.compare:
            continue
        a, b = getattr(new, f.name), getattr(old, f.name)
        if a != b:
            out.append(f"{_option_name(f.name)} {_show(a)} (was {_show(b)})")
    return out


def _show(value: Any) -> str:
    text = " ".join(value) if isinstance(value, tuple) else ("" if value is None else str(value))
    return text or "(none)"


@dataclass(frozen=True)
class DataOptions:
    """Where a run's input samples come from: random data (default), a data-loader script, or saved inputs.

    As in Polygraphy, a script or loaded inputs replace random data; seed, value ranges, iterations and
    shapes are then ignored with a warning.
    """

    shapes: tuple[str, ...] = ()
    """Shapes of dynamic inputs, ``NAME:1x3x640x640`` or ``NAME:[1,3,640,640]`` (``--shapes``/``--input-shapes``)."""
    seed: int = 1
    """Random seed; sample i uses seed + i."""
    val_range: tuple[str, ...] = ()
    """Value ranges, ``[lo,hi]`` (default for all inputs) or ``NAME:[lo,hi]``; default [0,1]."""
    iterations: int = 1
    """Number of random input samples."""
    data_loader_script: str | None = None
    """``PATH.py[:FUNC]`` whose FUNC (default ``load_data``) yields feed dicts."""
    load_inputs: tuple[str, ...] = ()
    """Saved input files (Polygraphy JSON, its directory form, or ``.npz``), their samples in order."""
    loader_timeout: float | None = field(default=None, compare=False)
    """Seconds one step of the data-loader script (import, call, one sample) may take; ``None``: the default
    (:data:`~engine_core.data.script.DEFAULT_TIMEOUT`). Not part of the data's identity (a resume may change it)."""

    def __post_init__(self) -> None:
        from engine_core.data.generate import parse_val_range
        from engine_core.data.shapes import parse_shapes

        for name in ("shapes", "val_range", "load_inputs"):
            object.__setattr__(self, name, _strings(getattr(self, name)))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise TrtdbgError(f"--seed must be a whole number >= 0 (got {self.seed!r})")
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) or self.iterations < 1:
            raise TrtdbgError(f"--iterations (input samples) must be 1 or more (got {self.iterations!r})")
        if self.data_loader_script is not None and not self.data_loader_script.strip():
            raise TrtdbgError("--data-loader-script: give PATH.py[:FUNC]")
        if self.data_loader_script and self.load_inputs:
            raise TrtdbgError("a data loader script and loaded inputs cannot be used together; give one of them")
        if any(not p.strip() for p in self.load_inputs):
            raise TrtdbgError("--load-inputs: an empty file name was given")
        parse_shapes(self.shapes)
        parse_val_range(self.val_range)
        t = self.loader_timeout
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t < 1e6):
            raise TrtdbgError(f"--loader-timeout must be a number of seconds > 0 (got {t!r})")

    @property
    def generated(self) -> bool:
        """True for random inputs (no data loader script, no loaded inputs)."""
        return not (self.data_loader_script or self.load_inputs)

    @property
    def given(self) -> bool:
        """True when any option differs from the defaults (random data, seed 1, one sample)."""
        return self != DataOptions()

    def source(self, metas: Sequence[TensorMeta], model: str | os.PathLike[str] | None = None) -> DataSource:
        """The data source for a model with inputs ``metas`` (feeds are checked against them); with the ``model``
        file, guessed random-input shapes are checked by running it (the one shape policy)."""
        from engine_core.data.source import make_data_source

        return make_data_source(
            metas,
            shapes=self.shapes,
            seed=self.seed,
            val_range=self.val_range,
            iterations=self.iterations,
            script=self.data_loader_script,
            load_inputs=self.load_inputs,
            model=model,
            loader_timeout=self.loader_timeout,
        )

    def read(
        self, metas: Sequence[TensorMeta], model: str | os.PathLike[str] | None, events: JobEvents
    ) -> tuple[DataSource, list[dict[str, np.ndarray]]]:
        """:meth:`source` and every feed of it, reporting the job's stages (``choosing input shapes`` or ``opening
        the input data``, then each sample: :func:`~engine_core.data.source.read_feeds`)."""
        from engine_core.data.source import read_feeds

        events.stage("choosing input shapes" if self.generated else "opening the input data")
        source = self.source(metas, model=model)
        return source, read_feeds(source, events)

    def samples(
        self,
        metas: Sequence[TensorMeta],
        model: str | os.PathLike[str] | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> list[dict[str, np.ndarray]]:
        """Every sample of :meth:`source`; what the source warns about goes to ``on_warning``."""
        source = self.source(metas, model=model)
        samples = list(source)
        if on_warning is not None:
            for w in source.warnings:
                on_warning(w)
        return samples

    def absolute(self) -> DataOptions:
        """The same options with file paths made absolute (a resume from another directory finds the same files)."""
        script = self.data_loader_script
        if script:
            path, sep, func = script.rpartition(":")
            if not sep or not path.endswith(".py"):
                path, func = script, ""
            script = os.path.abspath(path) + (f":{func}" if func else "")
        return replace(self, data_loader_script=script, load_inputs=tuple(os.path.abspath(p) for p in self.load_inputs))

    def differences(self, other: DataOptions) -> list[str]:
        """What differs from ``other``, one ``--option NEW (was OLD)`` item each."""
        return _differences(self, other)


@dataclass(frozen=True)
class ToleranceOptions:
    """When two tensors count as equal: Polygraphy's ``simple`` comparator options plus trtdbg's extensions.

    Per-tensor values are ``[NAME:]VALUE`` items (split at the last ``:``, so names may contain ``:``);
    empty ``atol``/``rtol`` mean the command's default (1e-5 for compare and reduce, per precision in bisect).
    """

    atol: tuple[str, ...] = ()
    rtol: tuple[str, ...] = ()
    check_error_stat: tuple[str, ...] = ()
    """``elemwise`` (default), ``max``, ``mean``, ``median`` or ``quantile``, per tensor."""
    error_quantile: tuple[str, ...] = ()
    """Quantile for ``quantile`` (default 0.99), per tensor."""
    infinities_compare_equal: bool | None = None
    """Equal ±inf at one position count as equal; ``None``: yes, unless ``polygraphy_defaults``."""
    rel_mode: str = "polygraphy"
    """``polygraphy``: |s-r|/|r|; ``robust``: |s-r|/(|r|+atol)."""
    check_shapes: bool = True
    int_atol: float | None = None
    """Absolute tolerance of integer tensors narrower than 64 bits (quantized data); ``None``: one unit,
    or ``atol`` with ``polygraphy_defaults``."""
    polygraphy_defaults: bool = False
    """Polygraphy's exact rules: matched ±inf fail, integers judged by ``atol`` (``--polygraphy-defaults``)."""

    def __post_init__(self) -> None:
        for name in ("atol", "rtol", "check_error_stat", "error_quantile"):
            object.__setattr__(self, name, _strings(getattr(self, name)))
        self.settings()

    @property
    def given(self) -> bool:
        """True when any option differs from the defaults."""
        return self != ToleranceOptions()

    def settings(self, default_tolerance: str | None = None) -> CompareSettings:
        """The parsed per-tensor settings; ``default_tolerance`` is atol and rtol when none are given."""
        from engine_core.comparator.tolerances import CompareSettings

        default = [default_tolerance] if default_tolerance else None
        return CompareSettings.from_specs(
            atol=self.atol or default,
            rtol=self.rtol or default,
            check_error_stat=self.check_error_stat or None,
            error_quantile=self.error_quantile or None,
            infinities_compare_equal=self.infinities_compare_equal,
            rel_mode=self.rel_mode,
            check_shapes=self.check_shapes,
            int_atol=self.int_atol,
            polygraphy_defaults=self.polygraphy_defaults,
        )

    def differences(self, other: ToleranceOptions) -> list[str]:
        """What differs from ``other``, one ``--option NEW (was OLD)`` item each."""
        return _differences(self, other)
