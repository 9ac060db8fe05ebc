"""``trtdbg debug build``: build the same engine again and again, each time with a fresh builder and an empty timing
cache, sort the engines into good/bad with a check command, and say which engine properties separate them.

Engine properties come from the build's layer listing (TensorRT-RTX logs it at VERBOSE level; no GPU needed) or the
engine inspector (needs a GPU the engine runs on): per layer its type, output precision, tactic and tensor formats.
A property value seen only in bad engines is a suspect, as Polygraphy's ``diff-tactics`` reports.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from engine_core.check import CheckCommand
from engine_core.errors import TrtdbgError
from engine_core.jobs import JobEvents, Progress
from engine_core.safetext import printable_lines
from engine_core.types import json_fields
from engine_core.workspace import atomic_write_bytes, atomic_write_json

LAYER_PROPERTIES = ("type", "precision", "tactic", "formats")
VERDICTS = ("good", "bad", "built")


@dataclass
class Iteration:
    """One build."""

    index: int
    verdict: str
    """``good``/``bad`` from the check, ``built`` without one."""
    engine: str
    sha256: str
    build_seconds: float
    detail: str | None = None
    layers: dict[str, dict[str, str]] | None = None
    """Layer name → properties; ``None`` when no listing was available."""

    def to_json(self) -> dict[str, Any]:
        """Stable JSON (layer properties included)."""
        return json_fields(self)


@dataclass
class DebugBuildResult:
    """All builds and what differs between the groups."""

    module: str
    artifacts: str
    iterations: list[Iteration]
    differences: list[dict[str, Any]]
    compared: str
    """What ``differences`` compares: ``good vs bad`` or ``variants`` (no check)."""
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Engines per verdict."""
        return {v: sum(1 for it in self.iterations if it.verdict == v) for v in VERDICTS}

    def to_json(self) -> dict[str, Any]:
        """Stable JSON document."""
        return {
            "module": self.module,
            "artifacts": self.artifacts,
            "counts": self.counts(),
            "distinct_engines": len({it.sha256 for it in self.iterations}),
            "compared": self.compared,
            "differences": self.differences,
            "iterations": [it.to_json() for it in self.iterations],
            "notes": list(self.notes),
        }

    def to_text(self) -> str:
        """Summary lines."""
        c = self.counts()
        lines = [
            f"[I] {len(self.iterations)} build(s) with {self.module}: {c['good']} good, {c['bad']} bad"
            + (f", {c['built']} unchecked" if c["built"] else "")
            + f"; {len({it.sha256 for it in self.iterations})} distinct engine file(s); artifacts in {self.artifacts}"
        ]
        if self.differences:
            lines.append(f"[I] Engine properties that differ ({self.compared}):")
            for d in self.differences[:40]:
                lines.append(f"    {d['text']}")
            if len(self.differences) > 40:
                lines.append(f"    ... and {len(self.differences) - 40} more (--json lists all)")
        elif len(self.iterations) > 1:
            lines.append(f"[I] No layer property differs ({self.compared})")
        lines += [f"[W] {n}" for n in self.notes]
        return printable_lines(lines)


def parse_until(text: str) -> str | int:
    """``good``, ``bad`` or a positive number of builds."""
    if text in ("good", "bad"):
        return text
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise TrtdbgError(f"--until {text}: give good, bad or a number of builds (1 or more)")
    return n


class _Judged(Protocol):
    verdict: str


T = TypeVar("T", bound=_Judged)


def repeat_until(
    until: str | int,
    max_iterations: int,
    step: Callable[[int], T],
    events: JobEvents,
    *,
    unit: str,
    what: str,
    cancelled: Callable[[int], str],
) -> tuple[list[T], str | None]:
    """``step(0)``, ``step(1)``, ... until one's verdict is ``until`` (``good``/``bad``; at most ``max_iterations``)
    or ``until`` steps ran; each step goes to ``events`` as an item and progress in ``unit``, and a cancel stops
    before the next (:class:`~engine_core.jobs.Cancelled` with ``cancelled(k)``). Returns the steps and a note
    when no ``what`` with the wanted verdict came."""
    done: list[T] = []
    limit = until if isinstance(until, int) else max_iterations
    for k in range(limit):
        events.stop_if_cancelled(cancelled(k))
        it = step(k)
        done.append(it)
        events.item(it)
        events.progress(Progress(k + 1, limit, unit))
        if until == it.verdict:
            return done, None
    missed = f"no {until} {what} in {max_iterations} {unit} (--max-iterations)" if isinstance(until, str) else None
    return done, missed


def layer_properties(info: Any) -> dict[str, dict[str, str]]:
    """Layer name → ``type``/``precision``/``tactic``/``formats`` of an :class:`EngineInfo`."""
    out: dict[str, dict[str, str]] = {}
    for layer in info.layers:
        formats = ";".join(t.format for t in (*layer.inputs, *layer.outputs) if t.format)
        out[layer.name] = {"type": layer.type, "precision": layer.precision, "tactic": layer.tactic, "formats": formats}
    return out


def differences(
    a: Sequence[Iteration], b: Sequence[Iteration], labels: tuple[str, str] = ("good", "bad")
) -> list[dict[str, Any]]:
    """Layer properties whose values in group ``b`` never occur in group ``a``, and layers present in one group only."""
    return layer_differences(
        [it.layers for it in a if it.layers is not None], [it.layers for it in b if it.layers is not None], labels
    )


