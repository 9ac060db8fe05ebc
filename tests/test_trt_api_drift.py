"""API-name drift: every TensorRT name trtdbg calls exists in the real TensorRT 10.16 and 11.4 bindings and in
TensorRT-RTX, and feature detection gives the documented answers (weak typing on 10.x only, the STRONGLY_TYPED
value that differs between 10 and 11).

The 10.x/11.x binding wheels are real (PyPI, ~1.3 MB each) but need libnvinfer; empty stub libraries with the right
SONAMEs and the nine C entry points let the module import, so class attributes can be checked (nothing can be
created). Needs gcc and PyPI access (the wheels are downloaded once into a cache); skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from engine_core.errors import TrtdbgError

ROOT = Path(__file__).resolve().parents[1]
WHEELS = {"10": "tensorrt-cu12-bindings==10.16.1.11", "11": "tensorrt-cu13-bindings==11.4.0.106"}
ENTRY_POINTS = """
void *createInferBuilder_INTERNAL(void *a, int b) { return 0; }
void *createInferRefitter_INTERNAL(void *a, void *b, int c) { return 0; }
void *createInferRuntime_INTERNAL(void *a, int b) { return 0; }
void *createNvOnnxParserRefitter_INTERNAL(void *a, void *b, int c) { return 0; }
void *createNvOnnxParser_INTERNAL(void *a, void *b, int c) { return 0; }
void *getBuilderPluginRegistry(int a) { return 0; }
int getNvOnnxParserVersion(void) { return 0; }
void *getPluginRegistry(void) { return 0; }
int initLibNvInferPlugins(void *a, const char *b) { return 0; }
"""

# (class or None for the module, attribute): what engine_core/backend/trt calls on every flavour.
USED = [
    (None, "Builder"),
    (None, "Runtime"),
    (None, "OnnxParser"),
    (None, "ILogger"),
    (None, "IProfiler"),
    (None, "IDebugListener"),
    (None, "nptype"),
    ("Builder", "create_network"),
    ("Builder", "create_builder_config"),
    ("Builder", "build_serialized_network"),
    ("Builder", "create_optimization_profile"),
    ("NetworkDefinitionCreationFlag", "STRONGLY_TYPED"),
    ("INetworkDefinition", "mark_output"),
    ("INetworkDefinition", "unmark_output"),
    ("INetworkDefinition", "mark_debug"),
    ("INetworkDefinition", "unmark_debug"),
    ("INetworkDefinition", "num_layers"),
    ("INetworkDefinition", "get_layer"),
    ("INetworkDefinition", "num_inputs"),
    ("INetworkDefinition", "get_input"),
    ("INetworkDefinition", "num_outputs"),
    ("INetworkDefinition", "get_output"),
    ("INetworkDefinition", "get_flag"),
    ("INetworkDefinition", "mark_unfused_tensors_as_debug_tensors"),
    ("OnnxParser", "parse"),
    ("OnnxParser", "num_errors"),
    ("OnnxParser", "get_error"),
    ("OnnxParser", "get_layer_output_tensor"),
    ("ParserError", "code"),
    ("ParserError", "desc"),
    ("ParserError", "node"),
    ("ParserError", "node_name"),
    ("ParserError", "node_operator"),
    ("ParserError", "func"),
    ("ITensor", "name"),
    ("ITensor", "dtype"),
    ("ITensor", "shape"),
    ("ITensor", "is_network_output"),
    ("ITensor", "is_shape_tensor"),
    ("ITensor", "is_execution_tensor"),
    ("ILayer", "name"),
    ("ILayer", "type"),
    ("ILayer", "metadata"),
    ("ILayer", "num_inputs"),
    ("ILayer", "get_input"),
    ("ILayer", "num_outputs"),
    ("ILayer", "get_output"),
    ("IBuilderConfig", "set_memory_pool_limit"),
    ("IBuilderConfig", "builder_optimization_level"),
    ("IBuilderConfig", "profiling_verbosity"),
    ("IBuilderConfig", "set_flag"),
    ("IBuilderConfig", "clear_flag"),
    ("IBuilderConfig", "add_optimization_profile"),
    ("IBuilderConfig", "create_timing_cache"),
    ("IBuilderConfig", "set_timing_cache"),
    ("IBuilderConfig", "get_timing_cache"),
    ("IOptimizationProfile", "set_shape"),
    ("MemoryPoolType", "WORKSPACE"),
    ("ProfilingVerbosity", "DETAILED"),
    ("BuilderFlag", "TF32"),
    ("Runtime", "deserialize_cuda_engine"),
    ("ICudaEngine", "create_execution_context"),
    ("ICudaEngine", "num_io_tensors"),
    ("ICudaEngine", "get_tensor_name"),
    ("ICudaEngine", "get_tensor_mode"),
    ("ICudaEngine", "get_tensor_dtype"),
    ("ICudaEngine", "get_tensor_shape"),
    ("ICudaEngine", "get_tensor_profile_shape"),
    ("ICudaEngine", "get_tensor_location"),
    ("ICudaEngine", "create_engine_inspector"),
    ("ICudaEngine", "device_memory_size_v2"),
    ("ICudaEngine", "num_optimization_profiles"),
    ("IExecutionContext", "set_input_shape"),
    ("IExecutionContext", "set_tensor_address"),
    ("IExecutionContext", "get_tensor_shape"),
    ("IExecutionContext", "execute_async_v3"),
    ("IExecutionContext", "set_debug_listener"),
    ("IExecutionContext", "set_tensor_debug_state"),
    ("IExecutionContext", "profiler"),
    ("EngineInspector", "get_engine_information"),
    ("LayerInformationFormat", "JSON"),
    ("TensorIOMode", "INPUT"),
    ("TensorLocation", "HOST"),
    ("IProfiler", "report_layer_time"),
    ("IDebugListener", "process_debug_tensor"),
]
# Legacy weak typing (engine_core/backend/trt/legacy.py): TensorRT 10.x only.
LEGACY = [
    ("BuilderFlag", "FP16"),
    ("BuilderFlag", "BF16"),
    ("BuilderFlag", "INT8"),
    ("BuilderFlag", "OBEY_PRECISION_CONSTRAINTS"),
    ("BuilderFlag", "PREFER_PRECISION_CONSTRAINTS"),
    ("ILayer", "precision"),
    ("ILayer", "precision_is_set"),
    ("IBuilderConfig", "int8_calibrator"),
    ("IBuilderConfig", "set_calibration_profile"),
    (None, "IInt8EntropyCalibrator2"),
    ("DataType", "FLOAT"),
    ("DataType", "HALF"),
    ("DataType", "BF16"),
    ("DataType", "INT8"),
]

PROBE = r"""
import ctypes, json, os, sys
stub, site, major, root = sys.argv[1:5]
for n in ("libnvinfer", "libnvinfer_plugin", "libnvonnxparser"):
    ctypes.CDLL(os.path.join(stub, f"{n}.so.{major}"), mode=ctypes.RTLD_GLOBAL)
