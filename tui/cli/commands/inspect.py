"""`trtdbg inspect [model] MODEL`: Polygraphy-style model summary as text or JSON.

The first word may be ``model`` (Polygraphy's spelling); ``inspect data FILE`` summarizes a saved
inputs/outputs file; ``inspect engine FILE`` (or any ``*.plan``/``*.engine``) shows a TensorRT engine or
engine-inspector JSON, and ``--display-as trt`` shows a model as TensorRT parses it (:mod:`trt_cli`);
``inspect capability MODEL`` lists the nodes the TensorRT ONNX parser supports, as subgraphs; ``inspect tactics FILE``
lists a tactic replay, timing cache or engine per layer.
Only argparse is imported here; engine_core loads inside :func:`run`.
"""

from __future__ import annotations

import argparse
import os
import sys

from tui.cli.args import add_external_data_dir_arg, add_json_arg
from tui.cli.commands.trt_cli import add_inspect_args, is_engine_path, run_engine, run_network
from tui.cli.output import print_result

_RESERVED: tuple[str, ...] = ()
_KINDS = ("model", "data", "engine", "capability", "tactics") + _RESERVED


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``trtdbg inspect``."""
    p = sub.add_parser(
        "inspect",
        help="summarize an ONNX model (Polygraphy `inspect model` layout, or JSON)",
        description="Summarize an ONNX model: graph inputs/outputs, initializers, nodes. The layout follows "
        "Polygraphy's `inspect model`; intermediate tensors get dtype/shape from shape inference.",
        usage="trtdbg inspect [model] MODEL [--show layers,attrs,weights] [--json] [options]\n"
        "       trtdbg inspect data FILE [--all] [--show-values] [--histogram] [--json]\n"
        "       trtdbg inspect MODEL --display-as trt [--engine-layers] [--trt-* options]\n"
        "       trtdbg inspect [engine] ENGINE.plan|LAYERS.json [--json]\n"
        "       trtdbg inspect capability MODEL [--trt-module M] [--json]\n"
        "       trtdbg inspect tactics REPLAY.json|ENGINE.plan|TIMING.cache [--json]",
    )
    p.add_argument("words", nargs="+", metavar="MODEL", help="the .onnx file (a leading 'model' word is accepted)")
    p.add_argument(
        "--show",
        action="extend",
        nargs="+",
        default=[],
        metavar="WHAT",
        help="what to list: layers, attrs, weights; space-separated like Polygraphy (--show layers attrs; "
        "put MODEL first), or a comma list",
    )
    add_json_arg(p, "print JSON (stable keys) instead of text; compact unless stdout is a terminal")
    p.add_argument(
        "--shape-inference",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --show layers, infer dtype/shape of intermediate tensors (default: on)",
    )
    add_external_data_dir_arg(p, "folder with the model's external data files")
    p.add_argument(
        "--allow-unsupported",
        action="store_true",
        help="inspect even if ops, domains or the opset are unknown to onnx/onnxruntime",
    )
    d = p.add_argument_group("inspect data FILE (saved inputs/outputs: Polygraphy JSON, directory, .npz)")
    d.add_argument("--all", action="store_true", help="list every iteration (default: the first)")
    d.add_argument("--show-values", action="store_true", help="print the values (numpy summary form)")
    d.add_argument("--histogram", action="store_true", help="print a 10-bin histogram per tensor")
    add_inspect_args(p)
    p.set_defaults(run=run)


def _run_data(args: argparse.Namespace, words: list[str]) -> int:
    """``trtdbg inspect data FILE``."""
    from engine_core.data.summary import summarize_file
    from engine_core.errors import TrtdbgError

    if len(words) != 1:
        raise TrtdbgError("usage: trtdbg inspect data FILE (one saved inputs/outputs file or directory)")
    summary = summarize_file(
        words[0], iterations=None if args.all else 1, histogram=args.histogram, values=args.show_values
    )
    if args.json:
        import json

        from engine_core.comparator.report import json_safe

        sys.stdout.write(json.dumps(json_safe(summary.to_json()), indent=2) + "\n")
    else:
        sys.stdout.write(summary.to_text() + "\n")
    return 0


def _run_capability(args: argparse.Namespace, words: list[str]) -> int:
    """``trtdbg inspect capability MODEL``: supported/unsupported subgraphs per the TensorRT ONNX parser."""
    from engine_core.backend.trt.capability import model_capability
    from engine_core.backend.trt.flavour import load_flavour
    from engine_core.errors import TrtdbgError
    from engine_core.model.loader import load_model

    if len(words) != 1:
        raise TrtdbgError("usage: trtdbg inspect capability MODEL.onnx (one model)")
    model = load_model(words[0], load_external_data=False)
    cap = model_capability(load_flavour(args.trt_module), model, words[0])
    print_result(cap, args.json)
    return 0


def _run_tactics(args: argparse.Namespace, words: list[str]) -> int:
    """``trtdbg inspect tactics FILE``: a tactic replay, timing cache or engine, per layer."""
    from engine_core.backend.trt.tactics import read_tactics, selector_note
    from engine_core.errors import TrtdbgError

    if len(words) != 1:
        raise TrtdbgError("usage: trtdbg inspect tactics FILE (a tactic replay .json, an engine or a timing cache)")
    table = read_tactics(words[0], args.trt_module)
    note = selector_note(args.trt_module)
    if note and note not in table.notes:
        table.notes.append(note)
    print_result(table, args.json)
    return 0


def _model_path(words: list[str]) -> str:
    """The model path from the positional words, rejecting reserved subcommands and stray words."""
    from engine_core.errors import TrtdbgError

    if words[0] in _KINDS and (len(words) > 1 or not os.path.exists(words[0])):
        if words[0] in _RESERVED:
            raise TrtdbgError(
                f"`trtdbg inspect {words[0]}` is not available yet; inspect a model with `trtdbg inspect MODEL.onnx`"
            )
        words = words[1:]
        if not words:
            raise TrtdbgError("no model given; usage: trtdbg inspect [model] MODEL.onnx")
    if len(words) > 1:
        extra = words[1:]
        hint = (
            f"; write --show {' '.join(extra)} after the model"
            if all(w in ("layers", "attrs", "weights") for w in extra)
            else "; inspect one model at a time"
        )
        raise TrtdbgError(f"unexpected argument(s) after {words[0]}: {' '.join(extra)}{hint}")
    return words[0]


_FIX = "free memory, or inspect a part of the model cut with `trtdbg surgeon extract`"


def run(args: argparse.Namespace) -> int:
    """Load, check and index the model, then print the summary."""
    from engine_core.errors import TrtdbgError
    from engine_core.model.index import ModelIndex
    from engine_core.model.inspect import inspect_json, parse_show, shape_note, write_inspect_text
    from engine_core.model.loader import check_external_data, check_runtime_support, load_model
    from engine_core.model.weights import estimate_memory, require_memory

    if args.words[0] == "data" and len(args.words) > 1:
        return _run_data(args, list(args.words[1:]))
    if args.words[0] == "tactics" and len(args.words) > 1:
        return _run_tactics(args, list(args.words[1:]))
    if args.words[0] == "capability" and len(args.words) > 1:
        return _run_capability(args, list(args.words[1:]))
    if args.words[0] == "engine" and len(args.words) > 1:
        return run_engine(args, list(args.words[1:]))
    if is_engine_path(args.words[0]):
        return run_engine(args, list(args.words))
    path = _model_path(list(args.words))
    show = parse_show(args.show)
    model = load_model(path, load_external_data=False, external_data_dir=args.external_data_dir)
    if "weights" in show or args.display_as == "trt":  # weights are read (memory-mapped), or TensorRT parses them
        check_external_data(model, path, args.external_data_dir)
        copies = int(args.display_as == "trt" and args.engine_layers)  # TensorRT's builder holds its own copy
        require_memory(f"inspect of {path}", estimate_memory(model, copies=copies), _FIX)
    if not args.allow_unsupported:
        try:
            check_runtime_support(model, path)
        except TrtdbgError as exc:
            raise TrtdbgError(f"{exc}; or pass --allow-unsupported to inspect it anyway") from None
    index = ModelIndex(model, path, external_data_dir=args.external_data_dir)
    if args.display_as == "trt":
        return run_network(args, path, model, index)
    try:
        if args.json:
            import json

            data = inspect_json(index, show, shape_inference=args.shape_inference)
            # Pretty for a terminal; compact (C encoder, ~10x faster on 100k nodes) for pipes and files.
            sys.stdout.write(json.dumps(data, indent=2 if sys.stdout.isatty() else None) + "\n")
        else:
            write_inspect_text(index, sys.stdout, show, shape_inference=args.shape_inference)
        sys.stdout.flush()
    except BrokenPipeError:  # `trtdbg inspect big.onnx | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    note = shape_note(index)
    if note:
        print(f"trtdbg: warning: {note}", file=sys.stderr)
    return 0
