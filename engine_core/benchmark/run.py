"""Benchmark one model on one backend (``ort``, ``ort-cuda``, ``trt``, …).

Warm-up runs, then timed runs (a count or a duration). Latency is wall time per ``infer`` call with
host arrays in and out — what a caller sees, including host↔device copies on GPU backends — and
is reported as min/mean/median/p90/p99/max with throughput. Memory: the process's peak resident
set (and its growth during the benchmark) and, on GPU backends, device memory in use after the runs
minus before the session existed (ORT keeps its arena, TensorRT its activation memory, so this is
their footprint). Per-layer times come from ORT's profiler (node kernel times) or TensorRT's
``IProfiler`` (engine layers), in separate runs so they never perturb the latency figures.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine_core.errors import TrtdbgError
from engine_core.jobs import JobEvents, Progress
from engine_core.options import DataOptions
from engine_core.safetext import printable_lines

if TYPE_CHECKING:
    import onnx

GPU_BACKENDS = ("ort-cuda", "trt", "trt-rtx")


@dataclass
class BenchOptions:
    """What to run and how long."""

    backend: str = "ort"
    warmup: int = 10
    runs: int = 100
    """Timed runs (``--runs``)."""
    duration: float | None = None
    """Seconds of timed runs (overrides ``runs``)."""
    layer_times: bool = False
    layer_runs: int = 10
    """Profiled runs for per-layer times."""
    opt_level: str = "all"
    data: DataOptions = field(default_factory=DataOptions)
    """Input data; the first feed is used for every run."""
    trt_options: Any = None
    external_data_dir: str | None = None
    """The folder of the model's external data files (default: beside the model; ONNX Runtime backends only)."""


@dataclass
class LayerTime:
    """Time of one layer (ORT node: median; TensorRT engine layer: mean) per inference."""

    name: str
    op: str
    ms: float
    percent: float


@dataclass
class BenchResult:
    """Figures of one benchmark run (JSON keys are stable)."""

    model: str
    backend: str
    device: str
    inputs: dict[str, list[int]]
    warmup: int
    runs: int
    latency_ms: dict[str, float]
    throughput_per_s: float
    samples_per_s: float
    host_peak_rss_bytes: int
    host_rss_growth_bytes: int
    device_memory_bytes: int | None
    layers: list[LayerTime] | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["layers"] = [asdict(x) for x in self.layers] if self.layers is not None else None
        doc["iterations"] = self.runs  # the key before --runs existed, kept for scripts that read it
        return doc

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    def to_text(self, top: int = 15) -> str:
        lat = self.latency_ms
        lines = [
            f"trtdbg bench: {self.model} on {self.backend} ({self.device})",
            f"  inputs: {', '.join(f'{k} {tuple(v)}' for k, v in self.inputs.items())}",
            f"  {self.runs} timed run(s) after {self.warmup} warm-up(s)",
            (
                f"  latency ms: min {lat['min']:.3f}  median {lat['median']:.3f}  mean {lat['mean']:.3f}  "
                f"p90 {lat['p90']:.3f}  p99 {lat['p99']:.3f}  max {lat['max']:.3f}"
            ),
            f"  throughput: {self.throughput_per_s:.1f} inferences/s ({self.samples_per_s:.1f} samples/s)",
            f"  host memory: peak RSS {_mib(self.host_peak_rss_bytes)}, grew {_mib(self.host_rss_growth_bytes)}",
            "  device memory: "
            + (
                _mib(self.device_memory_bytes) + " in use by the backend"
                if self.device_memory_bytes is not None
                else "n/a"
            ),
        ]
        if self.layers:
            total = sum(x.ms for x in self.layers)
            lines.append(
                f"  per-layer times (profiled runs: ORT median, TensorRT mean; sum {total:.3f} ms; "
                f"slowest {min(top, len(self.layers))}):"
            )
            for x in sorted(self.layers, key=lambda x: -x.ms)[:top]:
                lines.append(f"    {x.ms:9.4f} ms {x.percent:5.1f}%  {x.name}" + (f" [{x.op}]" if x.op else ""))
        for note in self.notes:
            lines.append(f"  note: {note}")
        return printable_lines(lines)


def _emulated(runner: Any) -> bool:
    """True when ``runner`` computes FP16/BF16 nodes emulated in FP32 (a CPU precision subject)."""
    from engine_core.precision.runner import PrecisionRunner

    return (
        isinstance(runner, PrecisionRunner) and runner.emulated and bool(runner.plan.resolve(runner.analysis).float_low)
    )


def _mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / (1 << 20):.1f} MiB"


def _rss_peak() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) * (1 if sys.platform == "darwin" else 1024)


def _percentiles(ms: np.ndarray) -> dict[str, float]:
    return {
        "min": float(ms.min()),
        "mean": float(ms.mean()),
        "median": float(np.median(ms)),
        "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
    }


