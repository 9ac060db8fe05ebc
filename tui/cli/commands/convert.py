"""``trtdbg convert MODEL -o OUT.onnx|OUT.plan``: the precision-rewritten ONNX, or a TensorRT engine built from it."""

from __future__ import annotations

import argparse

from tui.cli.args import DataArgs, PrecisionArgs, add_external_data_dir_arg, add_json_arg, model_inputs
from tui.cli.commands.trt_cli import add_trt_build_args, trt_options_from_args
from tui.cli.output import print_result

DATA = DataArgs()
PRECISION = PrecisionArgs(
    "whole-model precision (default fp32: the model as it is)",
    "TensorRT calibration cache to take INT8 scales from",
    fallback=True,
)


HELP = "write the mixed-precision / Q/DQ ONNX (-o X.onnx) or build a TensorRT engine (-o X.plan)"
DESCRIPTION = """Rewrite MODEL with a precision (whole model, rules keep unsafe nodes in FP32) or a plan from `trtdbg bisect`, and
write the rewritten ONNX (.onnx: what strongly typed TensorRT deploys) or a TensorRT engine built from it
(.plan/.engine). INT8 nodes get Q/DQ calibrated on the input data (random by default), the plan's ranges or a
TensorRT calibration cache."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``trtdbg convert``."""
    p = sub.add_parser("convert", help=HELP, description=DESCRIPTION)
    p.add_argument("model", metavar="MODEL", help="ONNX model (FP32)")
    add_external_data_dir_arg(p, "folder of MODEL's external data (default: beside MODEL; .onnx outputs only)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="OUT.onnx, or OUT.plan / OUT.engine")
    PRECISION.add_parser_args(p)
    add_json_arg(p)
    DATA.add_parser_args(p)
    add_trt_build_args(p, "TensorRT (.plan outputs)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Convert and print what was written."""
    import os

    from engine_core.errors import TrtdbgError
    from engine_core.precision.convert import convert, output_kind
    from tui.cli.progress import warn

    output_kind(args.output)  # bad suffix: fail before any work
    data = DATA.parse(args)
    engine = output_kind(args.output) == "engine"
    trt_options = trt_options_from_args(args) if engine else None
    if not os.path.isfile(args.model):
        raise TrtdbgError(f"model {args.model} does not exist")
    choice, feeds = model_inputs(args.model, data, warn, probe=engine)  # --shapes checked like compare's
    if engine and choice.note():
        warn(choice.note() or "")
    result = convert(
        args.model,
        args.output,
        PRECISION.parse(args),
        feeds=feeds,
        trt_options=trt_options,
        shapes=choice.shapes,
        on_warning=warn,
        data_dir=args.external_data_dir,
    )
    print_result(result, args.json)
    return 0
