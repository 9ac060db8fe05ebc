"""`trtdbg bench`: ORT CPU figures for real (latency percentiles, throughput, memory, per-layer times), JSON keys,
duration mode, and one-line exit-2 failures for GPU backends where no GPU is present."""

from __future__ import annotations

import json

import pytest

from engine_core.model.synthetic import small_cnn_model

KEYS = {
    "model",
    "backend",
    "device",
    "inputs",
    "warmup",
    "runs",
    "iterations",
    "latency_ms",
    "throughput_per_s",
    "samples_per_s",
    "host_peak_rss_bytes",
    "host_rss_growth_bytes",
    "device_memory_bytes",
    "layers",
    "notes",
}


def test_bench_ort_json(save_model, cli) -> None:
    path = save_model(small_cnn_model())
    rc, out, err = cli(
        "bench", str(path), "-n", "30", "--warmup", "2", "--json", "--layer-times", "--layer-iterations", "3"
    )
    assert rc == 0, err
    doc = json.loads(out)
    assert (
        set(doc) == KEYS and doc["backend"] == "ort" and doc["runs"] == doc["iterations"] == 30 and doc["warmup"] == 2
    )
    lat = doc["latency_ms"]
    assert 0 < lat["min"] <= lat["median"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert doc["throughput_per_s"] > 0 and doc["samples_per_s"] == pytest.approx(doc["throughput_per_s"])
    assert doc["inputs"] == {"input": [1, 3, 32, 32]} and doc["host_peak_rss_bytes"] > 0
    assert doc["device_memory_bytes"] is None
    layers = doc["layers"]
    assert layers and {"name", "op", "ms", "percent"} <= set(layers[0])
    assert sum(x["percent"] for x in layers) == pytest.approx(100.0)
    assert any(x["op"] == "Conv" for x in layers)


def test_bench_text_and_duration(save_model, cli) -> None:
    path = save_model(small_cnn_model())
    rc, out, _ = cli("bench", str(path), "--duration", "0.2", "--warmup", "1", "--shapes", "input:1x3x32x32")
    assert rc == 0
    assert "latency ms: min" in out and "inferences/s" in out and "timed run(s) after 1 warm-up(s)" in out
    runs = int(out.split("\n")[2].split()[0])
    assert runs >= 2


@pytest.mark.parametrize("case", ["zero_runs", "missing", "bad_backend", "ort_cuda", "trt"])
def test_bench_bad_input_exit_2(save_model, tmp_path, cli, case: str) -> None:
    path = str(save_model(small_cnn_model()))
    args = {
        "zero_runs": [path, "-n", "0"],
        "missing": [str(tmp_path / "nope.onnx")],
        "bad_backend": [path, "--backend", "tensorflow"],
        "ort_cuda": [path, "--backend", "ort-cuda", "-n", "2"],
        "trt": [path, "--backend", "trt", "-n", "2"],
    }[case]
    rc, out, err = cli("bench", *args)
    if rc == 0 and case in ("ort_cuda", "trt"):
        pytest.skip(f"{case} runs here (a GPU is present)")
    assert rc == 2 and out == "" and err.count("\n") == 1 and err.startswith("trtdbg: error: "), err


def test_bench_iterations_is_the_old_name_of_runs(save_model, cli) -> None:
    """`--iterations` counts input samples elsewhere; in bench it still works as --runs, with a one-line note."""
    path = save_model(small_cnn_model())
    rc, out, err = cli("bench", str(path), "--iterations", "3", "--warmup", "0", "--json")
    assert rc == 0 and json.loads(out)["runs"] == 3
    assert err.count("\n") == 1 and "is now --runs" in err


def test_bench_precision_backends_on_cpu(save_model, cli) -> None:
    """`bench --backend ort:fp16` on CPU times the FP32 model with emulated FP16 rounding: it must say so;
    `ort:int8` (real Q/DQ) calibrates on the data as compare does (it stopped with 'INT8 needs calibration data')."""
    path = save_model(small_cnn_model())
    for backend, emulated in (("ort:fp16", True), ("ort:int8", False), ("ort", False)):
        rc, out, err = cli("bench", str(path), "--backend", backend, "-n", "2", "--warmup", "0", "--json")
        assert rc == 0, err
        notes = json.loads(out)["notes"]
        assert any("emulated" in n and "not that of low precision" in n for n in notes) == emulated, (backend, notes)
