"""``trtdbg bench``: latency, throughput, memory and per-layer times of one backend on one model."""

from engine_core.benchmark.run import BenchOptions, BenchResult, run_bench

__all__ = ["BenchOptions", "BenchResult", "run_bench"]
