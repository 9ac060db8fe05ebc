"""``trtdbg surgeon extract|sanitize|insert|prune``: edit a model into a new file (the input is never modified)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tui.cli.args import DataArgs, add_external_data_dir_arg, add_json_arg

DATA = DataArgs("input data for the equal-outputs check (default: one random sample)")
EXTRACT_DATA = DataArgs(
    "input data of the full-model run behind --save-inputs; --shapes also shapes the run that measures unknown tensors"
)


SURGEON_HELP = "extract, sanitize (fold constants), insert or prune nodes; writes a new model"
EXTRACT_HELP = "cut the sub-graph between tensors into its own model"
SANITIZE_HELP = "fold constants (also shape sub-graphs), clean up, sort; outputs checked equal"
INSERT_HELP = "insert a node; replaces what produced its outputs"
PRUNE_HELP = "remove nodes (bypassed, or their outputs become graph inputs)"
SURGEON_DESCRIPTION = """Graph surgery. Every subcommand writes a new model with -o (atomically, never over MODEL) and prints what changed.
Exit code 0 = written, 2 = bad input."""
EXTRACT_DESCRIPTION = """Keep what computes --outputs from --inputs. Missing shapes/dtypes come from shape inference, else one ONNX Runtime
run on generated inputs (--shapes). --save-inputs also writes the real values of the piece's inputs (the full model
run on the input data with them marked) as Polygraphy inputs JSON, so `trtdbg compare OUT --load-inputs F` compares
the piece alone on what it really sees."""
SANITIZE_DESCRIPTION = """In this order: --override-input-shapes, --cleanup, --toposort, --fold-constants (ONNX Runtime, repeated until
nothing changes). The result is run against MODEL on the input data (default: one random sample) and must give equal
outputs."""
INSERT_DESCRIPTION = """Insert one node reading --inputs and writing --outputs. Existing output tensors are taken over (the sub-graph that
produced them is removed when nothing else needs it); an output that is also an input wraps that tensor in place; a
new name becomes a graph output."""
PRUNE_DESCRIPTION = """Remove --nodes. By default readers of a removed node's output read its first input (dtype and static shape must
match); --as-inputs makes needed outputs graph inputs."""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="ONNX model (read only)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="where to write the new model")
    p.add_argument(
        "--external-data", action="store_true", help="write weights to OUT.data beside the model (required above 2 GB)"
    )
    p.add_argument(
        "--external-data-threshold",
        metavar="SIZE",
        default="1K",
        help="with --external-data: tensors of at least this size go to the data file (default 1K)",
    )
    add_external_data_dir_arg(p)
    add_json_arg(p, "print the change summary as JSON")


def _fallback_shapes(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--shapes",
        "--input-shapes",
        dest="shapes",
        nargs="+",
        metavar="NAME:1x3x224x224",
        help="input shapes for the fallback ONNX Runtime run",
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("surgeon", help=SURGEON_HELP, description=SURGEON_DESCRIPTION)
    ops = p.add_subparsers(dest="surgeon_command", metavar="SUBCOMMAND", required=True)

    e = ops.add_parser("extract", help=EXTRACT_HELP, description=EXTRACT_DESCRIPTION)
    _common(e)
    e.add_argument(
        "--inputs",
        nargs="+",
        metavar="NAME[:SHAPE[:DTYPE]]",
        help="tensors that become graph inputs (SHAPE 1x3x224x224, [1,3,h,w] or auto; DTYPE float32 or "
        "auto); default: the model inputs the outputs need",
    )
    e.add_argument(
        "--outputs", nargs="+", required=True, metavar="NAME[:DTYPE]", help="tensors that become graph outputs"
    )
    e.add_argument(
        "--save-inputs",
        nargs="?",
        const="",
        metavar="F",
        help="write the real values of the piece's inputs (full model on the input data) to F (.json, folder or "
        ".npz; default OUT's name with _inputs.json) and print the compare command",
    )
    EXTRACT_DATA.add_parser_args(e)
    e.set_defaults(run=run_extract)

    s = ops.add_parser("sanitize", help=SANITIZE_HELP, description=SANITIZE_DESCRIPTION)
    _common(s)
    s.add_argument("--fold-constants", action="store_true", help="fold constant sub-graphs through ONNX Runtime")
    s.add_argument("--cleanup", action="store_true", help="remove nodes and initializers that feed no output")
    s.add_argument("--toposort", action="store_true", help="sort nodes topologically")
    s.add_argument(
        "--override-input-shapes",
        nargs="+",
        metavar="NAME:1x3x640x640",
        help="fix input shapes (then shape sub-graphs can fold)",
    )
    s.add_argument("--no-fold-shapes", action="store_true", help="do not fold Shape/Size of statically shaped tensors")
    s.add_argument("--fold-size-threshold", metavar="SIZE", help="do not create folded constants larger than this")
    s.add_argument("--num-passes", type=int, metavar="N", help="at most N folding passes (default: until no change)")
    s.add_argument("--no-verify", action="store_true", help="skip running both models to check equal outputs")
    DATA.add_parser_args(s)
    s.set_defaults(run=run_sanitize)

    i = ops.add_parser("insert", help=INSERT_HELP, description=INSERT_DESCRIPTION)
    _common(i)
    i.add_argument("--op", required=True, help="op type, e.g. Identity, Clip")
    i.add_argument(
        "--inputs", nargs="+", required=True, metavar="NAME", help="input tensors (comma-separated or several)"
    )
    i.add_argument("--outputs", nargs="+", required=True, metavar="NAME", help="output tensors")
    i.add_argument(
        "--attrs", nargs="+", metavar="K=V", help="attributes as Python literals: axis=1 perm=[0,2,1] mode='nearest'"
    )
    i.add_argument("--name", help="node name (default trtdbg_insert_<op>)")
    i.add_argument("--domain", default="", help="op domain (default ai.onnx); custom domains skip schema checks")
    i.set_defaults(run=run_insert)

    r = ops.add_parser("prune", help=PRUNE_HELP, description=PRUNE_DESCRIPTION)
    _common(r)
    r.add_argument("--nodes", nargs="+", required=True, metavar="NAME", help="node names (comma-separated or several)")
    r.add_argument("--as-inputs", action="store_true", help="make the removed nodes' needed outputs graph inputs")
    _fallback_shapes(r)
    r.set_defaults(run=run_prune)


def _run(args: argparse.Namespace, **edit: Any) -> int:
    """Run the edit ``args.surgeon_command`` with the command's common options; print the change summary."""
    from engine_core.surgeon.job import SurgeryRequest, run_surgery
    from engine_core.sysinfo import parse_size

    request = SurgeryRequest(
        args.surgeon_command,
        args.model,
        args.output,
        external_data=args.external_data,
        external_data_threshold=parse_size(args.external_data_threshold, "--external-data-threshold"),
        external_data_dir=args.external_data_dir,
        **edit,
    )
    result = run_surgery(request, on_warning=lambda w: print(f"trtdbg: warning: {w}", file=sys.stderr))
    if args.json:
        doc: dict[str, Any] = {"changes": result.changes.to_json(), "written": [str(p) for p in result.written]}
        if result.verified is not None:
            doc["verify"] = result.verified.to_json()
        if result.inputs_saved is not None:
            doc["inputs_saved"] = str(result.inputs_saved)
            doc["compare_command"] = result.compare_command
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return 0
    if result.verified is not None:
        print(f"verified: {result.verified.to_text()}", file=sys.stderr)
    sys.stdout.write(result.changes.to_text() + "\n")
    sys.stdout.write("wrote " + ", ".join(str(p) for p in result.written) + "\n")
    if result.inputs_saved is not None:
        sys.stdout.write(f"saved the piece's real inputs ({result.inputs_data}) to {result.inputs_saved}\n")
        sys.stdout.write(f"compare the piece alone: {result.compare_command}\n")
    return 0


