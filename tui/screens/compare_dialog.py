"""The compare set-up dialog: reference and subject, what to compare, tolerances, input data.

Returns a :class:`CompareForm` (plain strings as typed); :meth:`CompareForm.to_request` turns it into
an engine_core ``CompareRequest`` — the same options the ``trtdbg compare`` command line takes, and
the same validation (errors come back from engine_core as one line and are shown to the user).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Checkbox, Input, Select

from tui.screens.common import FormDialog, choice, key

SAVED = "saved"
SECOND_MODEL = "model"
CHECK_STATS = ("elemwise", "max", "mean", "median", "quantile")


@dataclass
class CompareForm:
    """What the user chose (strings as typed; engine_core parses and validates them)."""

    ref: str = "ort"
    ref_path: str = ""
    subject: str = SECOND_MODEL
    subject_path: str = ""
    subject_backend: str = "ort"
    what: str = "marked"
    """``marked``, ``all`` or ``outputs``."""
    atol: str = "1e-5"
    rtol: str = "1e-5"
    check_error_stat: str = "elemwise"
    data: str = "random"
    """``random``, ``script`` or ``inputs``."""
    data_path: str = ""
    seed: str = "1"
    val_range: str = ""
    shapes: str = ""
    iterations: str = "1"
    fail_fast: bool = False
    more_tolerances: dict[str, Any] = field(default_factory=dict)
    """``ToleranceOptions`` fields the dialog has no field for (given on the command line), e.g. ``rel_mode``;
    ``check_error_stat`` here holds per-tensor items added to the dialog's one."""
    extra: dict[str, Any] = field(default_factory=dict)

    def data_options(self) -> Any:
        """The engine's ``DataOptions`` for the data fields (raises ``TrtdbgError`` on bad values)."""
        from engine_core.errors import TrtdbgError
        from engine_core.options import DataOptions

        script: str | None = None
        inputs: tuple[str, ...] = ()
        if self.data == "script":
            if not self.data_path.strip():
                raise TrtdbgError("data: give the data-loader script (PATH.py[:FUNC])")
            script = self.data_path.strip()
        elif self.data == "inputs":
            if not self.data_path.strip():
                raise TrtdbgError("data: give the saved inputs (.json, .npz or a folder)")
            inputs = tuple(self.data_path.split())
        return DataOptions(
            shapes=tuple(self.shapes.split()),
            seed=_as_int(self.seed, "seed"),
            val_range=tuple(self.val_range.split()),
            iterations=_as_int(self.iterations, "iterations"),
            data_loader_script=script,
            load_inputs=inputs,
        )

    def tolerance_options(self) -> Any:
        """The engine's ``ToleranceOptions`` for the tolerance fields (raises ``TrtdbgError`` on bad values)."""
        from engine_core.options import ToleranceOptions

        more = dict(self.more_tolerances)
        stats = (self.check_error_stat, *more.pop("check_error_stat", ()))
        return ToleranceOptions(
            atol=tuple(self.atol.split()), rtol=tuple(self.rtol.split()), check_error_stat=stats, **more
        )

    def set_options(self, data: Any, tolerances: Any) -> None:
        """Fill the fields from typed ``DataOptions`` and ``ToleranceOptions`` (command-line defaults)."""
        from dataclasses import asdict

        from engine_core.options import ToleranceOptions

        self.seed, self.iterations = str(data.seed), str(data.iterations)
        self.shapes, self.val_range = " ".join(data.shapes), " ".join(data.val_range)
        if data.load_inputs:
            self.data, self.data_path = "inputs", " ".join(data.load_inputs)
        elif data.data_loader_script:
            self.data, self.data_path = "script", data.data_loader_script
        if tolerances.atol:
            self.atol = " ".join(tolerances.atol)
        if tolerances.rtol:
            self.rtol = " ".join(tolerances.rtol)
        items = [i.strip() for spec in tolerances.check_error_stat for i in spec.split(",")]
        per_tensor = [i for i in items if i.rpartition(":")[0]]
        self.check_error_stat = next((i for i in reversed(items) if not i.rpartition(":")[0]), self.check_error_stat)
        defaults = asdict(ToleranceOptions())
        self.more_tolerances = {
            k: v
            for k, v in asdict(tolerances).items()
            if k not in ("atol", "rtol", "check_error_stat") and v != defaults[k]
        }
        if per_tensor:
            self.more_tolerances["check_error_stat"] = tuple(per_tensor)

    def to_request(
        self, model: str, marks: list[str], workspace: str | None, external_data_dir: str | None = None
    ) -> Any:
        """The engine_core ``CompareRequest`` for this form (raises ``TrtdbgError`` on bad values); ``external_data_dir``:
        the folder of ``model``'s external data."""
        from engine_core.comparator.request import CompareRequest
        from engine_core.errors import TrtdbgError

        kw: dict[str, Any] = {}
        if self.ref == SAVED:
            if not self.ref_path.strip():
                raise TrtdbgError("reference: give the saved outputs file")
            kw["ref_outputs"] = self.ref_path.strip()
        else:
            kw["ref"] = self.ref
        if self.subject == SAVED:
            if not self.subject_path.strip():
                raise TrtdbgError("subject: give the saved outputs file")
            kw["subject_outputs"] = self.subject_path.strip()
        elif self.subject == SECOND_MODEL:
            if not self.subject_path.strip():
                raise TrtdbgError("subject: give the second model (e.g. the FP16 copy), or pick a backend")
            kw["subject_model"] = self.subject_path.strip()
            kw["subject_backend"] = self.subject_backend
        else:
            kw["subject"] = self.subject
        if self.what == "all":
            kw["marks"] = ["all"]
        elif self.what == "marked":
            if not marks:
                raise TrtdbgError(
                    "no tensor is marked: mark nodes with space (or m for a scope, M for all), or choose 'all tensors'"
                )
            kw["marks"] = list(marks)
        return CompareRequest(
            model=model,
            tolerances=self.tolerance_options(),
            data=self.data_options(),
            fail_fast=self.fail_fast,
            workspace=workspace,
            external_data_dir=external_data_dir,
            **kw,
            **self.extra,
        )