def run_bench(
    model_path: str | os.PathLike[str], options: BenchOptions, events: JobEvents | None = None
) -> BenchResult:
    """Load the model, make the backend's runner, time it; raise :class:`TrtdbgError` on bad input.

    ``events``: data warnings, progress over warm-up and timed runs (between runs, never timed); a cancel stops
    before the next run (:class:`~engine_core.jobs.Cancelled`)."""
    events = events or JobEvents()
    from engine_core.model.loader import check_external_data, check_runtime_support, load_model
    from engine_core.model.weights import estimate_memory, require_memory
    from engine_core.precision.runner import PrecisionRunner
    from engine_core.runners import make_runner

    if options.warmup < 0 or options.runs < 1 or (options.duration is not None and options.duration <= 0):
        raise TrtdbgError("--warmup must be ≥ 0, --runs ≥ 1 and --duration > 0")
    path = str(model_path)
    model = load_model(path, load_external_data=False)
    check_runtime_support(model, path)
    check_external_data(model, path, options.external_data_dir)
    spec = options.backend.strip().lower()
    # TensorRT's builder holds its own copy of the weights, and so does the session ONNX Runtime's profiler loads
    copies = int(spec.startswith("trt") or options.layer_times)
    need = estimate_memory(model, [spec.partition(":")[2]], copies=copies)
    require_memory(f"bench of {path}", need, "free memory, or bench a part cut with `trtdbg surgeon extract`")
    gpu = spec.partition(":")[0] in GPU_BACKENDS
    notes: list[str] = []
    mem = _device_probe(notes) if gpu else None
    before = mem.mem_info()[0] if mem else None
    rss0 = _rss_peak()
    runner = make_runner(
        spec,
        model,
        path,
        opt_level=options.opt_level,
        trt_options=options.trt_options,
        data_dir=options.external_data_dir,
    )
    source = options.data.source(runner.input_metadata(), model=path)
    if isinstance(runner, PrecisionRunner):  # a precision backend (ort:int8) calibrates on every sample, as compare
        feeds = list(source)
        runner.set_calibration(feeds)
    else:  # the runs time the first sample only
        feeds = list(itertools.islice(source, 1))
    feed = feeds[0] if feeds else None
    for w in source.warnings:
        events.warn(w)
    if feed is None:
        raise TrtdbgError("the data source gave no inputs; check the data loader script or the inputs file")
    try:
        runner.activate()
        for i in range(options.warmup):
            events.stop_if_cancelled("bench cancelled")
            runner.infer(feed)
            events.progress(Progress(i + 1, options.warmup, "warm-up runs"))
        times: list[float] = []
        deadline = time.perf_counter() + options.duration if options.duration else None
        while True:
            events.stop_if_cancelled("bench cancelled")
            t0 = time.perf_counter()
            runner.infer(feed)
            times.append(time.perf_counter() - t0)
            events.progress(Progress(len(times), options.runs if deadline is None else len(times), "timed runs"))
            if deadline is not None:
                if time.perf_counter() >= deadline:
                    break
            elif len(times) >= options.runs:
                break
        device_bytes = (before - mem.mem_info()[0]) if mem is not None and before is not None else None
        layers = _layer_times(runner, spec, model, path, feed, options, notes) if options.layer_times else None
        device = _device_label(spec, mem)
    finally:
        runner.deactivate()
        if mem is not None:
            mem.close()
    ms = np.asarray(times) * 1000.0
    total = float(np.sum(times))
    batch = _batch(feed)
    if gpu and mem is None:
        notes.append("device memory not measured: install cuda-python (pip install trtdbg[trt])")
    if spec.startswith("ort-cuda"):
        notes.append("ort-cuda latency includes host↔device copies of inputs and outputs (numpy in, numpy out)")
    if _emulated(runner):
        notes.append(
            f"{spec} on CPU is the FP32 model with FP16/BF16 storage rounding emulated (Cast pairs): its latency is "
            "not that of low precision; bench ort-cuda:fp16|bf16 or trt:fp16 on a GPU"
        )
    return BenchResult(
        model=path,
        backend=spec,
        device=device,
        inputs={k: list(np.shape(v)) for k, v in feed.items()},
        warmup=options.warmup,
        runs=len(times),
        latency_ms=_percentiles(ms),
        throughput_per_s=len(times) / total if total else 0.0,
        samples_per_s=len(times) * batch / total if total else 0.0,
        host_peak_rss_bytes=_rss_peak(),
        host_rss_growth_bytes=max(0, _rss_peak() - rss0),
        device_memory_bytes=device_bytes,
        layers=layers,
        notes=notes,
    )


def _batch(feed: Mapping[str, np.ndarray]) -> int:
    first = next(iter(feed.values()), None)
    shape = np.shape(first) if first is not None else ()
    return int(shape[0]) if shape else 1


