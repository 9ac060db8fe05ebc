"""TensorRT command-line options (shared by bench, inspect and compare) and the TensorRT parts of inspect.

Not a command itself. Only argparse at import time; engine_core loads inside the functions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from tui.cli.args import add_choice, add_trt_module_arg

if TYPE_CHECKING:
    from engine_core.backend.trt.runner import TrtOptions


def add_trt_build_args(p: argparse.ArgumentParser, title: str, *, timing_cache: bool = True) -> argparse._ArgumentGroup:
    """The options every TensorRT build takes (module, profile shapes, pool, level, timing cache, TF32)."""
    g = p.add_argument_group(title)
    add_trt_module_arg(g, "TensorRT Python module: auto = tensorrt (10.x/11.x), else tensorrt_rtx")
    for which in ("min", "opt", "max"):
        g.add_argument(
            f"--trt-{which}-shapes",
            nargs="+",
            action="append",
            metavar="NAME:SHAPE",
            help=f"{which} shapes of an optimization profile for dynamic inputs; repeat the min/opt/max group "
            "for several profiles, as in Polygraphy (default: each feed's own shape, min=opt=max)",
        )
    g.add_argument("--trt-pool-limit", metavar="SIZE", help="workspace memory pool limit, e.g. 4G")
    g.add_argument("--trt-opt-level", type=int, metavar="0-5", help="builder optimization level (TensorRT default 3)")
    if timing_cache:
        g.add_argument("--timing-cache", metavar="FILE", help="timing cache read before and written after builds")
    g.add_argument("--tf32", action="store_true", help="allow TF32 for FP32 layers (cleared by default)")
    return g


def add_trt_args(p: argparse.ArgumentParser, *, execution: bool = True) -> None:
    """The ``--trt-*`` options; ``execution`` adds those that matter only when engines run."""
    g = add_trt_build_args(p, "TensorRT (backends trt, trt:fp16, trt:int8, trt-rtx, ...)")
    add_choice(
        g, "--trt-mark-mode", ("output", "debug"), "make compared tensors engine outputs (default) or debug tensors"
    )
    g.add_argument(
        "--weak-typing",
        action="store_true",
        help="TensorRT 10 only: precision from builder flags (the :fp16/:int8 suffix) and layer "
        "precisions instead of the ONNX types; refused on TensorRT 11 and TensorRT-RTX",
    )
    g.add_argument(
        "--layer-precisions",
        nargs="+",
        metavar="LAYER:PREC",
        help="with --weak-typing: per-layer precisions (fp32, fp16, bf16, int8)",
    )
    add_choice(
        g, "--precision-constraints", ("obey", "prefer"), "with --layer-precisions: obey (default) or prefer them"
    )
    g.add_argument(
        "--calibration-cache",
        metavar="FILE",
        help="with --weak-typing and :int8: read this INT8 calibration cache, or write it after calibrating",
    )
    g.add_argument(
        "--no-engine-cache", action="store_true", help="always rebuild; do not store engines in the workspace"
    )
    if execution:
        add_choice(
            g,
            "--device-memory",
            ("auto", "pycuda", "cuda-python"),
            "device-memory layer: pycuda when installed, else cuda-python (default auto)",
        )


def trt_options_from_args(a: argparse.Namespace) -> TrtOptions:
    """The engine's ``TrtOptions`` from parsed ``--trt-*`` arguments (options a command lacks → defaults)."""
    from engine_core.backend.trt.build import BuildOptions
    from engine_core.backend.trt.legacy import weak_settings
    from engine_core.backend.trt.runner import TrtOptions
    from engine_core.data.shapes import parse_profiles
    from engine_core.errors import TrtdbgError
    from engine_core.sysinfo import parse_size

    def get(name: str, default: Any = None) -> Any:
        return getattr(a, name, default)

    profs = parse_profiles(*(get(f"trt_{w}_shapes") or [] for w in ("min", "opt", "max")))
    profiles = BuildOptions.make_profiles(profs) if profs else ()
    weak_on, lps = get("weak_typing", False), get("layer_precisions")
    cache = get("calibration_cache") if hasattr(a, "weak_typing") else None  # else it is the command's INT8 cache
    if (lps or cache) and not weak_on:
        raise TrtdbgError("--layer-precisions and --calibration-cache need --weak-typing (TensorRT 10 only)")
    weak = (
        weak_settings(
            layer_precisions=lps or (),
            precision_constraints=get("precision_constraints", "obey"),
            calibration_cache=cache,
        )
        if weak_on
        else ()
    )
    pool = get("trt_pool_limit")
    return TrtOptions(
        module=get("trt_module", "auto") or "auto",
        profiles=profiles,
        pool_limit=parse_size(pool, "--trt-pool-limit") if pool else None,
        opt_level=get("trt_opt_level"),
        timing_cache=get("timing_cache"),
        tf32=bool(get("tf32", False)),
        mark_mode=get("trt_mark_mode", "output"),
        weak=weak,
        device_memory=get("device_memory", "auto") or "auto",
        cache_dir="" if get("no_engine_cache", False) else None,
    )


