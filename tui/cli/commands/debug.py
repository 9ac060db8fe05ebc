"""``trtdbg debug build MODEL --until good|bad|N [--check CMD]``: repeated builds sorted into good/bad engines."""

from __future__ import annotations

import argparse
import sys

from tui.cli.args import DataArgs, add_workspace_arg
from tui.cli.commands.trt_cli import add_trt_build_args, trt_options_from_args

DATA = DataArgs()


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``trtdbg debug``."""
    p = sub.add_parser(
        "debug",
        help="`debug build MODEL --until good|bad|N --check CMD`: catch tactic-dependent engine failures",
        description="Build MODEL's engine repeatedly (fresh builder and empty timing cache each time), run --check "
        "on each engine (exit 0 = good; the engine path is in $TRTDBG_ENGINE and replaces {engine}), "
        "sort the engines into good/ and bad/, and report which engine layer properties (type, "
        "precision, tactic, formats) differ between good and bad engines. Without --check, builds "
        "--until N times and reports what differs between the builds.",
    )
    p.add_argument("what", choices=("build",), help="the debug tool")
    p.add_argument("model", metavar="MODEL", help="ONNX model")
    p.add_argument(
        "--until", required=True, metavar="good|bad|N", help="stop at the first good or bad engine, or after N builds"
    )
    p.add_argument("--check", metavar="CMD", help="shell command deciding good (exit 0) or bad")
    p.add_argument(
        "--check-timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="seconds before a hanging check counts as bad (default 600)",
    )
    p.add_argument(
        "--max-iterations",
        type=int,
        default=20,
        metavar="N",
        help="with --until good|bad: give up after N builds (default 20)",
    )
    p.add_argument(
        "--artifacts-dir",
        metavar="DIR",
        help="where runs go (a fresh run-* folder each time; default: debug-build/ in the workspace)",
    )
    prec = p.add_mutually_exclusive_group()
    prec.add_argument("--precision", choices=("fp32", "fp16", "bf16", "int8"), help="whole-model precision")
    prec.add_argument("--plan", metavar="FILE", help="precision plan (JSON from `trtdbg bisect`)")
    p.add_argument("--calibration-cache", metavar="F", help="TensorRT calibration cache for INT8 scales")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    DATA.add_parser_args(p)
    add_trt_build_args(p, "TensorRT", timing_cache=False)
    add_workspace_arg(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Build, check, sort and report."""
    import os

    from engine_core.backend.ort import OrtRunner
    from engine_core.backend.trt.debug_build import Iteration, debug_build, new_run_dir, parse_until
    from engine_core.data.shape_choice import choose_shapes
    from engine_core.errors import TrtdbgError
    from engine_core.model.loader import load_model
    from engine_core.precision.convert import rewritten_model
    from engine_core.workspace import Workspace
    from tui.cli.progress import CliJob

    data = DATA.parse(args)
    until = parse_until(args.until)
    if args.max_iterations < 1:
        raise TrtdbgError("--max-iterations must be 1 or more")
    if not os.path.isfile(args.model):
        raise TrtdbgError(f"model {args.model} does not exist")
    if isinstance(until, str) and not args.check:
        raise TrtdbgError(f"--until {until} needs --check CMD to tell good engines from bad ones")
    if args.check:
        from engine_core.precision.evaluate import CheckCommand

        CheckCommand(args.check.replace("{engine}", "engine.plan"), args.check_timeout).verify()

    stream = sys.stderr if args.json else sys.stdout

    def show(it: Iteration) -> None:
        extra = f" ({it.detail})" if it.detail else ""
        print(
            f"[I] build {it.index}: {it.verdict}{extra}, {it.build_seconds:.2f}s, sha256 {it.sha256[:12]}, {it.engine}",
            file=stream,
            flush=True,
        )

    job = CliJob(show=show)
    warn = job.events.warn

    metas = OrtRunner(load_model(args.model, load_external_data=False), args.model).input_metadata()
    choice = choose_shapes(metas, data.shapes, args.model)  # the shapes compare would use
    if choice.note():
        warn(choice.note() or "")

    def feeds() -> list:
        source = data.source(metas, model=args.model)
        samples = list(source)
        for w in source.warnings:
            warn(w)
        return samples

    args.timing_cache = None  # each build gets its own empty timing cache
    options = trt_options_from_args(args)
    model, _ = rewritten_model(
        args.model,
        precision=args.precision,
        plan_file=args.plan,
        feeds=feeds,
        calibration_cache=args.calibration_cache,
        on_warning=warn,
    )
    if args.artifacts_dir:
        base = args.artifacts_dir
    else:
        ws = Workspace.for_model(args.model, args.workspace)
        if ws.note:
            warn(ws.note)
        base = str(ws.path("debug-build"))
    label = f"plan {os.path.basename(args.plan)}" if args.plan else (args.precision or "fp32")
    with job:
        result = debug_build(
            model,
            args.model,
            new_run_dir(base),
            until=until,
            check=args.check,
            check_timeout=args.check_timeout,
            max_iterations=args.max_iterations,
            trt_options=options,
            shapes=choice.shapes,
            label=label,
            events=job.events,
        )
    if args.json:
        import json

        sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(result.to_text() + "\n")
    return 0