def _as_int(text: str, what: str) -> int:
    from engine_core.errors import TrtdbgError

    try:
        return int(str(text).strip())
    except ValueError:
        raise TrtdbgError(f"{what} must be an integer (got '{text}')") from None


def backend_choices() -> list[tuple[str, str]]:
    """``(label, spec)`` for each backend spec engine_core accepts: ONNX Runtime, its precision variants
    (FP16/BF16 emulated on CPU, real types on CUDA, INT8 as Q/DQ) and TensorRT when its module is present."""
    from engine_core.runners import BACKENDS

    out = [(f"{spec}: {desc}", spec) for spec, (_, desc) in BACKENDS.items() if spec != "ort-cpu"]
    try:
        from engine_core.precision.runner import PRECISION_SUFFIXES

        for base, how in (("ort", "CPU, storage rounding emulated"), ("ort-cuda", "CUDA, real types")):
            for p in PRECISION_SUFFIXES:
                out.append((f"{base}:{p}: ONNX Runtime {p.upper()} ({how if p != 'int8' else 'Q/DQ'})", f"{base}:{p}"))
    except ImportError:
        pass
    try:
        from engine_core.backend.trt.spec import DESCRIPTIONS

        for spec, desc in DESCRIPTIONS.items():
            if spec.endswith("[:fp16]"):
                base = spec[: -len("[:fp16]")]
                out += [(f"{base}: {desc}", base), (f"{base}:fp16: {desc}, FP16", f"{base}:fp16")]
            else:
                out.append((f"{spec}: {desc}", spec))
    except ImportError:
        pass
    return out


