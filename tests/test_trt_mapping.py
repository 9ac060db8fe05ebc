"""TensorRT ↔ ONNX mapping: network layers and names, observability, fusion maps from real builds (TensorRT-RTX
in CI), and engine-inspector JSON in both the 10.x (Bindings) and 11.x (I/O Tensors) schemas."""

from __future__ import annotations

import json

import pytest

from engine_core.backend.trt.inspector import (
    EngineInfo,
    engine_text,
    from_inspector_json,
    from_layer_text,
    onnx_nodes_from_metadata,
)
from engine_core.errors import TrtdbgError
from engine_core.model.demo import build_demo_model
from engine_core.model.index import ModelIndex
from engine_core.model.synthetic import small_cnn_model

SEP = "\x1f"

V10 = {
    "Layers": [
        {
            "Name": "Reformatting CopyNode for Input Tensor 0 to conv1 + relu1",
            "LayerType": "Reformat",
            "Inputs": [
                {
                    "Name": "input",
                    "Location": "Device",
                    "Dimensions": [1, 3, 32, 32],
                    "Format/Datatype": "Row major linear FP32",
                }
            ],
            "Outputs": [
                {
                    "Name": "Reformatted Input Tensor 0 to conv1 + relu1",
                    "Location": "Device",
                    "Dimensions": [1, 3, 32, 32],
                    "Format/Datatype": "Channel major FP16 format where channel % 8 == 0",
                }
            ],
            "ParameterType": "Reformat",
            "Origin": "REFORMAT",
            "TacticValue": "0x0000000000000000",
            "StreamId": 0,
            "Metadata": "",
        },
        {
            "Name": "conv1 + relu1",
            "LayerType": "CaskConvolution",
            "Inputs": [
                {
                    "Name": "Reformatted Input Tensor 0 to conv1 + relu1",
                    "Dimensions": [1, 3, 32, 32],
                    "Format/Datatype": "Channel major FP16 format where channel % 8 == 0",
                }
            ],
            "Outputs": [
                {"Name": "r1", "Dimensions": [1, 8, 32, 32], "Format/Datatype": "Row major linear FP16 format"}
            ],
            "TacticValue": "0x1234",
            "StreamId": 0,
            "Metadata": f"[ONNX Layer: conv1]{SEP}[ONNX Layer: relu1]",
        },
        {
            "Name": "fc",
            "LayerType": "CaskGemmMatrixMultiply",
            "Inputs": [{"Name": "r1", "Dimensions": [1, 8, 32, 32], "Format/Datatype": "Row major linear FP16 format"}],
            "Outputs": [{"Name": "output", "Dimensions": [1, 10], "Format/Datatype": "Row major linear FP32"}],
            "TacticValue": "0x99",
            "Metadata": "[ONNX Layer: fc]",
        },
    ],
    "Bindings": ["input", "output"],
}

V11 = {
    "Layers": [
        {
            "Name": "__myl_ConvRelu_myl0_0",
            "LayerType": "kgen",
            "Inputs": [
                {
                    "Name": "input",
                    "Dimensions": [-1, 3, 32, 32],
                    "Format": "Row major linear format",
                    "Datatype": "Float",
                }
            ],
            "Outputs": [
                {"Name": "output", "Dimensions": [-1, 10], "Format": "Row major linear format", "Datatype": "Half"}
            ],
            "TacticName": "__myl_ConvRelu_0xabc",
            "StreamId": 0,
            "Metadata": f"[ONNX Layer: conv1]{SEP}[ONNX Layer: relu1 | Local Function: block]{SEP}[ONNX Layer: fc]",
        }
    ],
    "I/O Tensors": [
        {
            "Name": "input",
            "IOMode": "Input",
            "DataType": "Float",
            "Dimensions": [-1, 3, 32, 32],
            "Location": "Device",
            "IsShapeInferenceIO": False,
            "ProfileInfo": [
                {
                    "MinShape": [1, 3, 32, 32],
                    "OptShape": [4, 3, 32, 32],
                    "MaxShape": [8, 3, 32, 32],
                    "Format": "kLINEAR",
                }
            ],
        },
        {
            "Name": "output",
            "IOMode": "Output",
            "DataType": "Half",
            "Dimensions": [-1, 10],
            "Location": "Device",
            "IsShapeInferenceIO": False,
            "ProfileInfo": [{"Format": "kLINEAR"}],
        },
    ],
}


def test_metadata_tags() -> None:
    assert onnx_nodes_from_metadata(f"[ONNX Layer: a]{SEP}[ONNX Layer: b/c]{SEP}[ONNX Layer: a]") == ("a", "b/c")
    assert onnx_nodes_from_metadata("[ONNX Layer: f | Local Function: blk]") == ("f",)
    assert onnx_nodes_from_metadata("") == () and onnx_nodes_from_metadata("something else") == ()


def test_inspector_json_10x_schema() -> None:
    info = from_inspector_json(json.dumps(V10), "v10.json")
    assert info.schema == "10.x"
    assert [(t.name, t.mode) for t in info.io] == [("input", "Input"), ("output", "Output")]
    conv = info.layers[1]
    assert conv.onnx_nodes == ("conv1", "relu1") and conv.precision == "Half" and conv.tactic == "0x1234"
    assert info.layers[0].outputs[0].dtype == "Half" and info.layers[2].outputs[0].dtype == "Float"
    assert "r1" in info.tensor_names()
    text = engine_text(info, "v10.plan")
    assert "Layer 1    | conv1 + relu1 [Op: CaskConvolution]" in text and "ONNX: conv1, relu1" in text


