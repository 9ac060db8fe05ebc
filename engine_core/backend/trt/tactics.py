"""Tactic listings: TensorRT 10 tactic replays (Polygraphy JSON), timing caches, and engine layer listings, read into
one table (layer → tactic, precision, formats) that ``inspect tactics`` prints and ``trtdbg diff`` compares.

Recording or replaying tactics needs ``IAlgorithmSelector``, which TensorRT 11 removed and TensorRT-RTX never had;
reading and diffing replay files needs no TensorRT at all. Timing-cache entries (``ITimingCache.queryKeys``/``query``)
are read where the module exposes them; TensorRT-RTX keeps timing-cache calls as no-ops. All of it is feature-detected.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine_core.errors import TrtdbgError
from engine_core.safetext import printable_lines

NO_SELECTOR = (
    "{label} has no algorithm selector (IAlgorithmSelector was removed in TensorRT 11 and is absent from "
    "TensorRT-RTX): tactic replays cannot be recorded or replayed with it; replay files written by "
    "TensorRT 10 / Polygraphy can still be read and diffed"
)


@dataclass
class TacticTable:
    """Layer name → properties, from one file."""

    source: str
    kind: str
    """``tactic replay``, ``timing cache``, ``engine`` or ``debug build``."""
    layers: dict[str, dict[str, str]]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Stable JSON document."""
        return {"source": self.source, "kind": self.kind, "layers": self.layers, "notes": list(self.notes)}

    def to_text(self) -> str:
        """One line per layer."""
        lines = [f"[I] {self.kind} {self.source}: {len(self.layers)} layer(s)"]
        for name, props in self.layers.items():
            shown = " | ".join(f"{k}: {v}" for k, v in props.items() if v)
            lines.append(f"    Layer {name}: {shown}")
        lines += [f"[I] {n}" for n in self.notes]
        return printable_lines(lines)


def selector_note(module: str = "auto") -> str | None:
    """The plain statement that the installed TensorRT has no algorithm selector, or ``None`` when it has one (or
    no TensorRT imports)."""
    from engine_core.backend.trt.flavour import load_flavour

    try:
        flavour = load_flavour(module)
    except TrtdbgError:
        return None
    if flavour.has("IAlgorithmSelector") and flavour.has("IBuilderConfig", "algorithm_selector"):
        return None
    return NO_SELECTOR.format(label=flavour.label)


def read_tactics(path: str | os.PathLike[str], module: str = "auto") -> TacticTable:
    """Read a tactic replay (.json), a debug-build iteration (.json), engine-inspector JSON, an engine (.plan) or a
    timing cache (any other file)."""
    p = Path(path)
    if not p.is_file():
        raise TrtdbgError(f"{p} does not exist; give a tactic replay (.json), an engine (.plan) or a timing cache")
    data = p.read_bytes()
    if p.suffix.lower() == ".json" or data[:1] in (b"{", b"["):
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise TrtdbgError(
                f"{p}: not JSON ({exc}); give a tactic replay, engine-inspector JSON or an engine"
            ) from exc
        return _from_json(doc, p, module)
    from engine_core.backend.trt.debug_build import layer_properties
    from engine_core.backend.trt.describe import ENGINE_SUFFIXES, read_engine_file

    if p.suffix.lower() in ENGINE_SUFFIXES:
        return TacticTable(str(p), "engine", layer_properties(read_engine_file(p, module)))
    return _timing_cache(data, p, module)


def _from_json(doc: Any, p: Path, module: str) -> TacticTable:
    from engine_core.backend.trt.debug_build import layer_properties

    if isinstance(doc, dict) and (doc.get("polygraphy_class") == "TacticReplayData" or "replay" in doc):
        replay = doc.get("replay")
        if not isinstance(replay, dict):
            raise TrtdbgError(f"{p}: a tactic replay without a 'replay' mapping; was it written by Polygraphy?")
        notes = [n for n in [selector_note(module)] if n]
        return TacticTable(str(p), "tactic replay", {str(k): _algorithm(v) for k, v in replay.items()}, notes)
    if isinstance(doc, dict) and isinstance(doc.get("layers"), dict) and "sha256" in doc:
        layers = {
            str(k): {pk: str(pv) for pk, pv in v.items()} for k, v in doc["layers"].items() if isinstance(v, dict)
        }
        return TacticTable(str(p), "debug build", layers, [f"verdict: {doc.get('verdict')}"])
    if isinstance(doc, dict) and isinstance(doc.get("layers"), list) and "schema" in doc:
        raise TrtdbgError(f"{p}: trtdbg `inspect engine --json` output; give the engine or inspector JSON instead")
    from engine_core.backend.trt.describe import read_engine_file

    return TacticTable(str(p), "engine", layer_properties(read_engine_file(p, module)))


