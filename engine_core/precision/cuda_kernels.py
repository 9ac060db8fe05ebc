"""Which ops ONNX Runtime's CUDA provider can run in FP16/BF16, asked from ONNX Runtime itself.

A node whose low-precision type has no CUDA kernel makes ONNX Runtime fall back to the CPU provider, which has no
BF16 kernel for most ops either: the session then fails to load (``Provider type for Reciprocal node … is not set``).
For ``ort-cuda`` plans such nodes stay FP32, with the reason in the coverage's ``kept`` counts.

The kernel registry (``get_all_opkernel_def``) is read in a child process: listing it loads every provider library,
and where the CUDA libraries are missing that crashes the process instead of raising.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence

from engine_core.precision.rules import Analysis

KernelTable = Mapping[str, Sequence[tuple[int, int, Sequence[str]]]]
"""``{"domain:op": [(first opset, last opset, [type strings]), …]}`` of the CUDA provider."""

_TYPE = {"fp16": "tensor(float16)", "bf16": "tensor(bfloat16)"}
_SCRIPT = """
import json
from onnxruntime.capi import _pybind_state as C
out = {}
for k in C.get_all_opkernel_def():
    if k.provider != "CUDAExecutionProvider":
        continue
    types = sorted({t for ts in k.type_constraints.values() for t in ts})
    out.setdefault((k.domain or "") + ":" + k.op_name, []).append([k.version_range[0], k.version_range[1], types])
print(json.dumps(out))
"""
_CACHE: dict[str, KernelTable | None] = {}


def cuda_kernel_table() -> KernelTable | None:
    """The CUDA provider's kernel registry of the installed onnxruntime, or ``None`` when it has none."""
    if "table" not in _CACHE:
        try:
            done = subprocess.run(
                [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120, check=False
            )
            table = json.loads(done.stdout) if done.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError):
            table = None
        _CACHE["table"] = {k: [tuple(e) for e in v] for k, v in table.items()} if table else None
    return _CACHE["table"]


def has_kernel(table: KernelTable, domain: str, op: str, since: int, precision: str) -> bool:
    """True when a CUDA kernel of ``op`` covering opset version ``since`` takes ``precision``."""
    for first, last, types in table.get(f"{domain if domain != 'ai.onnx' else ''}:{op}", ()):
        if first <= since <= last and _TYPE[precision] in types:
            return True
    return False


def keep_without_kernel(an: Analysis, precisions: Iterable[str], table: KernelTable | None, version: str) -> int:
    """Forbid ``precisions`` on nodes with no CUDA kernel for them; returns how many (node, precision) pairs."""
    if not table:
        return 0
    blocked = 0
    for p in (p for p in dict.fromkeys(precisions) if p in _TYPE):
        for facts in an.facts:
            if not facts.allows(p):
                continue
            node = an.protos[facts.pos]
            schema = an.schema(node)
            if schema is None or has_kernel(table, node.domain, node.op_type, schema.since_version, p):
                continue
            facts.block(f"onnxruntime {version} has no CUDA {p} kernel for {node.op_type}", f"no CUDA {p} kernel", (p,))
            blocked += 1
    return blocked
