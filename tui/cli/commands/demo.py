"""``trtdbg demo``: build the built-in demo model and open the app on it (``--headless``: print the report)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from tui.cli.args import add_json_arg, add_workspace_arg
from tui.cli.commands.open import add_ui_args

if TYPE_CHECKING:
    from engine_core.model.demo import DemoFiles
    from tui.screens.compare_dialog import CompareForm

DEMO_SUBJECT = "ort:fp16"
DEMO_TITLE = "demo.onnx: FP32 vs FP16 (ort:fp16, emulated on CPU)"


HELP = "write the built-in demo model to the workspace and open the app on it (FP32 vs emulated FP16)"
DESCRIPTION = """Writes demo.onnx (conv stem + attention block + head, with a planted FP16 overflow and underflow), its all-FP16 copy
and inputs into the workspace, then opens the app on it with the compare set up (press r, then ctrl+s). With
--headless or --json (or without a terminal) it compares every tensor of the model run in emulated FP16 (ort:fp16)
against FP32 on ONNX Runtime CPU and prints the report."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help=HELP, description=DESCRIPTION)
    add_workspace_arg(p)
    p.add_argument("--headless", action="store_true", help="no app: run the compare and print the report")
    add_json_arg(p, "no app: print the compare report as JSON", quiet="no progress bar (headless)")
    add_ui_args(p)
    p.set_defaults(run=run)


def demo_form(files: DemoFiles) -> CompareForm:
    """Compare-dialog defaults for the demo: emulated FP16 (``ort:fp16``) as the subject, on the demo inputs."""
    from tui.screens.compare_dialog import CompareForm

    return CompareForm(
        subject=DEMO_SUBJECT, data="inputs", data_path=str(files.inputs), atol="1e-2", rtol="1e-2", what="marked"
    )


def run(args: argparse.Namespace) -> int:
    from engine_core.model.demo import write_demo
    from tui.cli.commands.open import check_terminal, launch

    files = write_demo(args.workspace)
    headless = args.headless or args.json
    if not headless:
        why = check_terminal()
        if why:
            print(f"trtdbg demo: {why}; printing the compare report instead (--headless)", file=sys.stderr)
            headless = True
    if not headless:
        return launch(str(files.model), args, demo_form(files), title=DEMO_TITLE)
    return run_headless(files, args)


def run_headless(files: DemoFiles, args: argparse.Namespace) -> int:
    from engine_core.comparator.request import CompareRequest, execute
    from engine_core.options import DataOptions, ToleranceOptions
    from tui.cli.progress import CliJob

    print(f"demo model: {files.model}\nFP16 copy:  {files.fp16_model}\ninputs:     {files.inputs}", file=sys.stderr)
    request = CompareRequest(
        model=str(files.model),
        subject=DEMO_SUBJECT,
        marks=["all"],
        tolerances=ToleranceOptions(atol=("1e-2",), rtol=("1e-2",)),
        data=DataOptions(load_inputs=(str(files.inputs),)),
        workspace=str(files.workspace),
    )
    with CliJob(quiet=args.quiet) as events:
        report = execute(request, events)
    sys.stdout.write((report.dumps() if args.json else report.to_text()) + "\n")
    if not args.json:
        print(
            f"next: trtdbg bisect {files.model} --auto --precision fp16 --load-inputs {files.inputs}"
            f"  (which nodes must stay FP32)",
            file=sys.stderr,
        )
    return 0 if report.passed else 1
