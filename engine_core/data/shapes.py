"""Input shapes: parse user shape specs and pick a concrete shape for every model input.

Spec syntax (:func:`parse_shapes`): ``NAME:1x3x640x640`` or Polygraphy's ``NAME:[1,3,640,640]``
(``NAME:[]`` is a scalar). Several specs may share one string, separated by commas
(``input_ids:3x128,attention_mask:3x128`` — the case Polygraphy mis-parses, #3744), or come as
several strings. A name may itself contain ``:``; the shape is what follows the last colon.

Shape resolution (:func:`resolve_shapes`), for each dimension of each input, first rule that applies:

1. **Override** — the user's ``NAME:SHAPE`` is used as given. It must name a model input and match
   the model's rank and every fixed dimension.
2. **Fixed** — a fixed model dimension (an int ≥ 0) is kept.
3. **Shared symbol** — a symbolic dimension (ONNX ``dim_param``) that already has a value, from an
   override or an earlier input, keeps it: ``batch`` in ``input_ids [batch, seq]`` and
   ``attention_mask [batch, seq]`` gets one value. Anonymous dims (``None``, negative ints, ``""``,
   ``"?"``) are never shared.
4. **Named role** — a symbolic name whose words say what the dim is (words split at ``_ . -``,
   digits and camelCase, case-insensitive; a one-letter name must be the whole name):
   batch, bs, ``N``, ``B`` → 1; seq, sequence, len, length, token(s), time, step(s), frame(s),
   ``T`` → 128; height, width, ``H``, ``W`` → 224. The first word with a role decides
   (``batch_size`` → 1, ``n_tokens`` → 128).
5. **Position** — dim 0 (batch) → 1; rank-4 inputs (NCHW): dim 1 → 3, dims 2 and 3 → 224; rank-2
   and rank-3 inputs: dims ≥ 1 → 128; any other dim → 1.

Polygraphy sets every dynamic dim to 1 (#3159), which makes CNNs run on 1x1 images and breaks
Reshape-heavy models; 224 (a multiple of 32) and 128 give inputs that most models accept. Models
with hidden constraints (e.g. a text recogniser that only accepts heights < 96) need an override.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from engine_core.errors import TrtdbgError
from engine_core.types import Dim, TensorMeta

SHAPE_SYNTAX = "NAME:1x3x224x224 or NAME:[1,3,224,224], several separated by commas"

BATCH_SIZE = 1
SEQUENCE_LENGTH = 128
SPATIAL_SIZE = 224
IMAGE_CHANNELS = 3

_ROLE_WORDS: dict[str, int] = {
    **dict.fromkeys(("batch", "bs"), BATCH_SIZE),
    **dict.fromkeys(
        ("seq", "sequence", "len", "length", "token", "tokens", "time", "step", "steps", "frame", "frames"),
        SEQUENCE_LENGTH,
    ),
    **dict.fromkeys(("height", "width"), SPATIAL_SIZE),
}
_ROLE_LETTERS: dict[str, int] = {
    "n": BATCH_SIZE,
    "b": BATCH_SIZE,
    "t": SEQUENCE_LENGTH,
    "h": SPATIAL_SIZE,
    "w": SPATIAL_SIZE,
}
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_X_SHAPE = re.compile(r"\d+(?:x\d+)*")


def parse_shapes(specs: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Parse ``NAME:1x3x224x224`` / ``NAME:[1,3,224,224]`` specs (comma-separated or several strings)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        for item in _split_top_level(spec):
            name, shape = _parse_one(item, spec)
            if name in shapes:
                raise TrtdbgError(f"shape for input '{name}' given twice ({spec!r}); give each input once")
            shapes[name] = shape
    return shapes


def parse_profile(
    min_specs: Sequence[str], opt_specs: Sequence[str], max_specs: Sequence[str]
) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """``--trt-min/opt/max-shapes`` as ``{input: (min, opt, max)}``; a bound not given takes opt's (else min's, max's)."""
    lo, opt, hi = parse_shapes(min_specs), parse_shapes(opt_specs), parse_shapes(max_specs)
    profile = {}
    for name in sorted(set(lo) | set(opt) | set(hi)):
        o = opt.get(name) or lo.get(name) or hi[name]
        profile[name] = (lo.get(name) or o, o, hi.get(name) or o)
    return profile


def parse_profiles(
    min_groups: Sequence[Sequence[str]], opt_groups: Sequence[Sequence[str]], max_groups: Sequence[Sequence[str]]
) -> list[dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]]:
    """Repeated ``--trt-min/opt/max-shapes`` groups (Polygraphy: one triple per optimization profile), in order.

    Each option given must appear once per profile; a bound left out of every group takes opt's.
    """
    counts = {len(g) for g in (min_groups, opt_groups, max_groups) if g}
    if len(counts) > 1:
        raise TrtdbgError(
            f"--trt-min/opt/max-shapes: given {len(min_groups)}/{len(opt_groups)}/{len(max_groups)} times; "
            "repeat each one once per optimization profile (or leave it out everywhere)"
        )
    n = counts.pop() if counts else 0
    return [parse_profile(*(g[i] if g else () for g in (min_groups, opt_groups, max_groups))) for i in range(n)]


