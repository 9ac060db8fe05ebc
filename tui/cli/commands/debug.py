"""``trtdbg debug build MODEL --until good|bad|N [--check CMD]``: repeated builds sorted into good/bad engines;
``trtdbg debug repeat --until good|bad|N --check CMD [--artifacts F...]``: Polygraphy's ``debug repeat``."""

from __future__ import annotations

import argparse

from tui.cli.args import CheckCommandArgs, DataArgs, PrecisionArgs, add_json_arg, add_workspace_arg, model_inputs
from tui.cli.commands.trt_cli import add_trt_build_args, trt_options_from_args
from tui.cli.output import print_result

DATA = DataArgs()
PRECISION = PrecisionArgs("whole-model precision", "TensorRT calibration cache for INT8 scales")
CHECK = CheckCommandArgs(
    "check",
    "shell command deciding good (exit 0) or bad; {engine} and {iteration} are replaced by the engine path and "
    "the build number (also TRTDBG_ENGINE, TRTDBG_ITERATION in its environment)",
)


DESCRIPTION = """Build MODEL's engine repeatedly (fresh builder and empty timing cache each time), run --check on each engine (exit 0
= good; the engine path is in $TRTDBG_ENGINE and replaces {engine}), sort the engines into good/ and bad/, and
report which engine layer properties (type, precision, tactic, formats) differ between good and bad engines. Without
--check, builds --until N times and reports what differs between the builds. `debug repeat` (no MODEL) runs --check
again and again and moves the --artifacts it leaves into good/ or bad/ by its exit code ({iteration} and
$TRTDBG_ITERATION give the iteration)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``trtdbg debug``."""
    p = sub.add_parser(
        "debug",
        help="`debug build MODEL --until good|bad|N --check CMD`: catch tactic-dependent engine failures; "
        "`debug repeat --until N --check CMD --artifacts F`: sort any command's artifacts into good/bad",
        description=DESCRIPTION,
    )
    p.add_argument("what", choices=("build", "repeat"), help="the debug tool")
    p.add_argument("model", metavar="MODEL", nargs="?", help="ONNX model (debug build)")
    p.add_argument(
        "--artifacts",
        nargs="+",
        default=[],
        metavar="F",
        help="debug repeat: files the check leaves behind, moved to good/ or bad/ after each iteration",
    )
    p.add_argument(
        "--until", required=True, metavar="good|bad|N", help="stop at the first good or bad engine, or after N builds"
    )
    CHECK.add_parser_args(p)
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
    PRECISION.add_parser_args(p)
    add_json_arg(p)
    DATA.add_parser_args(p)
    add_trt_build_args(p, "TensorRT", timing_cache=False)
    add_workspace_arg(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Build (or repeat), check, sort and report."""
    if args.what == "repeat":
        return _run_repeat(args)
    return _run_build(args)


def _run_repeat(args: argparse.Namespace) -> int:
    """``debug repeat``: exit 0 when it finished (``--until good|bad`` reached, or N runs), 1 when --until was not met."""
    from engine_core.backend.trt.debug_build import new_run_dir
    from engine_core.debug_repeat import RepeatIteration, debug_repeat
    from engine_core.errors import TrtdbgError
    from tui.cli.progress import CliJob, line_printer

    if args.model:
        raise TrtdbgError(f"debug repeat takes no MODEL (got {args.model}); the --check command names its inputs")
    if not args.check:
        raise TrtdbgError("debug repeat needs --check CMD: the command whose exit code decides good (0) or bad")
    if args.max_iterations < 1:
        raise TrtdbgError("--max-iterations must be 1 or more")
    line = line_printer(args.json)

    def show(it: RepeatIteration) -> None:
        extra = f" ({it.detail})" if it.detail else ""
        line(f"[I] iteration {it.index}: {it.verdict}{extra}")

    check = CHECK.parse(args)
    assert check is not None
    with CliJob(show=show) as events:
        result = debug_repeat(
            check,
            args.artifacts,
            new_run_dir(args.artifacts_dir or "trtdbg_artifacts"),
            until=args.until,
            max_iterations=args.max_iterations,
            events=events,
        )
    print_result(result, args.json)
    reached = not isinstance(until := args.until, str) or until not in ("good", "bad")
    return 0 if reached or result.iterations[-1].verdict == until else 1


def _run_build(args: argparse.Namespace) -> int:
    """Build, check, sort and report."""
    import os

    from engine_core.backend.trt.debug_build import Iteration, debug_build, new_run_dir, parse_until
    from engine_core.errors import TrtdbgError
    from engine_core.precision.convert import rewritten_model
    from engine_core.workspace import Workspace
    from tui.cli.progress import CliJob, line_printer

    data = DATA.parse(args)
    until = parse_until(args.until)
    if args.max_iterations < 1:
        raise TrtdbgError("--max-iterations must be 1 or more")
    if not args.model:
        raise TrtdbgError("debug build needs MODEL (the ONNX model to build)")
    if not os.path.isfile(args.model):
        raise TrtdbgError(f"model {args.model} does not exist")
    if isinstance(until, str) and not args.check:
        raise TrtdbgError(f"--until {until} needs --check CMD to tell good engines from bad ones")
    check = CHECK.parse(args)

    line = line_printer(args.json)

    def show(it: Iteration) -> None:
        extra = f" ({it.detail})" if it.detail else ""
        line(
            f"[I] build {it.index}: {it.verdict}{extra}, {it.build_seconds:.2f}s, sha256 {it.sha256[:12]}, {it.engine}"
        )

    job = CliJob(show=show)
    warn = job.events.warn

    choice, feeds = model_inputs(args.model, data, warn, probe=True)  # the shapes compare would use
    if choice.note():
        warn(choice.note() or "")
    args.timing_cache = None  # each build gets its own empty timing cache
    options = trt_options_from_args(args)
    rewrite = PRECISION.parse(args)
    model, _ = rewritten_model(args.model, rewrite, feeds=feeds, on_warning=warn, engine=True)
    if args.artifacts_dir:
        base = args.artifacts_dir
    else:
        ws = Workspace.for_model(args.model, args.workspace)
        if ws.note:
            warn(ws.note)
        base = str(ws.path("debug-build"))
    with job:
        result = debug_build(
            model,
            args.model,
            new_run_dir(base),
            until=until,
            check=check,
            max_iterations=args.max_iterations,
            trt_options=options,
            shapes=choice.shapes,
            label=rewrite.label,
            events=job.events,
        )
    print_result(result, args.json)
    return 0
