"""TensorRT view: the engine's layers (after fusion) and the ONNX nodes each implements.

Source: an engine file (needs TensorRT and a GPU to deserialize, else the build-log sidecar trtdbg wrote) or
engine-inspector JSON (``trtexec --exportLayerInfo``; no TensorRT needed). engine_core reads it
(``read_engine_file``) and maps it onto the ONNX graph (``fusion_map``). ``t`` / esc returns to the ONNX view;
enter on an ONNX node shows it there.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Static, Tree

from engine_core.safetext import printable
from tui.messages import JobFinished
from tui.plain import safe
from tui.widgets.detail import DetailPane

MAX_CHILDREN = 1000


def engine_status() -> str:
    """One line: which TensorRT flavours import here (does not raise)."""
    try:
        from engine_core.backend.trt.flavour import available_flavours

        found = available_flavours()
    except Exception as exc:
        return f"TensorRT status unknown ({type(exc).__name__})"
    return f"TensorRT here: {', '.join(found)}" if found else "TensorRT is not installed here"


def load_engine_view(index: Any, path: str) -> dict[str, Any]:
    """Thread: the engine's layers and their mapping onto the ONNX graph, as plain data."""
    from engine_core.backend.trt.describe import read_engine_file
    from engine_core.backend.trt.mapping import fusion_map

    info = read_engine_file(path)
    fmap = fusion_map(index, info)
    layers = []
    for layer in info.layers:
        layers.append(
            {
                "name": layer.name,
                "type": layer.type,
                "precision": layer.precision,
                "tactic": layer.tactic,
                "onnx_nodes": list(layer.onnx_nodes),
                "inputs": [(t.name, t.dtype, t.dims) for t in layer.inputs],
                "outputs": [(t.name, t.dtype, t.dims) for t in layer.outputs],
            }
        )
    return {
        "path": path,
        "source": info.source,
        "schema": info.schema,
        "notes": list(info.notes),
        "layers": layers,
        "fusion": fmap,
    }


