"""``trtdbg surgeon extract|sanitize|insert|prune``: edit a model into a new file (the input is never modified)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tui.cli.args import DataArgs

DATA = DataArgs("input data for the equal-outputs check (default: one random sample)")


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
    p.add_argument("--external-data-dir", metavar="DIR", help="folder of MODEL's external data (default: beside MODEL)")
    p.add_argument("--json", action="store_true", help="print the change summary as JSON")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "surgeon",
        help="extract, sanitize (fold constants), insert or prune nodes; writes a new model",
        description="Graph surgery. Every subcommand writes a new model with -o (atomically, never over "
        "MODEL) and prints what changed. Exit code 0 = written, 2 = bad input.",
    )
    ops = p.add_subparsers(dest="surgeon_command", metavar="SUBCOMMAND", required=True)

    e = ops.add_parser(
        "extract",
        help="cut the sub-graph between tensors into its own model",
        description="Keep what computes --outputs from --inputs. Missing shapes/dtypes come from shape "
        "inference, else one ONNX Runtime run on generated inputs (--shapes).",
    )
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
        "--shapes",
        "--input-shapes",
        dest="shapes",
        nargs="+",
        metavar="NAME:1x3x224x224",
        help="input shapes for the fallback ONNX Runtime run",
    )
    e.set_defaults(run=run_extract)

    s = ops.add_parser(
        "sanitize",
        help="fold constants (also shape sub-graphs), clean up, sort; outputs checked equal",
        description="In this order: --override-input-shapes, --cleanup, --toposort, --fold-constants "
        "(ONNX Runtime, repeated until nothing changes). The result is run against MODEL on "
        "the input data (default: one random sample) and must give equal outputs.",
    )
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

    i = ops.add_parser(
        "insert",
        help="insert a node; replaces what produced its outputs",
        description="Insert one node reading --inputs and writing --outputs. Existing output tensors "
        "are taken over (the sub-graph that produced them is removed when nothing else "
        "needs it); an output that is also an input wraps that tensor in place; a new name "
        "becomes a graph output.",
    )
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

    r = ops.add_parser(
        "prune",
        help="remove nodes (bypassed, or their outputs become graph inputs)",
        description="Remove --nodes. By default readers of a removed node's output read its first input "
        "(dtype and static shape must match); --as-inputs makes needed outputs graph inputs.",
    )
    _common(r)
    r.add_argument("--nodes", nargs="+", required=True, metavar="NAME", help="node names (comma-separated or several)")
    r.add_argument("--as-inputs", action="store_true", help="make the removed nodes' needed outputs graph inputs")
    r.add_argument(
        "--shapes",
        "--input-shapes",
        dest="shapes",
        nargs="+",
        metavar="NAME:1x3x224x224",
        help="input shapes for the fallback ONNX Runtime run",
    )
    r.set_defaults(run=run_prune)


def _items(values: list[str] | None) -> list[str]:
    return [s.strip() for v in values or () for s in v.split(",") if s.strip()]


def _load(args: argparse.Namespace) -> tuple[Any, list[str]]:
    """The model with its weights, and the files that must not be overwritten."""
    from pathlib import Path

    from engine_core.model.loader import load_model
    from engine_core.surgeon.export import check_output_path, external_data_files

    bare = load_model(args.model, load_external_data=False, external_data_dir=args.external_data_dir)
    base = args.external_data_dir or Path(args.model).parent
    protect = [args.model, *map(str, external_data_files(bare, base))]
    check_output_path(args.output, protect, external_data=args.external_data)
    if len(protect) == 1:
        return bare, protect
    return load_model(args.model, external_data_dir=args.external_data_dir), protect


def _finish(args: argparse.Namespace, result: Any, protect: list[str], extra: dict[str, Any] | None = None) -> int:
    from engine_core.surgeon.export import save_model
    from engine_core.sysinfo import parse_size

    threshold = parse_size(args.external_data_threshold, "--external-data-threshold")
    written = save_model(
        result.model, args.output, external_data=args.external_data, threshold=threshold, protect=protect
    )
    if args.json:
        doc = {"changes": result.changes.to_json(), "written": [str(p) for p in written], **(extra or {})}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        sys.stdout.write(result.changes.to_text() + "\n")
        sys.stdout.write("wrote " + ", ".join(str(p) for p in written) + "\n")
    return 0


def run_extract(args: argparse.Namespace) -> int:
    from engine_core.surgeon.extract import extract, parse_tensor_specs
    from engine_core.surgeon.graph import top_level_tensors

    model, protect = _load(args)
    known = top_level_tensors(model)
    inputs = parse_tensor_specs(args.inputs, known, "--inputs", args.model, with_shape=True) if args.inputs else None
    outputs = parse_tensor_specs(args.outputs, known, "--outputs", args.model, with_shape=False)
    result = extract(model, inputs, outputs, path=args.model, fallback_shapes=args.shapes or ())
    return _finish(args, result, protect)


def run_sanitize(args: argparse.Namespace) -> int:
    from engine_core.data.shapes import parse_shapes
    from engine_core.errors import TrtdbgError
    from engine_core.surgeon.sanitize import SanitizeOptions, sanitize
    from engine_core.sysinfo import parse_size

    if args.num_passes is not None and args.num_passes < 1:
        raise TrtdbgError("--num-passes must be at least 1")
    data = DATA.parse(args)
    model, protect = _load(args)
    options = SanitizeOptions(
        fold_constants=args.fold_constants,
        cleanup=args.cleanup,
        toposort=args.toposort,
        override_input_shapes=parse_shapes(args.override_input_shapes or []),
        fold_shapes=not args.no_fold_shapes,
        fold_size_threshold=parse_size(args.fold_size_threshold, "--fold-size-threshold")
        if args.fold_size_threshold
        else None,
        max_passes=args.num_passes,
    )
    result = sanitize(model, options, path=args.model)
    extra: dict[str, Any] = {}
    if not args.no_verify:
        extra["verify"] = _verify(data, args.model, model, result.model)
        if not args.json:
            worst = max((d["max_abs"] for d in extra["verify"]["outputs"]), default=0.0)
            print(
                f"verified: outputs equal to MODEL on {extra['verify']['samples']} sample(s) "
                f"({extra['verify']['data']}); max |diff| {worst:.3g}",
                file=sys.stderr,
            )
    return _finish(args, result, protect, extra)


def _verify(data: Any, path: str, original: Any, edited: Any) -> dict[str, Any]:
    """Run MODEL and the edited model on ``data`` (:class:`DataOptions`); raise when an output differs."""
    from engine_core.backend.ort import OrtRunner
    from engine_core.errors import TrtdbgError
    from engine_core.surgeon.verify import compare_models

    with OrtRunner(edited, path, opt_level="disable") as runner:
        metas = runner.input_metadata()
    source = data.source(metas)
    feeds = list(source)
    for w in source.warnings:
        print(f"trtdbg: warning: {w}", file=sys.stderr)
    diffs = compare_models(original, path, edited, feeds)
    bad = next((d for d in diffs if not d.equal), None)
    if bad is not None:
        raise TrtdbgError(
            f"the sanitized model's output '{bad.name}' differs from MODEL ({bad.reason}); nothing "
            f"written — rerun without --fold-constants, or with --no-verify to keep it anyway"
        )
    return {
        "samples": len(feeds),
        "data": source.describe(),
        "outputs": [{"name": d.name, "max_abs": d.max_abs} for d in diffs],
    }


def run_insert(args: argparse.Namespace) -> int:
    from engine_core.surgeon.insert import insert_node, parse_attrs

    model, protect = _load(args)
    result = insert_node(
        model,
        args.op,
        _items(args.inputs),
        _items(args.outputs),
        attrs=parse_attrs(args.attrs or []),
        name=args.name,
        domain=args.domain,
        path=args.model,
    )
    return _finish(args, result, protect)


def run_prune(args: argparse.Namespace) -> int:
    from engine_core.surgeon.prune import prune_nodes

    model, protect = _load(args)
    result = prune_nodes(
        model, _items(args.nodes), as_inputs=args.as_inputs, path=args.model, fallback_shapes=args.shapes or ()
    )
    return _finish(args, result, protect)