def layer_differences(
    la: Sequence[Mapping[str, Mapping[str, str]]],
    lb: Sequence[Mapping[str, Mapping[str, str]]],
    labels: tuple[str, str] = ("good", "bad"),
) -> list[dict[str, Any]]:
    """As :func:`differences`, on layer listings (layer name → property → value); empty when a group has none."""
    if not la or not lb:
        return []
    found: list[dict[str, Any]] = []
    names_a = {n for d in la for n in d}
    names_b = {n for d in lb for n in d}
    order = list(dict.fromkeys([n for d in (*la, *lb) for n in d]))
    for name in order:
        if name not in names_a or name not in names_b:
            side = labels[1] if name in names_b else labels[0]
            found.append(
                {
                    "layer": name,
                    "property": "presence",
                    labels[0]: [name in names_a],
                    labels[1]: [name in names_b],
                    "text": f"layer '{name}' only in {side} engines",
                }
            )
            continue
        props = list(dict.fromkeys(p for d in (*la, *lb) if name in d for p in d[name]))
        for prop in props:
            va = sorted({str(d[name].get(prop, "")) for d in la if name in d})
            vb = sorted({str(d[name].get(prop, "")) for d in lb if name in d})
            if set(vb) - set(va):
                found.append(
                    {
                        "layer": name,
                        "property": prop,
                        labels[0]: va,
                        labels[1]: vb,
                        "text": f"'{name}' {prop}: {labels[0]} {', '.join(va) or '-'} | "
                        f"{labels[1]} {', '.join(vb) or '-'}",
                    }
                )
    return found


def debug_build(
    model: Any,
    model_path: str,
    artifacts: str | os.PathLike[str],
    *,
    until: str | int,
    check: CheckCommand | None = None,
    max_iterations: int = 20,
    trt_options: Any = None,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    label: str = "fp32",
    events: JobEvents | None = None,
) -> DebugBuildResult:
    """Build ``model`` (already rewritten for its precision) until ``until`` and sort the engines with ``check``.

    ``check`` gets the engine path as ``{engine}``/``TRTDBG_ENGINE`` and the build number as
    ``{iteration}``/``TRTDBG_ITERATION`` (a pass = good). Engines go to ``artifacts/good``, ``artifacts/bad`` (or ``artifacts/`` without a check).
    ``events``: each :class:`Iteration` as an item, progress over builds; a cancel stops before the next build.
    """
    events = events or JobEvents()
    from engine_core.backend.trt.flavour import load_flavour
    from engine_core.backend.trt.inspector import from_layer_text, inspect_plan
    from engine_core.precision.convert import build_plan

    if isinstance(until, str) and not check:
        raise TrtdbgError(f"--until {until} needs --check CMD to tell good engines from bad ones")
    if check:
        check.verify()
    root = Path(artifacts)
    flavour = load_flavour(getattr(trt_options, "module", "auto") if trt_options is not None else "auto")
    notes: list[str] = []

    def build(k: int) -> Iteration:
        cache = root / "timing" / f"iter_{k}.cache" if flavour.timing_cache else None
        built = build_plan(
            model, model_path, trt_options, shapes or {}, label, timing_cache=str(cache) if cache else None
        )
        for n in built.meta.get("notes", []):
            if n not in notes:
                notes.append(n)
        layers = None
        if built.meta.get("layers_text"):
            layers = layer_properties(from_layer_text(built.meta["layers_text"], f"build {k}"))
        else:
            try:
                layers = layer_properties(inspect_plan(flavour, built.plan, f"build {k}"))
            except TrtdbgError as exc:
                note = f"no layer listing ({exc}); engines compared by file content only"
                if note not in notes:
                    notes.append(note)
        path = root / f"iter_{k}.plan"
        atomic_write_bytes(path, built.plan)
        verdict, detail = "built", None
        if check:
            outcome = check.run({"engine": str(path), "iteration": str(k)}, root / "logs" / f"iter_{k}.log")
            detail = outcome.detail
            verdict = "good" if outcome.passed else "bad"
            target = root / verdict / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            path = target
        it = Iteration(
            k,
            verdict,
            str(path),
            hashlib.sha256(built.plan).hexdigest(),
            float(built.meta.get("build_seconds") or 0.0),
            detail,
            layers,
        )
        atomic_write_json(path.with_suffix(".json"), it.to_json())
        return it

    def stopped(k: int) -> str:
        return f"debug build cancelled after {k} build(s); engines so far are in {root}"

    iterations, missed = repeat_until(
        until, max_iterations, build, events, unit="builds", what="engine", cancelled=stopped
    )
    notes += [missed] if missed else []
    if check:
        good = [it for it in iterations if it.verdict == "good"]
        bad = [it for it in iterations if it.verdict == "bad"]
        diffs, compared = differences(good, bad), "good vs bad"
        if not good or not bad:
            compared = f"all {'good' if good else 'bad'}: nothing to compare"
    else:
        diffs, compared = _variant_differences(iterations), "first build vs the others"
    result = DebugBuildResult(flavour.label, str(root), iterations, diffs, compared, notes)
    atomic_write_json(root / "summary.json", result.to_json())
    return result


def _variant_differences(iterations: Sequence[Iteration]) -> list[dict[str, Any]]:
    """Without a check: properties of later builds that the first build does not have."""
    if len(iterations) < 2:
        return []
    return differences(iterations[:1], iterations[1:], ("first", "others"))


def new_run_dir(base: str | os.PathLike[str]) -> Path:
    """A fresh ``run-YYYYmmdd-HHMMSS[-N]`` folder under ``base``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        path = Path(base) / (f"run-{stamp}" + (f"-{n}" if n else ""))
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise TrtdbgError(
                f"cannot create {path}: {exc.strerror or exc}; choose a writable --artifacts-dir"
            ) from exc
    raise TrtdbgError(f"too many runs in {base}; clean it up")