def _algorithm(v: Any) -> dict[str, str]:
    """A Polygraphy ``Algorithm`` entry: implementation, tactic, and I/O dtypes and formats (strides/vectorization)."""
    if not isinstance(v, dict):
        return {"tactic": str(v)}

    def io(items: Any) -> tuple[str, str]:
        dtypes, formats = [], []
        for t in items or []:
            if isinstance(t, dict):
                dtypes.append(str(t.get("dtype", "")).replace("DataType.", ""))
                vec = t.get("vectorized_dim")
                formats.append(
                    f"strides {tuple(t.get('strides') or ())}"
                    + (f" vec {vec}x{t.get('components_per_element')}" if vec not in (None, -1) else "")
                )
            elif isinstance(t, (list, tuple)) and len(t) == 2:  # older replays: (format, dtype)
                formats.append(str(t[0]))
                dtypes.append(str(t[1]).replace("DataType.", ""))
        return ",".join(dtypes), "; ".join(formats)

    in_dt, in_fmt = io(v.get("inputs"))
    out_dt, out_fmt = io(v.get("outputs"))
    return {
        "implementation": str(v.get("implementation", "")),
        "tactic": str(v.get("tactic", "")),
        "precision": f"{in_dt} -> {out_dt}",
        "formats": f"{in_fmt} -> {out_fmt}",
    }


def _timing_cache(data: bytes, p: Path, module: str) -> TacticTable:
    """Timing-cache entries (key → tactic hash and time) where the module exposes them."""
    from engine_core.backend.trt.build import create_builder
    from engine_core.backend.trt.flavour import load_flavour, make_logger

    flavour = load_flavour(module)
    if not flavour.timing_cache:
        raise TrtdbgError(
            f"{flavour.label} has no timing cache (its timing-cache calls are no-ops), so {p} cannot be "
            "read here; read it with TensorRT 10/11, or inspect engines and replay files instead"
        )
    cache_cls = getattr(flavour.module, "ITimingCache", None)
    keys_fn = next((n for n in ("queryKeys", "query_keys") if hasattr(cache_cls, n)), None)
    if keys_fn is None or not hasattr(cache_cls, "query"):
        raise TrtdbgError(
            f"{flavour.label} does not expose timing-cache entries (no ITimingCache.queryKeys/query); {p} cannot be listed"
        )
    logger = make_logger(flavour)
    builder = create_builder(flavour, logger)
    config = builder.create_builder_config()
    if flavour.has("BuilderFlag", "EDITABLE_TIMING_CACHE"):
        config.set_flag(flavour.module.BuilderFlag.EDITABLE_TIMING_CACHE)
    cache = config.create_timing_cache(data)
    if cache is None:
        raise TrtdbgError(f"{flavour.label} cannot read {p} as a timing cache (another version or GPU?)")
    layers: dict[str, dict[str, str]] = {}
    for key in getattr(cache, keys_fn)():
        value = cache.query(key)
        tactic = getattr(value, "tacticHash", getattr(value, "tactic_hash", ""))
        ms = getattr(value, "timingMSec", getattr(value, "timing_msec", ""))
        layers[str(key)] = {"tactic": f"{tactic:#x}" if isinstance(tactic, int) else str(tactic), "time_ms": str(ms)}
    return TacticTable(
        str(p),
        "timing cache",
        layers,
        ["timing-cache keys are opaque hashes of layer and configuration, not layer names"],
    )


def diff_tables(
    a: list[TacticTable], b: list[TacticTable], labels: tuple[str, str] = ("A", "B")
) -> list[dict[str, Any]]:
    """Layers whose tactic/precision/format values in ``b`` never occur in ``a`` (and layers in one side only)."""
    from engine_core.backend.trt.debug_build import layer_differences

    return layer_differences([t.layers for t in a], [t.layers for t in b], labels)


def read_side(path: str | os.PathLike[str], module: str = "auto") -> list[TacticTable]:
    """One file, or every ``.json`` / engine file in a folder (``good/`` of a debug-build run, or the run folder
    itself, whose ``summary.json`` is skipped)."""
    p = Path(path)
    if p.is_dir():
        from engine_core.backend.trt.describe import ENGINE_SUFFIXES

        files = sorted(f for f in p.iterdir() if f.suffix.lower() == ".json" and f.name != "summary.json")
        if not files:
            files = sorted(f for f in p.iterdir() if f.suffix.lower() in ENGINE_SUFFIXES)
        if not files:
            raise TrtdbgError(f"{p} has no .json or engine files to compare")
        return [read_tactics(f, module) for f in files]
    return [read_tactics(p, module)]
