"""trtdbg's surgeon edits against onnx-graphsurgeon on a 100,000-node graph (docs/architecture.md records the result).

``python bench/bench_graphsurgeon.py [--nodes N] [--repeat R]`` prints one JSON line per edit with the best wall and
CPU seconds of each side (runs interleaved A B A B …) and their ratio. Both sides start from and end with an
``onnx.ModelProto`` (graphsurgeon's import and export are part of its edit); where trtdbg checks the result (ONNX
checker + ONNX Runtime load), graphsurgeon's result gets the same check so both do the same work.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import onnx
import onnx_graphsurgeon as gs
from onnx import TensorProto, helper, numpy_helper

from engine_core.model.synthetic import chain_model
from engine_core.surgeon.extract import TensorSpec, extract
from engine_core.surgeon.graph import cleanup, toposort, validate
from engine_core.surgeon.insert import insert_node
from engine_core.surgeon.sanitize import fold_constants


def _out(i: int) -> str:
    """Output name of chain node ``i`` (scoped names of :func:`chain_model`)."""
    return f"/blk.{i // 100}/layer.{i % 100}/{('Add', 'Mul', 'Relu')[i % 3]}_output_0"


def shuffled(n: int) -> onnx.ModelProto:
    """The chain with its nodes in random order (toposort has all the work to do)."""
    model = chain_model(n)
    nodes = list(model.graph.node)
    random.Random(0).shuffle(nodes)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def with_dead_branch(n: int) -> onnx.ModelProto:
    """The chain (n/2 nodes) plus a branch of n/2 nodes that feeds no output (cleanup removes it)."""
    model = chain_model(n // 2)
    prev = "input"
    for i in range(n - n // 2):
        model.graph.node.append(helper.make_node("Relu", [prev], [f"dead{i}"], f"dead{i}"))
        prev = f"dead{i}"
    return model


def with_constant_branch(n: int) -> onnx.ModelProto:
    """The chain (n/2 nodes) added to a branch of n/2 nodes computed from an initializer only (folds away)."""
    model = chain_model(n // 2)
    graph = model.graph
    graph.initializer.append(numpy_helper.from_array(np.ones((1, 64), np.float32), "c0"))
    graph.initializer.append(numpy_helper.from_array(np.array(0.5, np.float32), "half"))
    prev = "c0"
    for i in range(n - n // 2 - 1):
        graph.node.append(helper.make_node("Mul" if i % 2 else "Relu", [prev, "half"][: 1 + i % 2], [f"k{i}"], f"k{i}"))
        prev = f"k{i}"
    last = graph.output[0].name
    graph.node.append(helper.make_node("Add", [last, prev], ["sum"], "final_add"))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("sum", TensorProto.FLOAT, [1, 64]))
    return model


def _gs(model: onnx.ModelProto, edit: Callable[[gs.Graph], None]) -> onnx.ModelProto:
    graph = gs.import_onnx(model)
    edit(graph)
    return gs.export_onnx(graph)


def gs_extract(model: onnx.ModelProto, a: str, b: str) -> onnx.ModelProto:
    def edit(graph: gs.Graph) -> None:
        tensors = graph.tensors()
        graph.inputs = [tensors[a].to_variable(dtype=np.float32, shape=[1, 64])]
        graph.outputs = [tensors[b].to_variable(dtype=np.float32, shape=[1, 64])]
        graph.cleanup()

    out = _gs(model, edit)
    validate(out, "the extracted model", "")
    return out


def gs_insert(model: onnx.ModelProto, t: str) -> onnx.ModelProto:
    """An Identity node after ``t``: its readers read the new tensor (what ``surgeon insert --inputs t --outputs t`` does)."""

    def edit(graph: gs.Graph) -> None:
        tensor = graph.tensors()[t]
        new = gs.Variable(t + "_ins", dtype=tensor.dtype, shape=tensor.shape)
        for consumer in list(tensor.outputs):
            for i, x in enumerate(consumer.inputs):
                if x is tensor:
                    consumer.inputs[i] = new
        graph.nodes.append(gs.Node("Identity", name="trtdbg_insert_Identity", inputs=[tensor], outputs=[new]))
        graph.toposort()

    out = _gs(model, edit)
    validate(out, "the edited model", "")
    return out


def gs_fold(model: onnx.ModelProto) -> onnx.ModelProto:
    return _gs(model, lambda g: g.fold_constants().cleanup())


def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    """Wall and CPU seconds of ``fn()`` and its result (the exception's one line when it raised)."""
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        result = fn()
    except Exception as exc:  # graphsurgeon's recursive walks raise RecursionError on deep graphs
        result = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="edits to run (default: all)")
    ap.add_argument(
        "--deep",
        action="store_true",
        help="raise the recursion limit (1e7, 4 GiB thread stack) so recursive walks finish",
    )
    args = ap.parse_args()
    if args.deep:
        sys.setrecursionlimit(10_000_000)
        threading.stack_size(4 << 30)
        worker = threading.Thread(target=run, args=(args,))
        worker.start()
        worker.join()
    else:
        run(args)


def run(args: argparse.Namespace) -> None:
    n = args.nodes
    base = chain_model(n)
    mid, late = _out(n // 4), _out(3 * n // 4)
    cases: dict[
        str, tuple[onnx.ModelProto, Callable[[onnx.ModelProto], object], Callable[[onnx.ModelProto], object]]
    ] = {
        "toposort": (shuffled(n), toposort, lambda m: _gs(m, lambda g: g.toposort())),
        "cleanup": (with_dead_branch(n), cleanup, lambda m: _gs(m, lambda g: g.cleanup())),
        "extract": (
            base,
            lambda m: extract(
                m, [TensorSpec(mid, (1, 64), np.dtype(np.float32))], [TensorSpec(late, dtype=np.dtype(np.float32))]
            ),
            lambda m: gs_extract(m, mid, late),
        ),
        "insert": (base, lambda m: insert_node(m, "Identity", [mid], [mid]), lambda m: gs_insert(m, mid)),
        "fold_constants": (with_constant_branch(n), lambda m: fold_constants(m)[0], gs_fold),
        "import+export only": (base, lambda m: m, lambda m: _gs(m, lambda g: None)),
    }
    for name, (model, ours, theirs) in cases.items():
        if args.only and name not in args.only:
            continue
        times: dict[str, list[tuple[float, float]]] = {"trtdbg": [], "graphsurgeon": []}
        sizes = {}
        for _ in range(args.repeat):
            for side, fn in (("trtdbg", ours), ("graphsurgeon", theirs)):
                wall, cpu, result = timed(lambda fn=fn, model=model: fn(model))
                times[side].append((wall, cpu))
                proto = getattr(result, "model", result)
                sizes[side] = len(proto.graph.node) if isinstance(proto, onnx.ModelProto) else str(proto)
        row = {"edit": name, "nodes_in": len(model.graph.node), "nodes_out": sizes}
        for side, runs in times.items():
            row[f"{side}_wall_s"] = round(min(w for w, _ in runs), 3)
            row[f"{side}_cpu_s"] = round(min(c for _, c in runs), 3)
        row["ratio_gs_over_trtdbg_cpu"] = round(row["graphsurgeon_cpu_s"] / max(row["trtdbg_cpu_s"], 1e-3), 2)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