def add_inspect_args(p: argparse.ArgumentParser) -> None:
    """``inspect`` options for the TensorRT view of a model."""
    g = p.add_argument_group("TensorRT view (inspect MODEL --display-as trt; inspect engine FILE.plan|FILE.json)")
    add_choice(
        g,
        "--display-as",
        ("onnx", "trt"),
        "trt: show the model as TensorRT parses it (layers, ONNX origin, types); no GPU needed",
    )
    g.add_argument(
        "--engine-layers",
        action="store_true",
        help="with --display-as trt: also build the engine (cached) and show its fused layers and which "
        "ONNX tensors have no buffer in it",
    )
    add_trt_args(p, execution=False)


def is_engine_path(word: str) -> bool:
    """True for ``*.plan``, ``*.engine``, ``*.trt`` files."""
    from engine_core.backend.trt.describe import ENGINE_SUFFIXES

    return os.path.splitext(word)[1].lower() in ENGINE_SUFFIXES


def run_engine(args: argparse.Namespace, words: list[str]) -> int:
    """``trtdbg inspect [engine] FILE``: an engine (.plan; needs a GPU) or engine-inspector JSON."""
    from engine_core.backend.trt.describe import engine_text, read_engine_file
    from engine_core.errors import TrtdbgError

    if len(words) != 1:
        raise TrtdbgError("usage: trtdbg inspect engine FILE (a .plan/.engine file or engine-inspector JSON)")
    info = read_engine_file(words[0], args.trt_module)
    if args.json:
        _dump(info.to_json())
    else:
        sys.stdout.write(engine_text(info, os.path.basename(words[0])) + "\n")
    return 0


def run_network(args: argparse.Namespace, path: str, model: Any, index: Any) -> int:
    """``trtdbg inspect MODEL --display-as trt [--engine-layers]``."""
    from engine_core.backend.trt.describe import engine_text, fusion_text, network_text, network_view
    from engine_core.backend.trt.mapping import fusion_map
    from engine_core.backend.trt.runner import TrtRunner, _hint_shapes

    options = trt_options_from_args(args)
    runner = TrtRunner(model, path, options, observable=index.markable(), name="trt")
    parsed = runner.prepare()
    doc: dict[str, Any] = {"network": network_view(parsed)}
    text = [network_text(parsed, os.path.basename(path))]
    if args.engine_layers:
        built = runner.build(shapes=_hint_shapes(runner.input_metadata(), path))
        info = runner.engine_info(built)
        doc["engine"] = {
            "cache_key": built.key,
            "cached": built.cached,
            "path": str(built.path) if built.path else None,
            "build_seconds": built.meta.get("build_seconds"),
            "notes": built.meta.get("notes", []),
        }
        if info is None:
            doc["engine"]["note"] = "TensorRT logged no layer listing; inspect the engine file on a GPU"
            text.append(
                f"[I] Engine built ({built.path}); TensorRT logged no layer listing: run "
                f"`trtdbg inspect engine {built.path}` on a GPU"
            )
        else:
            fusion = fusion_map(index, info)
            doc["engine"].update(info.to_json())
            doc["fusion"] = fusion.to_json()
            text += [
                engine_text(info, f"{os.path.basename(path)} ({'cached' if built.cached else 'built'} engine)"),
                fusion_text(fusion, limit=None if args.show else 40),
            ]
    if args.json:
        _dump(doc)
    else:
        sys.stdout.write("\n".join(text) + "\n")
    return 0


def _dump(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2 if sys.stdout.isatty() else None) + "\n")
