"""``trtdbg template trt-network``: a runnable Python script that parses an ONNX model with the TensorRT network API,
leaves a marked place to edit layers, then builds and saves the engine (Polygraphy's ``template trt-network``).

The script imports ``tensorrt`` else ``tensorrt_rtx`` (``module="auto"``, as trtdbg does) or the named module,
creates a strongly typed network where the module has the flag, and lists the parsed layers as comments so the edit
section can name them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from engine_core.errors import TrtdbgError

if TYPE_CHECKING:
    from engine_core.backend.trt.build import ParsedNetwork

Shape = tuple[int, ...]
_LISTED = 400

_IMPORTS = {
    "auto": (
        "try:\n"
        "    import tensorrt as trt  # TensorRT 10.x / 11.x\n"
        "except ImportError:\n"
        "    import tensorrt_rtx as trt  # TensorRT-RTX\n"
    ),
    "tensorrt": "import tensorrt as trt\n",
    "tensorrt_rtx": "import tensorrt_rtx as trt\n",
}

_BODY = '''

MODEL = {model!r}
PROFILE = {profile!r}
"""Optimization profile: input name -> (min, opt, max) shape, for the dynamic inputs."""


def parse(builder, logger):
    """The network of MODEL, parsed by the ONNX parser (strongly typed where TensorRT has the flag)."""
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(MODEL):
        for i in range(parser.num_errors):
            print(f"parser error: {{parser.get_error(i)}}", file=sys.stderr)
        sys.exit(f"cannot parse {{MODEL}}")
    return network, parser


def edit(network):
    """Change the network here; the parsed layers are listed below."""
    layers = {{network.get_layer(i).name: network.get_layer(i) for i in range(network.num_layers)}}
    tensors = {{layer.get_output(j).name: layer.get_output(j)
               for layer in layers.values() for j in range(layer.num_outputs)}}
{listing}
    # ==== EDIT BELOW: your changes to the network =================================================
    # Examples:
    #   network.mark_output(tensors["NAME"])                        # expose an intermediate tensor
    #   relu = network.add_activation(tensors["NAME"], trt.ActivationType.RELU)
    #   layers["CONSUMER"].set_input(0, relu.get_output(0))         # rewire a consumer to the new layer
    #   network.unmark_output(network.get_output(0))                # drop an output
    # ==== EDIT ABOVE ==============================================================================
    del layers, tensors


def build(builder, network):
    """Serialized engine of ``network`` (one optimization profile for the dynamic inputs)."""
    config = builder.create_builder_config()
    if PROFILE:
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in PROFILE.items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        sys.exit("the build failed (see the TensorRT log above)")
    return engine


def main():
    ap = argparse.ArgumentParser(description=f"Parse {{MODEL}}, edit the network, build and save the engine.")
    ap.add_argument("-o", "--output", default=os.path.splitext(os.path.abspath(__file__))[0] + ".plan",
                    help="engine file to write (default: beside this script)")
    args = ap.parse_args()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, parser = parse(builder, logger)
    edit(network)
    engine = build(builder, network)
    with open(args.output, "wb") as f:
        f.write(engine)
    print(f"{{trt.__name__}} {{trt.__version__}}: {{network.num_layers}} layers, {{network.num_outputs}} output(s), engine written to {{args.output}}")


if __name__ == "__main__":
    main()
'''


def trt_network_script(
    model_path: str | os.PathLike[str],
    *,
    module: str = "auto",
    shapes: Mapping[str, Shape] | None = None,
    profile: Mapping[str, tuple[Shape, Shape, Shape]] | None = None,
    script_name: str = "script.py",
) -> str:
    """The script's text for ``model_path``; dynamic inputs need ``profile`` or ``shapes`` (min=opt=max)."""
    from engine_core.backend.trt.build import dynamic_inputs, parse_onnx
    from engine_core.backend.trt.flavour import ALIASES, load_flavour
    from engine_core.model.loader import load_model

    key = ALIASES.get(module)
    if key is None:
        raise TrtdbgError(f"unknown TensorRT module '{module}'; choose auto, tensorrt or tensorrt_rtx")
    path = Path(model_path).resolve()
    model = load_model(str(path), load_external_data=False)
    parsed = parse_onnx(load_flavour(key), model, path)
    prof = {n: tuple(tuple(int(d) for d in s) for s in v) for n, v in (profile or {}).items()}
    for name, shape in (shapes or {}).items():
        prof.setdefault(name, (tuple(shape), tuple(shape), tuple(shape)))
    inputs = {t.name for t in parsed.inputs()}
    unknown = sorted(set(prof) - inputs)
    if unknown:
        raise TrtdbgError(
            f"shape given for '{unknown[0]}', which is not an input of {path.name}; inputs: {', '.join(sorted(inputs))}"
        )
    dyn = dynamic_inputs(parsed)
    missing = sorted(set(dyn) - set(prof))
    if missing:
        raise TrtdbgError(
            f"input '{missing[0]}' has a dynamic shape {dyn[missing[0]]}; give its shape with "
            f"--shapes {missing[0]}:1x... (or --trt-min/opt/max-shapes)"
        )
    prof = {n: v for n, v in prof.items() if n in dyn}
    head = (
        f'#!/usr/bin/env python3\n"""TensorRT network of {_in_docstring(path.name)}, generated by `trtdbg template '
        f"trt-network` with {parsed.flavour.label}.\n\nParses the ONNX model, lets `edit()` change the network, "
        f"builds the engine and saves it:\n    python {_in_docstring(script_name)} [-o ENGINE.plan]\n"
        '"""\n\nimport argparse\nimport os\nimport sys\n\n'
    )
    return head + _IMPORTS[key] + _BODY.format(model=str(path), profile=prof, listing=_listing(parsed))


def _in_docstring(name: str) -> str:
    """A file name as text inside a generated docstring: no quote, backslash or line break can end it."""
    return ascii(name)[1:-1].replace('"', "\\x22")


def _listing(parsed: ParsedNetwork) -> str:
    """Comment lines: each parsed layer with its type and outputs."""
    layers = parsed.layers()
    lines = ["    # Parsed layers (name: type -> outputs):"]
    for layer in layers[:_LISTED]:
        outs = []
        for j in range(layer.num_outputs):
            t = layer.get_output(j)
            dtype = getattr(t.dtype, "name", str(t.dtype)).lower()
            outs.append(f"{t.name!r} ({dtype} {list(t.shape)})")
        kind = getattr(layer.type, "name", str(layer.type))
        lines.append(f"    #   {layer.name!r}: {kind} -> {', '.join(outs)}")
    if len(layers) > _LISTED:
        lines.append(f"    #   ... and {len(layers) - _LISTED} more layers")
    return "\n".join(lines)