def run_extract(args: argparse.Namespace) -> int:
    data = EXTRACT_DATA.parse(args)
    return _run(
        args,
        inputs=args.inputs or (),
        outputs=args.outputs,
        shapes=data.shapes,
        data=data,
        save_inputs=args.save_inputs,
    )


def run_sanitize(args: argparse.Namespace) -> int:
    from engine_core.sysinfo import parse_size

    threshold = args.fold_size_threshold
    return _run(
        args,
        fold_constants=args.fold_constants,
        cleanup=args.cleanup,
        toposort=args.toposort,
        input_shapes=args.override_input_shapes or (),
        fold_shapes=not args.no_fold_shapes,
        fold_size_threshold=parse_size(threshold, "--fold-size-threshold") if threshold else None,
        max_passes=args.num_passes,
        verify=not args.no_verify,
        data=DATA.parse(args),
    )


def run_insert(args: argparse.Namespace) -> int:
    return _run(
        args,
        op=args.op,
        inputs=args.inputs,
        outputs=args.outputs,
        attrs=args.attrs or (),
        name=args.name or "",
        domain=args.domain,
    )


def run_prune(args: argparse.Namespace) -> int:
    return _run(args, nodes=args.nodes, as_inputs=args.as_inputs, shapes=args.shapes or ())