sys.path[:0] = [site, root]
import tensorrt_bindings as trt
from engine_core.backend.trt.flavour import Flavour
from tests.test_trt_api_drift import LEGACY, USED, missing
f = Flavour(trt, "tensorrt", trt.__version__)
print(json.dumps({"version": f.version, "features": f.features(), "missing": missing(trt, USED),
                  "missing_legacy": missing(trt, LEGACY),
                  "strongly_typed": int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)}))
"""


def missing(module: object, names: list[tuple[str | None, str]]) -> list[str]:
    """``Class.attr`` names from ``names`` that ``module`` lacks."""
    out = []
    for cls, attr in names:
        owner = module if cls is None else getattr(module, cls, None)
        if owner is None or not hasattr(owner, attr):
            out.append(f"{cls}.{attr}" if cls else attr)
    return out


def _cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "trtdbg-tests" / "trt-bindings"


@pytest.fixture(scope="module")
def bindings() -> dict[str, Path]:
    """Extracted 10.x and 11.x binding wheels plus stub libraries, by major version."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        pytest.skip("the TensorRT binding wheels are checked on Linux x86-64 only")
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler to build the stub libnvinfer")
    cache = _cache()
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    out: dict[str, Path] = {}
    for major, req in WHEELS.items():
        site = cache / f"{major}-{tag}"
        if not (site / "tensorrt_bindings" / "__init__.py").is_file():
            dl = cache / "download"
            r = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--python-version",
                    f"{sys.version_info.major}.{sys.version_info.minor}",
                    "--platform",
                    "manylinux_2_28_x86_64",
                    "-d",
                    str(dl),
                    req,
                ],
                check=False,
                capture_output=True,
                text=True,
                timeout=120,
            )
            wheels = sorted(dl.glob(req.split("==")[0].replace("-", "_") + "-" + req.split("==")[1] + "-*.whl"))
            if r.returncode != 0 or not wheels:
                pytest.skip(f"cannot download {req} ({' '.join(r.stderr.split())[-200:]})")
            with zipfile.ZipFile(wheels[0]) as z:
                z.extractall(site)
        stub = cache / f"stub{major}"
        if not (stub / f"libnvinfer.so.{major}").is_file():
            stub.mkdir(parents=True, exist_ok=True)
            (stub / "stub.c").write_text(ENTRY_POINTS)
            for name, src in (("libnvinfer", "stub.c"), ("libnvinfer_plugin", None), ("libnvonnxparser", None)):
                so = f"{name}.so.{major}"
                cmd = [gcc, "-shared", "-fPIC", "-o", str(stub / so), f"-Wl,-soname,{so}"]
                cmd += [str(stub / src)] if src else ["-x", "c", "/dev/null"]
                subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        out[major] = site
    return out


