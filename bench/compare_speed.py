"""The compare main loop (issue 11) on the shared real models and generated ones, beside Polygraphy.

    python bench/compare_speed.py [--rounds 3] [--only det,rec,magika,minilm,json,budget,fp16] [--out F.json]

Rows (each command is one fresh process; the two sides run interleaved A B A B …, best of ``--rounds``;
wall and CPU time — user + system of the child — are reported, and their trtdbg/Polygraphy ratios):

* det, rec, magika, minilm: ``compare MODEL --subject ort --mark all`` on one realistic sample
  (``inputs.py``) vs ``polygraphy run MODEL --onnxrt --onnxrt --onnx-outputs mark all`` on the same sample;
* json: ``compare CHAIN --mark all --json --load-outputs F`` of a 20,000-node chain, F holding both sides'
  saved outputs (subject, reference): no inference, the statistics and report path end to end, vs
  ``polygraphy run --load-outputs F`` (the same comparison, without a JSON report; one round);
* budget: mark-all compare of a model whose sizes only the data decides, with and without ``--mem-budget``
  (peak RSS and batches);
* fp16: ``--subject ort:fp16 --mark all`` on a ~7,700-node transformer (``transformer_model``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import onnx
from measure import compile_sources

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine_core.model.synthetic import chain_model, data_dependent_model, transformer_model

PY = sys.executable
BIN = Path(PY).parent
TRTDBG = [PY, "-m", "tui.cli.main"]
POLY = [str(BIN / "polygraphy")]
MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
if not MODELS.exists():
    MODELS = Path("/work/shared/models")
REAL = {"det": "ppocrv4_det", "rec": "ppocrv4_rec", "magika": "magika_v3_3", "minilm": "minilm_l6_int8w"}


def measure(cmd: list[str]) -> dict[str, float]:
    out = subprocess.run([PY, str(ROOT / "bench" / "measure.py"), *cmd], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"measure failed for {cmd}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def interleaved(
    a: list[str], b: list[str] | None, rounds: int, b_rounds: int | None = None
) -> tuple[dict, dict | None]:
    """Best (lowest wall) of ``rounds`` runs of each command, run A B A B … (B only in the first ``b_rounds``)."""
    best_a: dict | None = None
    best_b: dict | None = None
    for i in range(rounds):
        ra = measure(a)
        best_a = ra if best_a is None or ra["wall_s"] < best_a["wall_s"] else best_a
        if b is not None and i < (rounds if b_rounds is None else b_rounds):
            rb = measure(b)
            best_b = rb if best_b is None or rb["wall_s"] < best_b["wall_s"] else best_b
    assert best_a is not None
    return best_a, best_b


def one_sample_loader(tmp: Path) -> Path:
    """A data-loader script yielding ONE realistic sample per model (``inputs.py`` gives four)."""
    path = tmp / "one_sample.py"
    path.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(MODELS)!r})\n"
        "from inputs import make_inputs\n"
        + "".join(f"def load_{stem}():\n    yield make_inputs({stem!r}, 0)\n" for stem in REAL.values())
    )
    return path


def row(name: str, ours: dict, theirs: dict | None, note: str = "") -> dict:
    r = {"row": name, "trtdbg": ours, "polygraphy": theirs, "note": note}
    if theirs:
        r["wall_ratio"] = round(ours["wall_s"] / theirs["wall_s"], 3)
        r["cpu_ratio"] = round(ours["cpu_s"] / theirs["cpu_s"], 3)
    ratio = f" | ratio wall {r['wall_ratio']} cpu {r['cpu_ratio']}" if theirs else ""
    poly = f" | polygraphy {theirs['wall_s']} s wall {theirs['cpu_s']} s cpu" if theirs else ""
    print(
        f"{name:<28} trtdbg {ours['wall_s']} s wall {ours['cpu_s']} s cpu {ours['peak_rss_mib']} MiB{poly}{ratio} {note}",
        flush=True,
    )
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="det,rec,magika,minilm,json,budget,fp16")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    compile_sources()
    only = set(a.only.split(","))
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        loader = one_sample_loader(tmp)
        ws = ["--workspace", str(tmp / "ws"), "--quiet"]
        for key, stem in REAL.items():
            if key not in only:
                continue
            model = str(MODELS / f"{stem}.onnx")
            script = f"{loader}:load_{stem}"
            ours = [*TRTDBG, "compare", model, "--subject", "ort", "--mark", "all", "--data-loader-script", script, *ws]
            theirs = [*POLY, "run", model, "--onnxrt", "--onnxrt", "--onnx-outputs", "mark", "all"]
            theirs += ["--data-loader-script", script]
            rows.append(row(f"{stem} mark all ORT vs ORT", *interleaved(ours, theirs, a.rounds)))
        if "json" in only:
            chain = tmp / "chain.onnx"
            onnx.save(chain_model(20_000), chain)
            saved = tmp / "chain_out.json"
            subprocess.run(
                [
                    *TRTDBG,
                    "compare",
                    str(chain),
                    "--subject",
                    "ort",
                    "--mark",
                    "all",
                    "--save-outputs",
                    str(saved),
                    *ws,
                ],
                check=True,
                cwd=ROOT,
                capture_output=True,
            )
            ours = [*TRTDBG, "compare", str(chain), "--mark", "all", "--json", "--load-outputs", str(saved), *ws]
            theirs = [*POLY, "run", "--load-outputs", str(saved)]
            rows.append(row("20k tensors --json, saved", *interleaved(ours, theirs, a.rounds, b_rounds=1)))
        if "budget" in only:
            dd = tmp / "dd.onnx"
            onnx.save(data_dependent_model(width=4096), dd)
            base = [*TRTDBG, "compare", str(dd), "--subject", "ort", "--mark", "all", "--json", *ws]
            free, _ = interleaved(base, None, 1)
            small, _ = interleaved([*base, "--mem-budget", "128M"], None, 1)
            rows.append(row("data-dependent, no budget", free, None))
            rows.append(row("data-dependent, --mem-budget 128M", small, None))
        if "fp16" in only:
            tf = tmp / "tf.onnx"
            onnx.save(transformer_model(), tf)
            ours = [*TRTDBG, "compare", str(tf), "--subject", "ort:fp16", "--mark", "all", *ws]
            rows.append(row("transformer 7.7k nodes ort:fp16", *interleaved(ours, None, max(1, a.rounds - 2))))
    if a.out:
        a.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