class _SmiProbe:
    """GPU 0's memory and name from ``nvidia-smi`` (used when cuda-python is not installed)."""

    def __init__(self, exe: str) -> None:
        self.exe = exe

    def _query(self, fields: str) -> list[str]:
        import subprocess

        try:
            out = subprocess.run(
                [self.exe, f"--query-gpu={fields}", "--format=csv,noheader,nounits", "-i", "0"],
                capture_output=True,
                text=True,
                timeout=20,
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise TrtdbgError(f"nvidia-smi failed: {exc}") from exc
        return [x.strip() for x in out.strip().splitlines()[0].split(",")]

    def mem_info(self) -> tuple[int, int]:
        free, total = (int(float(x)) << 20 for x in self._query("memory.free,memory.total"))
        return free, total

    def device_name(self) -> str:
        return self._query("name")[0]

    def close(self) -> None:
        pass


def _device_probe(notes: list[str]) -> Any:
    """Something with ``mem_info``/``device_name`` for memory figures (cuda-python, else nvidia-smi), or ``None``."""
    import shutil

    from engine_core.backend.trt.devmem import open_device_memory

    try:
        return open_device_memory("cuda-python")
    except TrtdbgError as exc:
        reason = str(exc)
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            probe = _SmiProbe(smi)
            probe.mem_info()
            notes.append(
                "device memory from nvidia-smi (MiB resolution, includes the CUDA context the backend creates)"
            )
            return probe
        except (TrtdbgError, ValueError, IndexError):
            pass
    if "not installed" not in reason:
        notes.append(f"device memory not measured: {reason}")
    return None


def _device_label(spec: str, mem: Any) -> str:
    if mem is not None:
        try:
            return mem.device_name()
        except TrtdbgError:
            pass
    if spec.partition(":")[0] in GPU_BACKENDS:
        return "GPU"
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} logical cores)"


def _layer_times(
    runner: Any,
    spec: str,
    model: Any,
    path: str,
    feed: Mapping[str, np.ndarray],
    options: BenchOptions,
    notes: list[str],
) -> list[LayerTime] | None:
    n = max(1, options.layer_runs)
    from engine_core.backend.ort import OrtRunner

    if hasattr(runner, "layer_times"):  # TensorRT IProfiler: engine (fused) layer names
        raw = {name: (ms, "") for name, ms in runner.layer_times(feed, n).items()}
    elif isinstance(runner, OrtRunner):
        raw = _ort_profile(runner, model if options.external_data_dir else path, feed, n)
    else:
        notes.append(f"{spec} gives no per-layer times")
        return None
    total = sum(ms for ms, _ in raw.values()) or 1.0
    return [LayerTime(name, op, ms, 100.0 * ms / total) for name, (ms, op) in raw.items()]


def _ort_profile(
    runner: Any, model: str | onnx.ModelProto, feed: Mapping[str, np.ndarray], n: int
) -> dict[str, tuple[float, str]]:
    """Median kernel time per ONNX Runtime node over ``n`` runs of a separate profiling session of ``model`` (a file,
    or a model whose external weights are in the runner's data folder)."""
    import onnxruntime as ort

    from engine_core.backend.ort import PROVIDERS
    from engine_core.model.loader import ort_session_options
    from engine_core.model.weights import open_session

    so = ort_session_options(runner.opt_level)
    so.enable_profiling = True
    with tempfile.TemporaryDirectory(prefix="trtdbg-prof-") as tmp:
        so.profile_file_prefix = str(Path(tmp, "ort"))
        provider = PROVIDERS[runner.provider]
        opts = {"use_tf32": "1" if getattr(runner, "allow_tf32", False) else "0"} if runner.provider == "cuda" else {}
        where = model if isinstance(model, str) else runner.model_path
        try:
            if isinstance(model, str):
                sess = ort.InferenceSession(model, so, providers=[(provider, opts)])
            else:
                sess = open_session(model, runner.data_dir, so, [(provider, opts)])
        except Exception as exc:
            raise TrtdbgError(
                f"ONNX Runtime cannot load {where} for profiling: {' '.join(str(exc).split())[:300]}"
            ) from exc
        if sess.get_providers()[0] != provider:
            raise TrtdbgError(f"ONNX Runtime could not start {provider} for profiling; use --backend ort")
        for _ in range(n + 1):  # the first run (allocations, kernel selection) is dropped below
            sess.run(None, dict(feed))
        events = json.loads(Path(sess.end_profiling()).read_text(encoding="utf-8"))
    runs: dict[str, list[float]] = {}
    ops: dict[str, str] = {}
    for ev in events:
        if ev.get("cat") != "Node" or not str(ev.get("name", "")).endswith("_kernel_time"):
            continue
        name = ev["name"][: -len("_kernel_time")]
        runs.setdefault(name, []).append(float(ev.get("dur", 0)) / 1000.0)
        ops[name] = str(ev.get("args", {}).get("op_name", ""))
    # Median: single profiled runs on a busy host show multi-millisecond outliers.
    return {name: (statistics.median(v[1:] if len(v) > 1 else v), ops[name]) for name, v in runs.items()}
