"""``trtdbg bench MODEL --backend ort|ort-cuda|trt[...]``: latency, throughput, memory, per-layer times."""

from __future__ import annotations

import argparse
import sys

from tui.cli.args import DataArgs, add_external_data_dir_arg, add_json_arg, add_ort_opt_level_arg
from tui.cli.commands.trt_cli import add_trt_args

DATA = DataArgs("input data (one feed, reused for every run; default random, seed 1, values in [0,1])", samples=False)


HELP = "benchmark a model on one backend (latency percentiles, throughput, memory, per-layer times)"
DESCRIPTION = """Warm up, then time N inferences (or a duration) of MODEL on one backend. Latency is per inference with host arrays
in and out (GPU backends include the copies)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``trtdbg bench``."""
    p = sub.add_parser("bench", help=HELP, description=DESCRIPTION)
    p.add_argument("model", metavar="MODEL", help="ONNX model")
    add_external_data_dir_arg(p, "folder of MODEL's external data (default: beside MODEL; ONNX Runtime backends only)")
    p.add_argument(
        "--backend",
        default="ort",
        metavar="SPEC",
        help="ort (default), ort-cuda, ort-cuda:tf32, trt, trt:fp16, trt-rtx, ...",
    )
    p.add_argument("--warmup", type=int, default=10, metavar="N", help="untimed runs first (default 10)")
    runs = p.add_mutually_exclusive_group()
    runs.add_argument("--runs", "-n", dest="runs", type=int, metavar="N", help="timed runs (default 100)")
    runs.add_argument("--iterations", dest="old_runs", type=int, metavar="N", help=argparse.SUPPRESS)
    runs.add_argument("--duration", type=float, metavar="SECONDS", help="time runs for this long instead")
    p.add_argument(
        "--layer-times",
        action="store_true",
        help="also profile per-layer times (ORT profiler / TensorRT IProfiler), in separate runs",
    )
    p.add_argument(
        "--layer-runs",
        "--layer-iterations",
        dest="layer_runs",
        type=int,
        default=10,
        metavar="N",
        help="profiled runs (default 10)",
    )
    p.add_argument("--top", type=int, default=15, metavar="K", help="slowest layers shown in text (default 15)")
    add_ort_opt_level_arg(p, "ONNX Runtime graph optimization level (default all, as deployed)", default="all")
    add_json_arg(p, "print one JSON document (stable keys) instead of text")
    DATA.add_parser_args(p)
    add_trt_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from engine_core.benchmark import BenchOptions, run_bench
    from tui.cli.commands.trt_cli import trt_options_from_args
    from tui.cli.progress import CliJob, warn

    runs = args.runs
    if args.old_runs is not None:
        warn("bench --iterations is now --runs (timed runs); elsewhere --iterations counts input samples")
        runs = args.old_runs
    trt_options = trt_options_from_args(args) if args.backend.strip().lower().startswith("trt") else None
    options = BenchOptions(
        backend=args.backend,
        warmup=args.warmup,
        runs=100 if runs is None else runs,
        duration=args.duration,
        layer_times=args.layer_times,
        layer_runs=args.layer_runs,
        opt_level=args.ort_opt_level,
        data=DATA.parse(args),
        trt_options=trt_options,
        external_data_dir=args.external_data_dir,
    )
    with CliJob() as events:
        result = run_bench(args.model, options, events)
    sys.stdout.write((result.dumps() if args.json else result.to_text(top=args.top)) + "\n")
    return 0
