"""Detail-pane fetches after a compare: a fresh ``tensor_detail`` per tensor vs one kept ``DetailFetcher``.

    python bench/detail_fetch.py [--only fp16,det,det16] [--out F.json]

Rows: ``fp16``: ``--subject ort:fp16 --mark all`` on ``transformer_model()`` (random input); ``det``, ``det16``:
``--subject ort`` / ``ort:fp16 --mark all`` on ppocrv4_det with its realistic inputs (``inputs.py:load_ppocrv4_det``,
4 samples). After the
compare (not timed), three tensors of iteration 0 are fetched one after the other, each way; CPU (the process's,
all threads) and wall seconds per fetch. The fetcher's values are checked equal to the fresh fetch's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine_core.comparator.detail import DetailFetcher, tensor_detail
from engine_core.comparator.request import CompareRequest, execute
from engine_core.model.synthetic import transformer_model
from engine_core.options import DataOptions

MODELS = Path("/work/shared/models")


def timed(fn):  # type: ignore[no-untyped-def]
    c, w = time.process_time(), time.perf_counter()
    out = fn()
    return out, {"cpu_s": round(time.process_time() - c, 3), "wall_s": round(time.perf_counter() - w, 3)}


def row(request: CompareRequest) -> dict[str, object]:
    report = execute(request)
    results = [r for r in report.results if r.iteration == 0]
    picked = [results[len(results) // 5], results[len(results) // 2], results[-1]]
    fresh, fetched = [], []
    for r in picked:
        d, t = timed(lambda r=r: tensor_detail(request, r))
        fresh.append((d, t))
    with DetailFetcher(request) as fetcher:
        for r in picked:
            d, t = timed(lambda r=r: fetcher.detail(r))
            fetched.append((d, t))
        prepared = fetcher.preparations
    same = all(a[0] == b[0] for a, b in zip(fresh, fetched))
    return {
        "tensors": [r.slot.name for r in picked],
        "compared": len(results),
        "fresh_tensor_detail": [t for _, t in fresh],
        "detail_fetcher": [t for _, t in fetched],
        "preparations": prepared,
        "same_values": same,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="fp16,det,det16")
    ap.add_argument("--out")
    args = ap.parse_args()
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.only.split(","):
            if key == "fp16":
                model = str(Path(tmp) / "transformer.onnx")
                onnx.save(transformer_model(), model)
                req = CompareRequest(model, subject="ort:fp16", marks=["all"], workspace=str(Path(tmp) / "ws"))
            else:  # det: --subject ort; det16: --subject ort:fp16
                model = str(MODELS / "ppocrv4_det.onnx")
                data = DataOptions(data_loader_script=f"{MODELS / 'inputs.py'}:load_ppocrv4_det")
                subject = "ort:fp16" if key == "det16" else "ort"
                req = CompareRequest(model, subject=subject, marks=["all"], data=data, workspace=str(Path(tmp) / "ws"))
            out[key] = row(req)
            print(key, json.dumps(out[key]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
