"""``trtdbg template trt-network MODEL -o script.py``: a runnable TensorRT network-API script for a model."""

from __future__ import annotations

import argparse
import os
import sys

from tui.cli.args import add_trt_module_arg

HELP = "write a script: `template trt-network MODEL -o script.py` (TensorRT network API)"
DESCRIPTION = """Write a runnable Python script that parses MODEL with the TensorRT ONNX parser, lists the parsed layers, leaves a
marked place in edit() to change the network, then builds and saves the engine (`python script.py -o model.plan`)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``trtdbg template``."""
    p = sub.add_parser("template", help=HELP, description=DESCRIPTION)
    p.add_argument("kind", choices=("trt-network",), help="the template to write")
    p.add_argument("model", metavar="MODEL", help="ONNX model")
    p.add_argument("-o", "--output", required=True, metavar="SCRIPT.py", help="where to write the script")
    add_trt_module_arg(p, "module the script imports: auto = tensorrt, else tensorrt_rtx (decided when it runs)")
    p.add_argument(
        "--shapes",
        nargs="+",
        metavar="NAME:SHAPE",
        help="shapes of dynamic inputs (min=opt=max; default: the shapes compare would use)",
    )
    for which in ("min", "opt", "max"):
        p.add_argument(
            f"--trt-{which}-shapes", nargs="+", metavar="NAME:SHAPE", help=f"{which} shapes of the optimization profile"
        )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Generate the script and write it atomically."""
    from engine_core.backend.ort import OrtRunner
    from engine_core.backend.trt.template import trt_network_script
    from engine_core.data.shape_choice import choose_shapes
    from engine_core.data.shapes import parse_profile
    from engine_core.errors import TrtdbgError
    from engine_core.model.loader import load_model
    from engine_core.workspace import atomic_write_text

    if not os.path.isfile(args.model):
        raise TrtdbgError(f"model {args.model} does not exist")
    if os.path.exists(args.output) and os.path.samefile(args.output, args.model):
        raise TrtdbgError(f"output {args.output} is the input model; choose another path (inputs are never modified)")
    profile = parse_profile(args.trt_min_shapes or [], args.trt_opt_shapes or [], args.trt_max_shapes or [])
    metas = OrtRunner(load_model(args.model, load_external_data=False), args.model).input_metadata()
    choice = choose_shapes(metas, args.shapes or [], args.model)
    if choice.note():
        print(f"trtdbg: warning: {choice.note()}", file=sys.stderr)
    text = trt_network_script(
        args.model,
        module=args.trt_module,
        shapes=choice.shapes,
        profile=profile,
        script_name=os.path.basename(args.output),
    )
    atomic_write_text(args.output, text)
    print(
        f"[I] Wrote {args.output}: edit the network in edit(), then run `python {args.output} -o ENGINE.plan`",
        file=sys.stderr,
    )
    return 0