class CompareDialog(FormDialog):
    """Set up and start a comparison."""

    DEFAULT_CSS = """
    CompareDialog VerticalScroll { max-height: 20; }
    CompareDialog Label.key { width: 12; }
    CompareDialog Select { width: 1fr; margin-right: 1; background: $boost; }
    CompareDialog Input { margin-right: 1; }
    CompareDialog Input.small { width: 10; }
    """
    TITLE_TEXT = "Compare"

    def __init__(self, form: CompareForm, marked: int, model_name: str) -> None:
        super().__init__()
        self.form = form
        self.marked = marked
        self.model_name = model_name

    def fields(self) -> ComposeResult:
        f = self.form
        backends = backend_choices()
        with Horizontal(classes="row"):
            yield key("reference")
            yield choice([*backends, ("saved outputs (file)", SAVED)], f.ref, "ref")
            yield Input(
                f.ref_path, placeholder="saved reference outputs (.json/.npz/folder)", id="ref-path", compact=True
            )
        with Horizontal(classes="row"):
            yield key("subject")
            yield choice(
                [("a second model (e.g. FP16 copy)", SECOND_MODEL), *backends, ("saved outputs (file)", SAVED)],
                f.subject,
                "subject",
            )
            yield Input(
                f.subject_path, placeholder="path of the second model or saved outputs", id="subject-path", compact=True
            )
        with Horizontal(classes="row", id="subject-backend-row"):
            yield key("runs on")
            yield choice(backends, f.subject_backend, "subject-backend")
        with Horizontal(classes="row"):
            yield key("compare")
            yield choice(
                [
                    (f"marked tensors ({self.marked})", "marked"),
                    ("all tensors (mark all)", "all"),
                    ("model outputs only", "outputs"),
                ],
                f.what,
                "what",
            )
        with Horizontal(classes="row"):
            yield key("atol rtol")
            yield Input(f.atol, placeholder="atol, e.g. 1e-3 or NAME:1e-2", id="atol", compact=True)
            yield Input(f.rtol, placeholder="rtol", id="rtol", compact=True)
            yield choice([(s, s) for s in CHECK_STATS], f.check_error_stat, "check")
        with Horizontal(classes="row"):
            yield key("input data")
            yield choice(
                [("random values", "random"), ("data-loader script", "script"), ("saved inputs", "inputs")],
                f.data,
                "data",
            )
            yield Input(f.data_path, placeholder="script.py[:func] or inputs file", id="data-path", compact=True)
        with Horizontal(classes="row", id="random-row"):
            yield key("random")
            yield Input(f.seed, placeholder="seed", id="seed", classes="small", compact=True)
            yield Input(f.val_range, placeholder="value range, e.g. 0,1 or x:-1,1", id="val-range", compact=True)
            yield Input(f.shapes, placeholder="shapes, e.g. x:1x3x224x224", id="shapes", compact=True)
        with Horizontal(classes="row"):
            yield key("iterations")
            yield Input(f.iterations, id="iterations", classes="small", compact=True)
            yield Checkbox("stop at first failure", f.fail_fast, id="fail-fast")

    def on_mount(self) -> None:
        self._sync_visibility()
        self.query_one("#run", Button).focus()

    @on(Select.Changed)
    def _changed(self) -> None:
        self._sync_visibility()

    def _sync_visibility(self) -> None:
        ref = self.query_one("#ref", Select).value
        sub = self.query_one("#subject", Select).value
        data = self.query_one("#data", Select).value
        self.query_one("#ref-path").display = ref == SAVED
        self.query_one("#subject-path").display = sub in (SAVED, SECOND_MODEL)
        self.query_one("#subject-backend-row").display = sub == SECOND_MODEL
        self.query_one("#data-path").display = data != "random"
        self.query_one("#random-row").display = data == "random"

    def read_form(self) -> CompareForm:
        q = self.query_one
        return replace(
            self.form,
            ref=str(q("#ref", Select).value),
            ref_path=q("#ref-path", Input).value,
            subject=str(q("#subject", Select).value),
            subject_path=q("#subject-path", Input).value,
            subject_backend=str(q("#subject-backend", Select).value),
            what=str(q("#what", Select).value),
            atol=q("#atol", Input).value,
            rtol=q("#rtol", Input).value,
            check_error_stat=str(q("#check", Select).value),
            data=str(q("#data", Select).value),
            data_path=q("#data-path", Input).value,
            seed=q("#seed", Input).value,
            val_range=q("#val-range", Input).value,
            shapes=q("#shapes", Input).value,
            iterations=q("#iterations", Input).value,
            fail_fast=q("#fail-fast", Checkbox).value,
        )

    def result(self) -> CompareForm:
        return self.read_form()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_run()
