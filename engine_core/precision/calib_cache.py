"""TensorRT (<= 10) legacy INT8 calibration caches: ``TRT-<version>-<Algorithm>`` then ``tensor: <hex float32 scale>``.

The scale is the big-endian IEEE float32 bit pattern; dynamic range = 127 * scale (docs/precision.md §12). Names are
split at the last ``:``. Reading ignores the version; writing lets the caller pick the header.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path

from engine_core.errors import TrtdbgError
from engine_core.workspace import atomic_write_text

DEFAULT_HEADER = "TRT-100300-MinMaxCalibration"
"""TensorRT 10.3 MinMax calibrator; TensorRT rejects a cache whose header does not match its calibrator."""


def read_trt_cache(path: str | os.PathLike[str]) -> tuple[str, dict[str, float]]:
    """``(header, {tensor: scale})`` of a TensorRT calibration cache file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TrtdbgError(f"calibration cache {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TrtdbgError(f"cannot read calibration cache {p}: {exc}; expected a TensorRT text cache") from None
    return parse_trt_cache(text, str(p))


def parse_trt_cache(text: str, where: str = "calibration cache") -> tuple[str, dict[str, float]]:
    """Parse the text of a TensorRT calibration cache."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("TRT-"):
        first = lines[0][:40] if lines else "(empty)"
        raise TrtdbgError(
            f"{where} is not a TensorRT calibration cache: first line '{first}' does not start with "
            "'TRT-'; write one with TensorRT <= 10 or `trtdbg bisect --write-calibration-cache`"
        )
    scales: dict[str, float] = {}
    for n, line in enumerate(lines[1:], start=2):
        name, sep, hexval = line.rpartition(":")
        try:
            if not sep or not name.strip() or len(hexval.strip()) != 8:
                raise ValueError
            scales[name.strip()] = struct.unpack(">f", bytes.fromhex(hexval.strip()))[0]
        except ValueError:
            raise TrtdbgError(
                f"{where}, line {n}: cannot read '{line[:60]}'; expected 'tensor: 8 hex digits'"
            ) from None
    return lines[0], scales


def format_trt_cache(scales: Mapping[str, float], header: str = DEFAULT_HEADER) -> str:
    """The text of a TensorRT calibration cache for ``{tensor: scale}``."""
    if not header.startswith("TRT-") or "\n" in header:
        raise TrtdbgError(f"calibration cache header '{header}' must look like TRT-100300-MinMaxCalibration")
    body = "".join(f"{name}: {struct.pack('>f', float(s)).hex()}\n" for name, s in scales.items())
    return f"{header}\n{body}"


def write_trt_cache(path: str | os.PathLike[str], scales: Mapping[str, float], header: str = DEFAULT_HEADER) -> Path:
    """Write a TensorRT calibration cache atomically."""
    return atomic_write_text(path, format_trt_cache(scales, header))


def scales_from_ranges(ranges: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    """Symmetric INT8 scales (max |range| / 127) of ``{tensor: (lowest, highest)}``."""
    return {name: max(abs(lo), abs(hi)) / 127.0 for name, (lo, hi) in ranges.items()}


def ranges_from_scales(scales: Mapping[str, float]) -> dict[str, tuple[float, float]]:
    """Symmetric ranges ``(-127 s, 127 s)`` of ``{tensor: scale}``."""
    return {name: (-127.0 * s, 127.0 * s) for name, s in scales.items()}


def match_cache(
    scales: Mapping[str, float], tensors: Iterable[str], where: str, model: str
) -> tuple[dict[str, float], list[str]]:
    """The cache entries naming tensors of the model, and warnings; no match at all is an error (another model)."""
    known = set(tensors)
    hits = {n: s for n, s in scales.items() if n in known}
    if not hits:
        sample = next(iter(scales), "(none)")
        raise TrtdbgError(
            f"calibration cache {where} names no tensor of {model} ({len(scales)} entries, e.g. "
            f"'{sample}'): it was written for another model"
        )
    warnings = []
    missing = [n for n in scales if n not in known]
    if missing:
        warnings.append(
            f"calibration cache {where}: {len(missing)} of {len(scales)} entries name no tensor of "
            f"{model} (e.g. '{missing[0]}'; TensorRT-internal names cannot be mapped); they are ignored"
        )
    bad = [n for n, s in hits.items() if not s > 0]  # NaN compares false too
    if bad:
        raise TrtdbgError(
            f"calibration cache {where}: tensor '{bad[0]}' has scale {hits[bad[0]]}; scales must be positive"
        )
    return hits, warnings
