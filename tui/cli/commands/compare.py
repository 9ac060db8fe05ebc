"""``trtdbg compare``: run a reference and a subject, compare tensors layer by layer."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from tui.cli.args import (
    CheckArgs,
    DataArgs,
    ToleranceArgs,
    add_choice,
    add_external_data_dir_arg,
    add_json_arg,
    add_ort_opt_level_arg,
    add_workspace_arg,
)
from tui.cli.commands.trt_cli import add_trt_args

if TYPE_CHECKING:
    from engine_core.comparator.request import CompareRequest

DATA = DataArgs()
TOLERANCES = ToleranceArgs()
CHECKS = CheckArgs()


HELP = "compare a reference backend against a subject, tensor by tensor"
DESCRIPTION = """Run MODEL on a reference and a subject and compare the marked tensors. Exit code 0 = all passed, 1 = some tensor
failed, 2 = usage or input error."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help=HELP, description=DESCRIPTION)
    p.add_argument("model", metavar="MODEL", help="ONNX model")
    add_external_data_dir_arg(p)
    ref = p.add_argument_group("reference (default: ort, CPU FP32)").add_mutually_exclusive_group()
    ref.add_argument("--ref", metavar="SPEC", default=None, help="reference backend: ort (default) or ort-cuda")
    ref.add_argument("--ref-model", metavar="M", help="run this model as the reference (tensors matched to MODEL's)")
    ref.add_argument("--ref-outputs", metavar="F", help="saved reference outputs (Polygraphy JSON, directory or .npz)")
    sbj = p.add_argument_group("subject").add_mutually_exclusive_group()
    sbj.add_argument(
        "--subject",
        metavar="SPEC",
        help="subject backend: ort, ort-cuda, or with a precision: ort:fp16|bf16|int8 (CPU, FP16/BF16 "
        "storage rounding emulated), ort-cuda:fp16|bf16|int8 (real types), trt, trt:fp16|bf16|int8, "
        "trt-rtx[:fp16] (TensorRT; see the TensorRT options)",
    )
    sbj.add_argument(
        "--subject-model", metavar="M2", help="a second model run as the subject (e.g. its FP16/INT8 copy)"
    )
    sbj.add_argument("--load-outputs", metavar="F", help="saved subject outputs (Polygraphy JSON, directory or .npz)")
    runners = p.add_argument_group("saved files with several runners (Polygraphy `run --onnxrt --trt --save-outputs`)")
    runners.add_argument(
        "--ref-runner",
        metavar="NAME|INDEX",
        help="runner of --ref-outputs (or of --load-outputs given alone) used as the reference; default: the last",
    )
    runners.add_argument(
        "--subject-runner",
        metavar="NAME|INDEX",
        help="runner of --load-outputs used as the subject; default: the first. --load-outputs F alone compares "
        "F's runners like `polygraphy run --load-outputs F`: runner i vs runner i+1",
    )
    p.add_argument(
        "--subject-backend", metavar="SPEC", default="ort", help="backend that runs --subject-model (default ort)"
    )
    p.add_argument(
        "--plan",
        metavar="FILE",
        help="precision plan (from `trtdbg bisect`) that the --subject backend runs (default subject: ort)",
    )
    marks = p.add_argument_group("what to compare")
    marks.add_argument(
        "--mark",
        action="append",
        metavar="all|NAME,...",
        help="tensors to compare: 'all' (or '*'), names or fnmatch patterns (default: model outputs)",
    )
    marks.add_argument(
        "--mark-op", action="append", metavar="OP,...", help="also mark outputs of nodes of these op types"
    )
    marks.add_argument("--exclude", action="append", metavar="NAME,...", help="tensors (or patterns) not to compare")
    TOLERANCES.add_parser_args(p)
    CHECKS.add_parser_args(p)
    DATA.add_parser_args(p)
    out = p.add_argument_group("output and limits")
    out.add_argument("--save-inputs", metavar="F", help="save the inputs used (.json, .npz, or a directory)")
    out.add_argument(
        "--save-outputs",
        metavar="F",
        help="save the compared tensors of both sides as one Polygraphy RunResults (subject, then reference; "
        ".json or a directory; .npz: the reference only)",
    )
    out.add_argument("--fail-fast", action="store_true", help="stop at the first failing tensor")
    out.add_argument(
        "--mem-budget",
        metavar="SIZE",
        help="memory for marked tensors, e.g. 2G or 512M (default: half of the free RAM)",
    )
    add_ort_opt_level_arg(
        out,
        "ONNX Runtime graph optimization level (default: disable when intermediate tensors are "
        "compared, so marking never changes fusions and results; all otherwise)",
    )
    add_json_arg(out, "print one JSON document instead of text (compact unless on a terminal)", quiet="no progress bar")
    out.add_argument(
        "--first-failing",
        choices=("any", "float"),  # engine_core.comparator.engine.FIRST_FAILING_KINDS (--help imports no engine)
        default="any",
        help="what 'first failing' points at: any tensor (default) or float tensors only",
    )
    out.add_argument(
        "--order-stats",
        action="store_true",
        help="also compute median, p90/p95/p99 and std of both errors for every tensor (slower)",
    )
    out.add_argument("--show-all", action="store_true", help="list every compared tensor, not only failing ones")
    out.add_argument(
        "--save-plot",
        metavar="F.png|F.svg",
        help="write the error-along-the-graph plot (per-tensor error in graph order, log scale; needs matplotlib)",
    )
    add_choice(
        out,
        "--plot-metric",
        ("max_abs", "mean_abs", "max_rel", "mean_rel", "one_minus_cosine"),
        "what --save-plot shows (default max_abs)",
    )
    add_workspace_arg(p)
    add_trt_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from engine_core.comparator.report import json_safe
    from engine_core.comparator.request import comparisons, execute
    from tui.cli.progress import CliJob

    if args.save_plot:
        from engine_core.comparator.plot import check_plot_target

        check_plot_target(args.save_plot, args.plot_metric)
    reports = []
    for request in comparisons(request_from_args(args)):
        with CliJob(quiet=args.quiet) as events:
            reports.append(execute(request, events))
    if args.save_plot:
        from engine_core.comparator.plot import save_plot

        save_plot(reports[0], args.save_plot, args.plot_metric)
    passed = all(r.passed for r in reports)
    if len(reports) == 1:
        out = reports[0].dumps(indent=sys.stdout.isatty()) if args.json else reports[0].to_text(show_all=args.show_all)
    elif args.json:
        import json

        doc = {"passed": passed, "comparisons": [r.to_json() for r in reports]}
        out = json.dumps(json_safe(doc), indent=2)
    else:
        texts = [r.to_text(show_all=args.show_all) for r in reports]
        ok = sum(r.passed for r in reports)
        out = "\n\n".join(texts) + f"\n\n{'PASSED' if passed else 'FAILED'} | {ok}/{len(reports)} runner pairs passed"
    sys.stdout.write(out + "\n")
    return 0 if passed else 1


