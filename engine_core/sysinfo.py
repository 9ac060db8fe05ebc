"""Facts about the machine that size defaults (free memory) and parse sizes (``2G``)."""

from __future__ import annotations

import os
import re

from engine_core.errors import TrtdbgError

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str, option: str = "size") -> int:
    """``"512M"`` → bytes (K/M/G/T suffixes, binary; a plain number is bytes)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(?:I?B)?\s*", text.upper())
    if not m:
        raise TrtdbgError(f"{option}: cannot read '{text}'; use a size like 512M or 2G")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``), or ``None`` if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def format_size(nbytes: float) -> str:
    """``1.5 GiB``-style size (binary units)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(nbytes) < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.3g} {unit}"
        nbytes /= 1024
    raise AssertionError("unreachable")


def check_fits(nbytes: int, what: str, fix: str) -> None:
    """Raise a one-line :class:`TrtdbgError` before allocating ``nbytes`` that the machine does not have.

    Input files declare sizes (a ``.npy`` header, a tensor's dims) that can be absurd; checking them
    here turns a ``MemoryError`` (or the OOM killer) into an error that says what is too big.
    """
    avail = available_memory()
    if avail is not None and nbytes > avail:
        raise TrtdbgError(
            f"{what} needs {format_size(nbytes)}, more than the {format_size(avail)} of memory available; {fix}"
        )


def default_mem_budget() -> int:
    """Half of the available memory (at least 256 MiB); 4 GiB when it cannot be read."""
    avail = available_memory()
    if avail is None:
        return 4 << 30
    return max(256 << 20, avail // 2)


VERSION_MODULES = ("onnx", "onnxruntime", "tensorrt", "tensorrt_rtx")
"""Modules whose versions ``trtdbg --version`` reports (TensorRT ones only when found)."""


def component_versions() -> dict[str, str | None]:
    """``{name: version}`` for trtdbg, Python and :data:`VERSION_MODULES`, from package metadata (nothing is
    imported); ``None`` for a module that is not installed, the distribution's name added when it differs
    (``1.20.1 (onnxruntime-gpu)``)."""
    import importlib.metadata as metadata
    import importlib.util
    import platform

    def dist_version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    found: dict[str, str | None] = {"trtdbg": dist_version("trtdbg"), "python": platform.python_version()}
    dists = metadata.packages_distributions()
    for module in VERSION_MODULES:
        if importlib.util.find_spec(module) is None:
            found[module] = None
            continue
        names = dists.get(module, [])
        version = next((v for v in map(dist_version, names) if v), None)
        dist = names[0] if names else None
        found[module] = (version or "version unknown") + (f" ({dist})" if dist and dist != module else "")
    return found