class TrtViewScreen(Screen):
    """Engine layers → ONNX nodes."""

    BINDINGS = [
        Binding("escape,t", "back", "ONNX view", id="trt-back"),
        Binding("j", "cursor_down", "Down", show=False, id="trt-down"),
        Binding("k", "cursor_up", "Up", show=False, id="trt-up"),
    ]
    DEFAULT_CSS = """
    TrtViewScreen #trt-top { height: 1; background: $panel; padding: 0 1; }
    TrtViewScreen #trt-body { height: 1fr; }
    TrtViewScreen Tree { width: 50%; border-right: solid $panel-lighten-2; }
    """

    def __init__(self, main: Any, path: str) -> None:
        super().__init__()
        self.main = main
        self.path = path
        self.data: dict[str, Any] | None = None
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(safe(f"TensorRT view · loading {self.path} …"), id="trt-top")
        with Horizontal(id="trt-body"):
            tree: Tree = Tree(Text("engine layers"), id="trt-tree")
            tree.auto_expand = False
            yield tree
            yield DetailPane(id="trt-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#trt-tree", Tree).focus()
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="trt-view")
    def load(self) -> None:
        from engine_core.errors import TrtdbgError

        try:
            self.post_message(JobFinished("trt-view", load_engine_view(self.main.view.index, self.path)))
        except TrtdbgError as exc:
            self.post_message(JobFinished("trt-view", None, str(exc)))
        except Exception as exc:
            self.post_message(JobFinished("trt-view", None, f"{type(exc).__name__}: {exc}"))

    @on(JobFinished)
    def _loaded(self, msg: JobFinished) -> None:
        if msg.kind != "trt-view":
            return
        if msg.result is None:
            self.error = msg.error
            self.query_one("#trt-top", Static).update(
                safe(f"TensorRT view · cannot read {self.path}", style="bold red")
            )
            self.query_one(DetailPane).show(Text(msg.error or "", style="red"))
            return
        self.data = msg.result
        self.main.view.fusion = msg.result["fusion"]
        d = self.data
        fmap = d["fusion"]
        top = Text()
        top.append("TensorRT view ", style="bold")
        top.append(
            f"· {len(d['layers'])} engine layers · {len(fmap.node_layers)} ONNX nodes mapped · "
            f"{len(fmap.no_layer)} with no layer · {len(fmap.fused)} tensors fused away · {d['schema']}",
            style="dim",
        )
        self.query_one("#trt-top", Static).update(safe(top))
        tree = self.query_one("#trt-tree", Tree)
        tree.root.set_label(safe(d["path"]))
        index = self.main.view.index
        for k, layer in enumerate(d["layers"][:20_000]):
            label = Text()
            label.append(printable(layer["name"]))
            label.append(printable(f"  {layer['type']}"), style="cyan")
            if layer["precision"]:
                label.append(printable(f"  {layer['precision']}"), style="dim")
            node = tree.root.add(safe(label), data=("layer", k), allow_expand=bool(layer["onnx_nodes"]))
            for name in layer["onnx_nodes"][:MAX_CHILDREN]:
                i = index.find(name)
                child = Text()
                child.append("← ", style="dim")
                child.append(printable(name), style="bold" if i is not None else "dim")
                if i is not None:
                    child.append(printable(f"  {index.op_type(i)}"), style="cyan")
                else:
                    child.append("  (not in this ONNX model)", style="dim")
                node.add_leaf(safe(child), data=("onnx", i))
        tree.root.expand()
        self._show_summary()

    def _show_summary(self) -> None:
        d = self.data
        if d is None:
            return
        fmap = d["fusion"]
        t = Text()
        t.append("Engine ", style="bold")
        t.append(printable(d["source"]))
        for n in d["notes"]:
            t.append("\n" + printable(n), style="dim")
        t.append(f"\n\n{len(d['layers'])} engine layers implement {len(fmap.node_layers)} ONNX nodes.\n")
        if fmap.no_layer:
            t.append(f"{len(fmap.no_layer)} ONNX node(s) have no engine layer (folded), e.g. ", style="dim")
            t.append(printable(", ".join(fmap.no_layer[:5])))
            t.append("\n")
        fused = fmap.fused
        if fused:
            t.append(
                f"{len(fused)} tensor(s) have no buffer of their own (fused): their values cannot be compared "
                "without marking them, which changes the engine.\n",
                style="dim",
            )
        t.append("\nenter on an ONNX node: show it in the ONNX view · t / esc: back", style="dim")
        self.query_one(DetailPane).show(t)

    @on(Tree.NodeHighlighted, "#trt-tree")
    def _highlight(self, event: Tree.NodeHighlighted) -> None:
        if self.data is None or event.node.data is None:
            self._show_summary()
            return
        kind, ref = event.node.data
        if kind == "layer":
            layer = self.data["layers"][ref]
            t = Text()
            t.append(printable(layer["name"]), style="bold")
            t.append("\n" + printable(layer["type"]), style="cyan")
            if layer["precision"]:
                t.append(printable(f" · output types {layer['precision']}"))
            if layer["tactic"]:
                t.append(f" · tactic {layer['tactic']}", style="dim")
            for title, tensors in (("Inputs", layer["inputs"]), ("Outputs", layer["outputs"])):
                t.append(f"\n\n{title}\n", style="bold")
                for name, dtype, shape in tensors:
                    t.append(printable(f"  {name}"))
                    t.append(f"  {dtype} {list(shape) if shape is not None else ''}\n", style="dim")
            t.append(f"\nONNX nodes ({len(layer['onnx_nodes'])})\n", style="bold")
            for name in layer["onnx_nodes"][:50]:
                t.append(f"  {printable(name)}\n")
            self.query_one(DetailPane).show(t)
        elif ref is not None:
            from tui.widgets.detail import node_detail

            self.query_one(DetailPane).show(node_detail(self.main.view, ref, self.main.results_by_tensor, None))

    @on(Tree.NodeSelected, "#trt-tree")
    def _select(self, event: Tree.NodeSelected) -> None:
        if event.node.data is None:
            return
        kind, ref = event.node.data
        if kind == "onnx" and ref is not None:
            self.app.pop_screen()
            self.main.jump_to(ref)
        elif kind == "layer":
            event.node.toggle()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_cursor_down(self) -> None:
        self.query_one("#trt-tree", Tree).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one("#trt-tree", Tree).action_cursor_up()