def request_from_args(args: argparse.Namespace) -> CompareRequest:
    """The engine's ``CompareRequest`` for ``trtdbg compare`` arguments (typed options, validated)."""
    from engine_core.comparator.request import CompareRequest
    from engine_core.sysinfo import parse_size
    from tui.cli.commands.trt_cli import trt_options_from_args

    return CompareRequest(
        model=args.model,
        ref=args.ref,
        ref_model=args.ref_model,
        ref_outputs=args.ref_outputs,
        subject=args.subject,
        subject_model=args.subject_model,
        subject_outputs=args.load_outputs,
        subject_backend=args.subject_backend,
        ref_runner=args.ref_runner,
        subject_runner=args.subject_runner,
        marks=comma_items(args.mark),
        mark_ops=comma_items(args.mark_op),
        exclude=comma_items(args.exclude),
        tolerances=TOLERANCES.parse(args),
        data=DATA.parse(args),
        checks=CHECKS.parse(args),
        save_inputs=args.save_inputs,
        save_outputs=args.save_outputs,
        fail_fast=args.fail_fast,
        mem_budget=parse_size(args.mem_budget, "--mem-budget") if args.mem_budget is not None else None,
        ort_opt_level=args.ort_opt_level,
        workspace=args.workspace,
        plan=args.plan,
        trt_options=trt_options_from_args(args),
        first_failing=args.first_failing,
        order_stats=args.order_stats,
        external_data_dir=args.external_data_dir,
    )


def comma_items(values: list[str] | None) -> list[str]:
    """``["a,b", "c"]`` → ``["a", "b", "c"]`` (repeated and comma-separated option values)."""
    return [s.strip() for v in values or () for s in v.split(",") if s.strip()]
