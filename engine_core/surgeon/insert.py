"""``surgeon insert``: add one node; when its outputs already exist, it replaces what produced them.

Rules (as Polygraphy's ``surgeon insert``): the new node reads ``inputs`` and writes ``outputs``. An output that
exists takes over that tensor: its old producer stops writing it, and nodes left feeding nothing are removed. An
output that is also an input (``--inputs x --outputs x``) wraps the tensor in place: the old value is renamed
``x__before_insert`` (or, for a graph input or initializer, consumers read ``x__after_insert``). A new output name
becomes a graph output. Attributes are checked and converted against the op schema.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from typing import Any

import onnx
from onnx import AttributeProto, ModelProto, helper

from engine_core.errors import TrtdbgError, first_line
from engine_core.model.index import ModelIndex
from engine_core.surgeon.changes import EditResult, summarize
from engine_core.surgeon.graph import (
    check_top_level,
    cleanup,
    infer_shapes,
    rename_reads,
    shell,
    top_level_tensors,
    toposort,
    validate,
)

_SCALAR: dict[int, type] = {AttributeProto.FLOAT: float, AttributeProto.INT: int, AttributeProto.STRING: str}
_LIST: dict[int, type] = {AttributeProto.FLOATS: float, AttributeProto.INTS: int, AttributeProto.STRINGS: str}


def parse_attrs(items: Sequence[str]) -> dict[str, Any]:
    """``k=v`` items (comma-separated allowed outside brackets/quotes): Python literals, else plain strings."""
    from engine_core.surgeon.extract import split_items

    attrs: dict[str, Any] = {}
    for item in split_items(items):
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise TrtdbgError(f"--attrs: cannot read '{item}'; expected NAME=VALUE, e.g. axis=1 or perm=[0,2,1]")
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = text.strip()
        attrs[key] = value
    return attrs


def _convert(op: str, name: str, value: Any, attr_type: int) -> Any:
    """Coerce a parsed value to the schema's attribute type (``1`` for a float attribute becomes ``1.0``)."""
    bad = TrtdbgError(
        f"--attrs: {op} attribute '{name}' needs {AttributeProto.AttributeType.Name(attr_type).lower()}, got {value!r}"
    )
    try:
        if attr_type in _SCALAR:
            if isinstance(value, (list, tuple)) or (attr_type == AttributeProto.INT and isinstance(value, float)):
                raise bad
            return _SCALAR[attr_type](value)
        if attr_type in _LIST:
            items = value if isinstance(value, (list, tuple)) else [value]
            if attr_type == AttributeProto.INTS and any(isinstance(v, float) for v in items):
                raise bad
            return [_LIST[attr_type](v) for v in items]
    except (TypeError, ValueError):
        raise bad from None
    raise TrtdbgError(
        f"--attrs: {op} attribute '{name}' has type {AttributeProto.AttributeType.Name(attr_type)}, "
        f"which --attrs cannot express; edit the model in Python"
    )


def _check_schema(
    model: ModelProto, op: str, domain: str, n_in: int, n_out: int, attrs: Mapping[str, Any]
) -> dict[str, Any]:
    """Validate op, arity and attributes against the ONNX schema at the model's opset; return converted attributes."""
    opset = next(
        (o.version for o in model.opset_import if o.domain == domain or (not domain and o.domain == "ai.onnx")), None
    )
    if opset is None:
        raise TrtdbgError(
            f"the model imports no opset for domain '{domain or 'ai.onnx'}'; choose an op of a domain it uses"
        )
    if not onnx.defs.has(op, domain):
        raise TrtdbgError(
            f"--op: no op '{op}' in domain '{domain or 'ai.onnx'}'; check the spelling (ops are CamelCase, "
            f"e.g. Identity, Relu)"
        )
    try:
        schema = onnx.defs.get_schema(op, opset, domain)
    except onnx.defs.SchemaError:
        since = onnx.defs.get_schema(op, domain).since_version
        raise TrtdbgError(f"--op: {op} needs opset >= {since}; the model imports opset {opset}") from None
    if not schema.min_input <= n_in <= schema.max_input:
        raise TrtdbgError(f"--inputs: {op} takes {schema.min_input}..{schema.max_input} inputs, got {n_in}")
    if not schema.min_output <= n_out <= schema.max_output:
        raise TrtdbgError(f"--outputs: {op} has {schema.min_output}..{schema.max_output} outputs, got {n_out}")
    out: dict[str, Any] = {}
    for name, value in attrs.items():
        if name not in schema.attributes:
            raise TrtdbgError(
                f"--attrs: {op} has no attribute '{name}'; it has: {', '.join(sorted(schema.attributes)) or '(none)'}"
            )
        out[name] = _convert(op, name, value, int(schema.attributes[name].type))  # type: ignore[call-overload]  # the onnx stub omits AttrType.__int__
    required = [a for a, s in schema.attributes.items() if s.required and a not in out]
    if required:
        raise TrtdbgError(f"--attrs: {op} needs attribute(s) {', '.join(required)}")
    return out


