"""Load an ONNX model with one-line, actionable errors, and check that runtimes know its ops.

:func:`load_model` never writes to the model or its data files. :func:`check_runtime_support`
flags ops/domains no schema defines and opsets newer than the installed onnxruntime accepts.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine_core.errors import TrtdbgError, first_line
from engine_core.model.proto import AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto

if TYPE_CHECKING:
    from onnx.defs import OpSchema

DEFAULT_DOMAIN = "ai.onnx"
"""Key used for the default ONNX domain (stored as ``""`` or ``"ai.onnx"`` in files)."""

# Domains whose ops onnx.defs describes (ONNX Runtime implements ai.onnx and ai.onnx.ml).
_ONNX_DOMAINS = frozenset(
    {DEFAULT_DOMAIN, "ai.onnx.ml", "ai.onnx.preview", "ai.onnx.training", "ai.onnx.preview.training"}
)
# ONNX Runtime contrib / internal domains: accepted without a schema check.
_ORT_DOMAINS = frozenset({"com.microsoft", "com.microsoft.nchwc", "com.ms.internal.nhwc", "com.microsoft.experimental"})
# Every onnxruntime this project supports (>= 1.20) runs ai.onnx opsets up to this one.
_ORT_SAFE_OPSET = 21
SUBGRAPH_OPS = frozenset({"If", "Loop", "Scan", "SequenceMap"})
"""ONNX-domain ops with GRAPH attributes (nodes of other domains are checked one by one)."""
RANDOM_OPS = frozenset(
    {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}
)
"""Ops whose output differs from run to run (never folded; their output type comes from an attribute)."""
KEEP_FP32_INPUTS: dict[str, frozenset[int]] = {"Resize": frozenset({1, 2}), "Upsample": frozenset({1})}
"""Float inputs that stay FP32 when their node computes in low precision (ROI / scales)."""


def formal_parameter(params: Sequence[OpSchema.FormalParameter], i: int) -> OpSchema.FormalParameter | None:
    """The schema's formal parameter of input/output ``i`` (the last one repeats when variadic)."""
    if i < len(params):
        return params[i]
    from onnx.defs import OpSchema

    last = params[-1] if params else None
    return last if last is not None and last.option == OpSchema.FormalParameterOption.Variadic else None


def load_model(
    path: str | os.PathLike[str],
    *,
    load_external_data: bool = True,
    external_data_dir: str | os.PathLike[str] | None = None,
) -> ModelProto:
    """Parse the ONNX file at ``path``; raise :class:`TrtdbgError` with one line on any failure.

    External data files are looked up in ``external_data_dir`` (default: the model's folder); a
    missing or short one is an error. With ``load_external_data=False`` they are not touched and
    tensors keep their external references (``numpy_helper.to_array(t, base_dir)`` reads them).
    """
    p = Path(path)
    if not p.exists():
        raise TrtdbgError(f"model file not found: {p}; check the path")
    if p.is_dir():
        raise TrtdbgError(f"{p} is a folder, not an ONNX file; pass the .onnx file inside it")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise TrtdbgError(f"cannot read model {p}: {exc.strerror or exc}; check file permissions") from exc
    if not data:
        raise TrtdbgError(f"{p} is empty, not an ONNX model; re-export the model")
    model = ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:
        if len(data) >= 2**31:
            raise TrtdbgError(
                f"{p} is {len(data) / 2**30:.1f} GiB; protobuf cannot parse ONNX files over 2 GiB — re-save it with "
                f"the weights as external data (onnx.save(..., save_as_external_data=True))"
            ) from exc
        raise TrtdbgError(
            f"{p} is not a valid ONNX file (protobuf parse failed: the file is corrupt, truncated, or another "
            f"format); re-export the model or copy it again"
        ) from exc
    if not model.HasField("graph") or model.ir_version <= 0:
        raise TrtdbgError(
            f"{p} parsed as protobuf but is not an ONNX model (no graph or IR version); it may be truncated or "
            f"another format — re-export the model"
        )
    # Cheap pre-filter: external data entries always carry a "location" key.
    if load_external_data and b"location" in data:
        base = Path(external_data_dir) if external_data_dir is not None else p.parent
        _load_external_data(model, p, base)
    return model


def check_external_data(
    model: ModelProto, path: str | os.PathLike[str], base: str | os.PathLike[str] | None = None
) -> None:
    """Raise :class:`TrtdbgError` when an external-data file of ``model`` is missing or too short (nothing is read)."""
    from onnx.external_data_helper import uses_external_data

    p = Path(path)
    folder = Path(base) if base is not None else p.parent
    for tensor in _all_tensors(model):
        if uses_external_data(tensor):
            _check_external_tensor(tensor, p, folder)


