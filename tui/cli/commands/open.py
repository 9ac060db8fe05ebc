"""``trtdbg open MODEL`` (also ``trtdbg MODEL.onnx``): open the Textual app on a model."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from tui.cli.args import DataArgs, ToleranceArgs, add_external_data_dir_arg, add_workspace_arg

DATA = DataArgs("input data of the app's compares (editable in its compare dialog)")
TOLERANCES = ToleranceArgs("tolerances of the app's compares (editable in its compare dialog)")

if TYPE_CHECKING:
    from tui.screens.compare_dialog import CompareForm


HELP = "open the interactive debugger on a model (also: trtdbg MODEL.onnx)"
DESCRIPTION = """Open the Textual app: the graph by name scope, marks, a live layer-by-layer compare, bisection and surgery. Needs a
terminal; over SSH add --low-bandwidth."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("open", help=HELP, description=DESCRIPTION)
    p.add_argument("model", metavar="MODEL", help="ONNX model")
    add_external_data_dir_arg(p)
    add_ui_args(p)
    g = p.add_argument_group("compare defaults (editable in the app's compare dialog)")
    g.add_argument("--ref", metavar="SPEC", help="reference backend (default ort)")
    g.add_argument("--subject", metavar="SPEC", help="subject backend, e.g. ort-cuda")
    g.add_argument("--subject-model", metavar="M2", help="a second model run as the subject (e.g. its FP16 copy)")
    TOLERANCES.add_parser_args(p)
    DATA.add_parser_args(p)
    p.add_argument(
        "--engine",
        metavar="FILE",
        help="TensorRT engine (.plan/.engine) or engine-inspector JSON (trtexec --exportLayerInfo) for "
        "the TensorRT view (t)",
    )
    add_workspace_arg(p)
    p.set_defaults(run=run)


def add_ui_args(p: argparse.ArgumentParser) -> None:
    """Options of the terminal UI shared by ``open`` and ``demo``."""
    g = p.add_argument_group("terminal")
    g.add_argument(
        "--no-mouse", action="store_true", help="do not capture the mouse (terminal selection keeps working)"
    )
    g.add_argument("--low-bandwidth", action="store_true", help="no animations and 2 Hz live updates (slow SSH links)")
    g.add_argument(
        "--keymap",
        metavar="FILE.json",
        help="key overrides {binding id: keys} (default ~/.config/trtdbg/keymap.json; ids are in ? help)",
    )


def form_from_args(args: argparse.Namespace) -> CompareForm:
    """Compare-dialog defaults from the command line."""
    from tui.screens.compare_dialog import SECOND_MODEL, CompareForm

    form = CompareForm()
    if args.ref:
        form.ref = args.ref
    if args.subject_model:
        form.subject, form.subject_path = SECOND_MODEL, args.subject_model
    elif args.subject:
        form.subject = args.subject
    form.set_options(DATA.parse(args), TOLERANCES.parse(args))
    return form


def check_terminal() -> str | None:
    """Why the app cannot start here (``None`` when stdin and stdout are terminals)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return "the app needs a terminal (stdin and stdout are not TTYs)"
    return None


def launch(model: str, args: argparse.Namespace, form: CompareForm | None, title: str | None = None) -> int:
    """Run the app until the user quits."""
    from tui.app import TrtdbgApp

    app = TrtdbgApp(
        model,
        workspace=args.workspace,
        compare=form,
        low_bandwidth=args.low_bandwidth,
        keymap=args.keymap,
        title=title,
        engine=getattr(args, "engine", None),
        external_data_dir=getattr(args, "external_data_dir", None),
    )
    app.run(mouse=not args.no_mouse)
    return int(app.return_code or 0)


def run(args: argparse.Namespace) -> int:
    from engine_core.errors import TrtdbgError

    if not os.path.exists(args.model):
        raise TrtdbgError(f"{args.model}: no such file")
    form = form_from_args(args)
    why = check_terminal()
    if why:
        raise TrtdbgError(
            f"{why}; for scripts use `trtdbg inspect {args.model}` or `trtdbg compare {args.model} --json`"
        )
    return launch(args.model, args, form)