def _split_top_level(spec: str) -> list[str]:
    """Split at commas that are not inside ``[...]`` or ``(...)``."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(spec):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(spec[start:i])
            start = i + 1
    items.append(spec[start:])
    return [item.strip() for item in items if item.strip()]


def _parse_one(item: str, spec: str) -> tuple[str, tuple[int, ...]]:
    bad = f"bad shape spec {item!r} in {spec!r}; expected {SHAPE_SYNTAX}"
    if item.endswith(("]", ")")):
        opener = "[" if item.endswith("]") else "("
        cut = item.rfind(":" + opener)
        if cut <= 0:
            raise TrtdbgError(bad)
        name, body = item[:cut].strip(), item[cut + 2 : -1].strip()
        parts = [p.strip() for p in body.split(",")] if body else []
        if parts and parts[-1] == "":
            parts.pop()  # a trailing comma as in "(3,)"
        if not all(p.isdigit() for p in parts):
            raise TrtdbgError(bad)
        return name, tuple(int(p) for p in parts)
    name, sep, body = item.rpartition(":")
    body = body.strip()
    if not sep or not name.strip() or not _X_SHAPE.fullmatch(body):
        raise TrtdbgError(bad)
    return name.strip(), tuple(int(p) for p in body.split("x"))


def format_shape(shape: Sequence[Dim] | None) -> str:
    """``[batch, 3, ?, ?]`` for a model shape (``?`` = unknown); ``unknown rank`` for ``None``."""
    if shape is None:
        return "unknown rank"
    return "[" + ", ".join("?" if d is None or (isinstance(d, int) and d < 0) else str(d) for d in shape) + "]"


def format_dims(shape: Sequence[int]) -> str:
    """``1x3x224x224`` (``[]`` for a scalar)."""
    return "x".join(str(d) for d in shape) if shape else "[]"


def _symbol(dim: Dim) -> str | None:
    """The shareable symbolic name of a dim, or ``None`` for fixed/anonymous dims."""
    if isinstance(dim, str) and dim.strip() not in ("", "?"):
        return dim
    return None


def _role_value(symbol: str) -> int | None:
    """The size a symbolic name implies (rule 4), or ``None``."""
    letter = symbol.strip().lower()
    if letter in _ROLE_LETTERS:
        return _ROLE_LETTERS[letter]
    for word in _WORD.findall(symbol):
        value = _ROLE_WORDS.get(word.lower())
        if value is not None:
            return value
    return None


def _position_value(index: int, rank: int) -> int:
    """The positional default (rule 5)."""
    if index == 0:
        return BATCH_SIZE
    if rank == 4:
        return IMAGE_CHANNELS if index == 1 else SPATIAL_SIZE
    if rank in (2, 3):
        return SEQUENCE_LENGTH
    return 1


def _check_override(meta: TensorMeta, shape: tuple[int, ...]) -> None:
    if meta.shape is None:
        return
    mismatch = len(shape) != len(meta.shape) or any(
        isinstance(d, int) and d >= 0 and d != g for d, g in zip(meta.shape, shape)
    )
    if mismatch:
        raise TrtdbgError(
            f"shape {format_dims(shape)} for input '{meta.name}' does not match the model shape "
            f"{format_shape(meta.shape)}; give {len(meta.shape)} dims and keep the fixed ones"
        )


def resolve_shapes(metas: Sequence[TensorMeta], overrides: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """A concrete shape for every input in ``metas`` (rules in the module docstring), in input order."""
    by_name = {m.name: m for m in metas}
    unknown = [name for name in overrides if name not in by_name]
    if unknown:
        raise TrtdbgError(
            f"shape given for unknown input '{unknown[0]}'; the model inputs are: {', '.join(by_name) or '(none)'}"
        )
    symbols: dict[str, int] = {}
    for name, shape in overrides.items():
        meta = by_name[name]
        _check_override(meta, shape)
        for dim, value in zip(meta.shape or (), shape):
            sym = _symbol(dim)
            if sym is not None:
                symbols.setdefault(sym, value)

    resolved: dict[str, tuple[int, ...]] = {}
    for meta in metas:
        if meta.name in overrides:
            resolved[meta.name] = tuple(overrides[meta.name])
            continue
        if meta.shape is None:
            raise TrtdbgError(f"input '{meta.name}' has no shape in the model; give one, e.g. {meta.name}:1x3x224x224")
        dims = []
        for index, dim in enumerate(meta.shape):
            if isinstance(dim, int) and dim >= 0:
                dims.append(dim)
                continue
            sym = _symbol(dim)
            if sym is not None and sym in symbols:
                dims.append(symbols[sym])
                continue
            role = _role_value(sym) if sym is not None else None
            value = role if role is not None else _position_value(index, len(meta.shape))
            if sym is not None:
                symbols[sym] = value
            dims.append(value)
        resolved[meta.name] = tuple(dims)
    return resolved