def _check_external_tensor(tensor: TensorProto, path: Path, base: Path) -> str:
    """Validate one external tensor's file and byte range; return its location."""
    info = {e.key: e.value for e in tensor.external_data}
    location = info.get("location", "")
    data_file = base / location
    if not location or not data_file.is_file():
        raise TrtdbgError(
            f"external data file '{location}' for tensor '{tensor.name}' of {path} not found in {base.resolve()}; put "
            f"it next to the model or pass --external-data-dir DIR"
        )
    bounds = []
    for key in ("offset", "length"):
        text = info.get(key) or "0"
        if not text.isdigit() or not text.isascii():
            raise TrtdbgError(
                f"external data of tensor '{tensor.name}' in {path}: {key}={text!r} is not a byte count; "
                "the model file is corrupt, export it again"
            )
        bounds.append(int(text))
    end = bounds[0] + bounds[1]
    if end > data_file.stat().st_size:
        raise TrtdbgError(
            f"external data file {data_file} is shorter than tensor '{tensor.name}' of {path} needs ({end} "
            f"bytes); the file is truncated or belongs to another export — copy it again"
        )
    return location


def _load_external_data(model: ModelProto, path: Path, base: Path) -> None:
    """Check and read every external-data tensor of ``model`` from files in ``base``."""
    from onnx.external_data_helper import load_external_data_for_tensor, uses_external_data

    for tensor in _all_tensors(model):
        if not uses_external_data(tensor):
            continue
        location = _check_external_tensor(tensor, path, base)
        try:
            load_external_data_for_tensor(tensor, str(base))
        except Exception as exc:
            raise TrtdbgError(
                f"cannot read external data '{location}' for tensor '{tensor.name}' of {path}: "
                f"{first_line(exc, 200)}; check the data file"
            ) from exc


def _all_tensors(model: ModelProto) -> Iterator[TensorProto]:
    """Every TensorProto in the model: initializers and attribute tensors, in all subgraphs/functions."""
    yield from _graph_tensors(model.graph)
    for fn in model.functions:
        for node in fn.node:
            yield from _attribute_tensors(node.attribute)


def _graph_tensors(graph: GraphProto) -> Iterator[TensorProto]:
    yield from graph.initializer
    for node in graph.node:
        yield from _attribute_tensors(node.attribute)


def _attribute_tensors(attributes: Iterable[AttributeProto]) -> Iterator[TensorProto]:
    for attr in attributes:
        if attr.type == AttributeProto.TENSOR:
            yield attr.t
        elif attr.type == AttributeProto.TENSORS:
            yield from attr.tensors
        elif attr.type == AttributeProto.GRAPH:
            yield from _graph_tensors(attr.g)
        elif attr.type == AttributeProto.GRAPHS:
            for g in attr.graphs:
                yield from _graph_tensors(g)


def model_opsets(model: ModelProto) -> dict[str, int]:
    """Imported opsets by domain; the default domain is reported as ``"ai.onnx"``."""
    return {(imp.domain or DEFAULT_DOMAIN): int(imp.version) for imp in model.opset_import}


def check_runtime_support(
    model: ModelProto, path: str | os.PathLike[str] | None = None, *, onnxruntime: bool = True
) -> None:
    """Raise :class:`TrtdbgError` for ops or domains no runtime knows, or an opset too new.

    ONNX-domain ops are checked against ``onnx.defs`` at the imported opset; ``com.microsoft``
    (ONNX Runtime contrib ops) and domains of model-local functions are accepted. With
    ``onnxruntime``, an ai.onnx opset above 21 is probed against the installed onnxruntime
    (imported only then; result cached per process).
    """
    import onnx.defs

    where = f" in {path}" if path else ""
    opsets = model_opsets(model)
    functions = {(f.domain, f.name) for f in model.functions}
    pairs: set[tuple[str, str]] = set()
    _collect_ops(model.graph, pairs)
    bad: list[tuple[str, str, str]] = []  # (domain, op, reason)
    for domain, op in sorted(pairs):
        dom = domain or DEFAULT_DOMAIN
        if (domain, op) in functions or dom in _ORT_DOMAINS:
            continue
        if dom not in _ONNX_DOMAINS:
            bad.append(
                (
                    dom,
                    op,
                    f"custom domain '{dom}' is not known to onnx or onnxruntime; load its custom-op "
                    f"library or re-export with standard ops",
                )
            )
            continue
        version = opsets.get(dom)
        if version is None:
            bad.append((dom, op, f"the model does not import domain '{dom}'; re-export the model"))
            continue
        schema_domain = "" if dom == DEFAULT_DOMAIN else dom
        if not onnx.defs.has(op, schema_domain):
            bad.append(
                (
                    dom,
                    op,
                    "no ONNX schema defines this op; re-export with standard ops (a TensorRT plugin "
                    "needs its plugin library)",
                )
            )
            continue
        try:
            onnx.defs.get_schema(op, version, schema_domain)
        except onnx.defs.SchemaError:
            since = onnx.defs.get_schema(op, schema_domain).since_version
            bad.append(
                (
                    dom,
                    op,
                    f"op needs opset >= {since} but the model imports {dom} opset {version}; "
                    f"re-export with a newer opset",
                )
            )
    if bad:
        dom, op, reason = bad[0]
        node = _find_node(model.graph, dom, op) or "?"
        more = (
            f" (and {len(bad) - 1} more unsupported op type(s): {', '.join(o for _, o, _ in bad[1:4])})"
            if len(bad) > 1
            else ""
        )
        raise TrtdbgError(f"unsupported op '{op}' (domain {dom}) at node '{node}'{where}: {reason}{more}")
    version = opsets.get(DEFAULT_DOMAIN)
    if onnxruntime and version is not None and version > _ORT_SAFE_OPSET:
        max_ok = max_onnxruntime_opset(version)
        if version > max_ok:
            import onnxruntime as ort

            raise TrtdbgError(
                f"{path or 'the model'} uses ai.onnx opset {version} but onnxruntime {ort.__version__} supports at most "
                f"{max_ok}; re-export with opset <= {max_ok} or upgrade onnxruntime"
            )