def test_inspector_json_11x_schema() -> None:
    info = from_inspector_json(V11, "v11.json")
    assert info.schema == "11.x"
    assert info.io[0].profiles[0]["MaxShape"] == [8, 3, 32, 32] and info.io[1].dtype == "Half"
    assert info.layers[0].onnx_nodes == ("conv1", "relu1", "fc") and info.layers[0].tactic == "__myl_ConvRelu_0xabc"
    text = engine_text(info, "v11.plan")
    assert "min=(1, 3, 32, 32), opt=(4, 3, 32, 32), max=(8, 3, 32, 32)" in text
    assert json.loads(json.dumps(info.to_json()))["layers"][0]["onnx_nodes"] == ["conv1", "relu1", "fc"]


def test_inspector_json_names_only_and_bad_input() -> None:
    info = from_inspector_json({"Layers": ["conv1 + relu1", "fc"], "Bindings": ["input", "output"]})
    assert info.schema == "names-only" and [layer.name for layer in info.layers] == ["conv1 + relu1", "fc"]
    assert "LAYER_NAMES_ONLY" in info.notes[0]
    single = from_inspector_json(V10["Layers"][1])
    assert single.layers[0].name == "conv1 + relu1"
    for bad in ("{not json", [1, 2], {"Bindings": []}):
        with pytest.raises(TrtdbgError, match="engine-inspector JSON"):
            from_inspector_json(bad, "x.json")


def test_network_layers_and_observability(trt_flavour) -> None:
    from engine_core.backend.trt.build import parse_onnx
    from engine_core.backend.trt.mapping import network_layers, network_observability

    model = build_demo_model()
    index = ModelIndex(model)
    parsed = parse_onnx(trt_flavour, model)
    layers = network_layers(parsed)
    by_name = {layer.name: layer for layer in layers}
    assert by_name["/stem/conv1/Conv"].onnx_nodes == ("/stem/conv1/Conv",)
    assert by_name["/norm/Pow"].outputs[0].name == "/norm/Pow_output_0"
    obs = network_observability(parsed, index, index.markable(), {"hidden": "inside a subgraph"})
    assert "/norm/Pow_output_0" in obs.observable and "/patch_embed/norm/Div_output_0" in obs.observable
    reasons = set(obs.unobservable.values())
    assert any("shape tensor" in r for r in reasons)  # Shape/Gather/Concat head splitting
    assert not set(obs.observable) & set(obs.unobservable)


def test_fusion_map_from_real_build(trt_flavour) -> None:
    from engine_core.backend.trt.build import BuildOptions, build_engine, parse_onnx
    from engine_core.backend.trt.mapping import fusion_map

    model = small_cnn_model()
    built = build_engine(parse_onnx(trt_flavour, model), BuildOptions(), digest="cnn")
    if not built.meta["layers_text"]:
        pytest.skip(
            f"{trt_flavour.label} logs no layer listing at build time; the inspector JSON path covers it on a GPU"
        )
    info = from_layer_text(built.meta["layers_text"])
    fusion = fusion_map(ModelIndex(model), info)
    assert fusion.tensors["probs"] == "materialized" and fusion.tensors["features"] == "materialized"
    assert fusion.tensors["/relu1/Relu_output_0"].startswith("fused inside engine layer")
    assert fusion.node_layers["/relu1/Relu"] == fusion.node_layers["/conv1/Conv"]  # conv + relu in one layer
    assert "/Flatten" in fusion.no_layer
    # Marking the tensor makes it materialize under its exact ONNX name.
    marked = build_engine(parse_onnx(trt_flavour, model), BuildOptions(marks=("/relu1/Relu_output_0",)), digest="cnn")
    assert (
        fusion_map(ModelIndex(model), from_layer_text(marked.meta["layers_text"])).tensors["/relu1/Relu_output_0"]
        == "materialized"
    )


def test_layer_text_parser_handles_commas_and_io() -> None:
    text = (
        "Layers:\nName: a, b + c, LayerType: kgen, Inputs: [ { Name: x, Dimensions: [1,2], Strides: [2,1], "
        "StrideOrder: [1,0], Datatype: Half, Format: (Linear) Row major linear format }], Constants: [], "
        "Outputs: [ { Name: y, Dimensions: [1,2], Strides: [2,1], StrideOrder: [1,0], Datatype: Float, "
        "Format: (Linear) Row major linear format }], TacticName: t, StreamId: 0, Metadata: [ONNX Layer: n1]\n\n"
        "I/O Tensors:\n Name: x, IOMode: Input, DataType: Half, Dimensions: [1,2], Location: Device, "
        "IsShapeInferenceIO: false, ProfileInfo: [ { MinShape: [1,2], OptShape: [1,2], MaxShape: [1,2], "
        "Format: Row major linear FP16 format (kLINEAR) }]\n"
    )
    info = from_layer_text(text)
    assert isinstance(info, EngineInfo) and info.layers[0].name == "a, b + c"
    assert info.layers[0].inputs[0].dtype == "Half" and info.layers[0].outputs[0].dims == (1, 2)
    assert info.io[0].profiles[0]["MinShape"] == [1, 2] and info.io[0].mode == "Input"
    with pytest.raises(TrtdbgError, match="no engine layer listing"):
        from_layer_text("nothing here")
