"""Run a command in a child process and report its wall time and peak RSS (both measured here)."""

from __future__ import annotations

import compileall
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def compile_sources() -> None:
    """Write the bytecode of trtdbg's own packages, as ``pip install`` does (and did for Polygraphy, numpy, onnx):
    under ``PYTHONDONTWRITEBYTECODE`` every measured process would otherwise compile ~80 modules (0.1–0.2 s CPU)."""
    for package in ("engine_core", "tui"):
        compileall.compile_dir(ROOT / package, quiet=1)


def main() -> None:
    """``python bench/measure.py CMD...`` prints ``{"wall_s", "cpu_s", "peak_rss_mib", "rc"}`` as the last line."""
    cmd = sys.argv[1:]
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    rss_kib = usage.ru_maxrss
    if proc.returncode not in (0, 1):
        sys.stderr.write(proc.stderr[-2000:])
    cpu = usage.ru_utime + usage.ru_stime
    print(
        json.dumps(
            {
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "peak_rss_mib": round(rss_kib / 1024, 1),
                "rc": proc.returncode,
            }
        )
    )


if __name__ == "__main__":
    main()