def ort_session_options(opt_level: str = "disable") -> Any:
    """ONNX Runtime session options: graph optimizations ``disable``, ``basic``, ``extended`` or ``all``.

    Every session trtdbg makes starts from these. ONNX Runtime's own logging is off (fatal messages only,
    for the session and ORT's global logger): it prints failures and provider warnings as extra lines
    before trtdbg's one-line error, which already carries ORT's reason.
    """
    import onnxruntime as ort

    ort.set_default_logger_severity(4)
    so = ort.SessionOptions()
    so.log_severity_level = 4
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[opt_level]
    return so


def ort_cpu_session(model: ModelProto, opt_level: str = "disable", base: str | os.PathLike[str] | None = None) -> Any:
    """An ONNX Runtime CPU session over ``model`` (raises what ONNX Runtime raises when it cannot load it); external
    weights (files in ``base``, memory references) are shared with it, not copied
    (:func:`engine_core.model.weights.open_session`)."""
    from engine_core.model.weights import open_session

    return open_session(model, base, ort_session_options(opt_level))


@functools.cache
def max_onnxruntime_opset(hint: int) -> int:
    """The newest ai.onnx opset <= ``hint`` that the installed onnxruntime accepts (21 at worst).

    Probes by creating a one-node Identity session per candidate opset, from ``hint`` down
    (about a millisecond each); cached per ``hint``.
    """
    from onnx import helper

    vi_x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    vi_y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [vi_x], [vi_y])
    for version in range(hint, _ORT_SAFE_OPSET, -1):
        probe = helper.make_model(graph, opset_imports=[helper.make_opsetid("", version)], ir_version=8)
        try:
            ort_cpu_session(probe)
            return version
        except Exception:
            continue
    return _ORT_SAFE_OPSET


def _collect_ops(graph: GraphProto, pairs: set[tuple[str, str]]) -> None:
    """Add every (domain, op_type) of ``graph`` and its subgraphs to ``pairs``."""
    found = {(n.domain, n.op_type) for n in graph.node}
    pairs.update(found)
    if any(op in SUBGRAPH_OPS or dom not in ("", DEFAULT_DOMAIN) for dom, op in found):
        for node in graph.node:
            if node.op_type in SUBGRAPH_OPS or node.domain not in ("", DEFAULT_DOMAIN):
                for _, sub in subgraphs_of(node):
                    _collect_ops(sub, pairs)


def _find_node(graph: GraphProto, domain: str, op: str) -> str | None:
    """Name (or ``op#position``) of the first node with this domain/op, searching subgraphs too."""
    for pos, node in enumerate(graph.node):
        if node.op_type == op and (node.domain or DEFAULT_DOMAIN) == domain:
            return node.name or f"{op}#{pos}"
        for _, sub in subgraphs_of(node):
            found = _find_node(sub, domain, op)
            if found:
                return found
    return None


def subgraphs_of(node: NodeProto) -> list[tuple[str, GraphProto]]:
    """``(attribute name, graph)`` for each GRAPH/GRAPHS attribute (GRAPHS items as ``name[i]``)."""
    found: list[tuple[str, GraphProto]] = []
    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH:
            found.append((attr.name, attr.g))
        elif attr.type == AttributeProto.GRAPHS:
            found.extend((f"{attr.name}[{i}]", g) for i, g in enumerate(attr.graphs))
    return found
