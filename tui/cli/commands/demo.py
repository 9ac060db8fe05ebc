"""``trtdbg demo``: build the built-in demo model and run the main job on it."""

from __future__ import annotations

import argparse
import sys

from tui.cli.commands.common import add_workspace_arg


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="write the built-in demo model to the workspace and compare FP32 against FP16 on it",
        description=(
            "Writes demo.onnx (conv stem + attention block + head, with a planted FP16 overflow and underflow) "
            "and its all-FP16 copy into the workspace, then compares every tensor of the FP16 copy against "
            "the FP32 model on ONNX Runtime CPU."
        ),
    )
    add_workspace_arg(p)
    p.add_argument("--json", action="store_true", help="print the compare report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from engine_core.comparator.request import CompareRequest, execute
    from engine_core.comparator.tolerances import CompareSettings
    from engine_core.demo_job import write_demo
    from tui.cli.progress import ProgressBar

    files = write_demo(args.workspace)
    print(f"demo model: {files.model}\nFP16 copy:  {files.fp16_model}\ninputs:     {files.inputs}", file=sys.stderr)
    request = CompareRequest(
        model=str(files.model), subject_model=str(files.fp16_model), marks=["all"],
        settings=CompareSettings.from_specs(atol=["1e-2"], rtol=["1e-2"]),
        load_inputs=[str(files.inputs)], workspace=str(files.workspace),
    )
    bar = ProgressBar(enabled=not args.quiet and sys.stderr.isatty())
    try:
        report = execute(request, on_progress=bar.update, on_warning=bar.warn)
    finally:
        bar.close()
    sys.stdout.write((report.dumps() if args.json else report.to_text()) + "\n")
    return 0 if report.passed else 1
