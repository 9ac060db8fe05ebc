"""``trtdbg check lint MODEL``: static model findings, one line each (or JSON)."""

from __future__ import annotations

import argparse

from tui.cli.args import add_choice, add_external_data_dir_arg, add_json_arg
from tui.cli.output import print_result

HELP = "model checks: `check lint MODEL`"
DESCRIPTION = """Lint an ONNX model: checker errors, duplicate/unnamed/dead nodes, unused inputs and initializers, missing shapes,
ops the backend cannot run, FP16-range weights. Exit 0 = no errors, 1 = errors found, 2 = usage or input error."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help=HELP, description=DESCRIPTION)
    p.add_argument("what", choices=("lint",), help="the check to run")
    p.add_argument("model", metavar="MODEL", help="ONNX model")
    add_external_data_dir_arg(p)
    add_choice(p, "--backend", ("ort", "none"), "also ask this backend whether it can load the model (default ort)")
    add_json_arg(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from engine_core.model.lint import lint_model
    from engine_core.model.loader import check_external_data, load_model

    model = load_model(args.model, load_external_data=False)
    check_external_data(model, args.model, args.external_data_dir)
    backend = None if args.backend == "none" else args.backend
    report = lint_model(model, args.model, backend=backend, data_dir=args.external_data_dir)
    print_result(report, args.json)
    return 0 if report.passed else 1