def _probe(bindings: dict[str, Path], major: str) -> dict:
    r = subprocess.run(
        [sys.executable, "-c", PROBE, str(_cache() / f"stub{major}"), str(bindings[major]), major, str(ROOT)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_tensorrt_10_bindings(bindings) -> None:
    doc = _probe(bindings, "10")
    assert doc["version"].startswith("10.16")
    assert doc["missing"] == [] and doc["missing_legacy"] == []
    assert doc["features"] == {
        "weak_typing": True,
        "int8_calibration": True,
        "debug_tensors": True,
        "unfused_debug_tensors": True,
        "timing_cache": True,
        "user_managed_memory": True,
    }
    assert doc["strongly_typed"] == 1  # 0 is EXPLICIT_BATCH in 10.x: never store the integer


def test_tensorrt_11_bindings(bindings) -> None:
    doc = _probe(bindings, "11")
    assert doc["version"].startswith("11.4")
    assert doc["missing"] == []
    assert set(doc["missing_legacy"]) >= {
        "BuilderFlag.FP16",
        "BuilderFlag.INT8",
        "ILayer.precision",
        "IInt8EntropyCalibrator2",
        "IBuilderConfig.int8_calibrator",
    }
    assert doc["features"]["weak_typing"] is False and doc["features"]["int8_calibration"] is False
    assert doc["features"]["debug_tensors"] and doc["features"]["timing_cache"]
    assert doc["strongly_typed"] == 0


def test_tensorrt_rtx_module() -> None:
    from engine_core.backend.trt.flavour import load_flavour

    try:
        flavour = load_flavour("tensorrt_rtx")
    except TrtdbgError as exc:
        pytest.skip(f"tensorrt_rtx not installed ({exc})")
    assert missing(flavour.module, USED) == []
    assert "BuilderFlag.FP16" in missing(flavour.module, LEGACY)