def insert_node(
    model: ModelProto,
    op: str,
    inputs: Sequence[str],
    outputs: Sequence[str],
    *,
    attrs: Mapping[str, Any] | None = None,
    name: str | None = None,
    domain: str = "",
    path: str | None = None,
) -> EditResult:
    """Insert one ``op`` node (see the module docstring); the result passes the ONNX checker and loads in ONNX Runtime.

    Raises on unknown tensors, an op or attribute the schema rejects, a node that would read its own output
    (a cycle), or writing a graph input that it does not read.
    """
    where = path or "the model"
    domain = "" if domain == "ai.onnx" else domain
    if not outputs:
        raise TrtdbgError("--outputs: give at least one output tensor name")
    index = ModelIndex(model, path)
    known = top_level_tensors(model)
    for t in inputs:
        if t and t not in known:
            check_top_level(index, t, known, "--inputs", where)
    if len(set(outputs)) != len(outputs) or "" in outputs:
        raise TrtdbgError("--outputs: output names must be distinct and non-empty")
    converted = (
        _check_schema(model, op, domain, len(inputs), len(outputs), attrs or {})
        if domain in ("", "ai.onnx.ml")
        else dict(attrs or {})
    )
    init = set(index.initializer_names)
    graph_inputs = {vi.name for vi in model.graph.input}
    for t in outputs:
        if t not in inputs and (t in graph_inputs or t in init):
            raise TrtdbgError(
                f"--outputs: '{t}' is a graph input or initializer; a node cannot write it unless it also "
                f"reads it (--inputs {t} --outputs {t} wraps it in place)"
            )
        if t not in known and index.producer(t) is not None:
            check_top_level(index, t, known, "--outputs", where)
    _check_cycle(index, [t for t in inputs if t and t not in outputs], [t for t in outputs if t in known])
    if name and name in {n.name for n in model.graph.node}:
        raise TrtdbgError(f"--name: a node named '{name}' already exists; choose another name")

    taken = known | {n.name for n in model.graph.node}
    nodes = [_copy(n) for n in model.graph.node]
    new_inputs = list(inputs)
    new_outputs = list(outputs)
    graph_outputs = [_copy_vi(vi) for vi in model.graph.output]
    notes: list[str] = []
    rename_consumers: dict[str, str] = {}
    for k, t in enumerate(outputs):
        if t in inputs and index.producer(t) is not None:
            old = _unique(f"{t}__before_insert", taken)
            _rename_output(nodes, t, old)
            new_inputs = [old if x == t else x for x in new_inputs]
        elif t in inputs:
            fresh = _unique(f"{t}__after_insert", taken)
            rename_consumers[t] = fresh
            new_outputs[k] = fresh
            for vi in graph_outputs:
                if vi.name == t:
                    vi.name = fresh
        elif t in known:
            _rename_output(nodes, t, _unique(f"{t}__replaced", taken))
        else:
            graph_outputs.append(helper.make_empty_tensor_value_info(t))
            notes.append(f"'{t}' is a new tensor; it was made a graph output")
    if rename_consumers:
        rename_reads(nodes, rename_consumers)
    node_name = name or _unique(f"trtdbg_insert_{op}", taken)
    nodes.append(helper.make_node(op, new_inputs, new_outputs, node_name, domain=domain or None, **converted))
    out = shell(model)
    if domain and domain not in {o.domain for o in out.opset_import}:
        out.opset_import.append(helper.make_opsetid(domain, 1))
        notes.append(f"added opset import {domain} v1")
    g = out.graph
    g.node.extend(nodes)
    g.input.extend(model.graph.input)
    g.output.extend(graph_outputs)
    g.initializer.extend(model.graph.initializer)
    g.sparse_initializer.extend(model.graph.sparse_initializer)
    g.value_info.extend(vi for vi in model.graph.value_info if vi.name not in set(outputs))
    out = toposort(cleanup(out))
    new_names = [t for t in outputs if t not in known]
    if new_names:
        out = _type_new_outputs(out, new_names)
    notes += validate(out, "the model with the inserted node", "check --op, --inputs, --outputs and --attrs", path)
    return EditResult(out, summarize("insert", model, out, notes))


def _type_new_outputs(model: ModelProto, names: list[str]) -> ModelProto:
    """Fill the types of new graph outputs from shape inference; raise when it cannot tell them."""
    try:
        inferred = {vi.name: vi for vi in infer_shapes(model, strict=False).graph.output}
    except Exception as exc:
        raise TrtdbgError(
            f"shape inference fails on the model with the inserted node: {first_line(exc)}; check --inputs and --attrs"
        ) from exc
    for vi in model.graph.output:
        if vi.name in names:
            found = inferred.get(vi.name)
            if found is None or not found.type.tensor_type.elem_type:
                try:
                    infer_shapes(model, strict=True)
                    why = ""
                except Exception as exc:
                    why = f" ({first_line(exc)})"
                raise TrtdbgError(f"cannot infer the type of new output '{vi.name}'{why}; check --inputs and --attrs")
            vi.CopyFrom(found)
    return model


def _check_cycle(index: ModelIndex, inputs: list[str], outputs: list[str]) -> None:
    """Raise when an input is computed from one of the outputs (the new node would feed itself)."""
    if not inputs or not outputs:
        return
    reach: dict[str, str] = {}
    stack = [(t, t) for t in outputs]
    while stack:
        t, origin = stack.pop()
        for c in index.consumers(t):
            if c >= index.num_top_level:
                continue  # a subgraph reader: its top-level holder is listed as a consumer too
            for y in index.node_outputs(c):
                if y and y not in reach:
                    reach[y] = origin
                    stack.append((y, origin))
    bad = next((t for t in inputs if t in reach), None)
    if bad is not None:
        raise TrtdbgError(
            f"inserting this node would create a cycle: input '{bad}' is computed from output "
            f"'{reach[bad]}'; choose inputs upstream of the outputs"
        )


def _copy(node: onnx.NodeProto) -> onnx.NodeProto:
    n = onnx.NodeProto()
    n.CopyFrom(node)
    return n


def _copy_vi(vi: onnx.ValueInfoProto) -> onnx.ValueInfoProto:
    v = onnx.ValueInfoProto()
    v.CopyFrom(vi)
    return v


def _unique(base: str, taken: set[str]) -> str:
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def _rename_output(nodes: list[onnx.NodeProto], old: str, new: str) -> None:
    for n in nodes:
        for j, y in enumerate(n.output):
            if y == old:
                n.output[j] = new
