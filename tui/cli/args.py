"""Option groups shared by the commands, modelled on Polygraphy's argument groups.

Each group adds its options to a parser (:meth:`add_parser_args`) and turns the parsed namespace
into the engine's typed options (:meth:`parse`), which validate themselves: every command that takes
input data or tolerances declares and reads them through the same group. Only argparse is imported
at module level (``trtdbg --help`` stays fast); engine_core loads inside :meth:`parse`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine_core.check import CheckCommand
    from engine_core.comparator.checks import ExtraChecks
    from engine_core.data.shape_choice import ShapeChoice
    from engine_core.options import DataOptions, ToleranceOptions
    from engine_core.precision.convert import Rewrite


class DataArgs:
    """Input data: random (seed, value ranges, shapes, samples), a data-loader script, or saved inputs.

    ``samples=False`` leaves out ``--iterations`` for commands that use a single feed (``bench``).
    """

    def __init__(self, title: str | None = None, *, samples: bool = True) -> None:
        self.title = title or "input data (default: random, seed 1, values in [0,1])"
        self.samples = samples

    def add_parser_args(self, parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
        g = parser.add_argument_group(self.title)
        g.add_argument("--seed", type=int, default=1, help="random seed; sample i uses seed+i (default 1)")
        g.add_argument("--val-range", nargs="+", metavar="[NAME:][LO,HI]", help="value range per input (default [0,1])")
        g.add_argument(
            "--shapes",
            "--input-shapes",
            dest="shapes",
            nargs="+",
            metavar="NAME:1x3x640x640",
            help="shapes for dynamic inputs (also NAME:[1,3,640,640]; --input-shapes is Polygraphy's name); "
            "default: model hints, else batch 1, spatial 224, sequence 128",
        )
        if self.samples:
            g.add_argument(
                "--iterations", type=int, default=1, metavar="N", help="number of random input samples (default 1)"
            )
        src = g.add_mutually_exclusive_group()
        src.add_argument(
            "--data-loader-script",
            metavar="PATH.py[:FUNC]",
            help="a script whose FUNC (default load_data) yields feed dicts",
        )
        src.add_argument(
            "--load-inputs", nargs="+", metavar="F", help="saved inputs (.json, directory, .npz), samples in order"
        )
        g.add_argument(
            "--loader-timeout",
            type=float,
            metavar="S",
            help="seconds one step of the data-loader script (import, the call, one sample) may take before it "
            "counts as hung (default 300)",
        )
        return g

    def parse(self, args: argparse.Namespace) -> DataOptions:
        """The typed, validated :class:`~engine_core.options.DataOptions`."""
        from engine_core.options import DataOptions

        return DataOptions(
            shapes=args.shapes or (),
            seed=args.seed,
            val_range=args.val_range or (),
            iterations=args.iterations if self.samples else 1,
            data_loader_script=args.data_loader_script,
            load_inputs=args.load_inputs or (),
            loader_timeout=args.loader_timeout,
        )


def model_inputs(
    model: str, data: DataOptions, warn: Callable[[str], None], *, probe: bool
) -> tuple[ShapeChoice, Callable[[], list[Any]]]:
    """MODEL's input shapes as compare chooses them (checked by a run when ``probe``), and a function that makes the
    feeds of ``data`` for them when called (warnings go to ``warn``)."""
    from engine_core.backend.ort import OrtRunner
    from engine_core.data.shape_choice import choose_shapes
    from engine_core.model.loader import load_model

    metas = OrtRunner(load_model(model, load_external_data=False), model).input_metadata()
    choice = choose_shapes(metas, data.shapes, model, probe=probe)
    return choice, lambda: data.samples(metas, model, warn)


class ToleranceArgs:
    """When tensors count as equal: Polygraphy's ``simple`` comparator options (per tensor) plus ``--rel-mode``."""

    def __init__(self, title: str | None = None, *, default_text: str = "1e-5") -> None:
        self.title = title or "tolerances (Polygraphy 'simple' comparator rules)"
        self.default_text = default_text

    def add_parser_args(self, parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
        g = parser.add_argument_group(self.title)
        g.add_argument(
            "--atol", nargs="+", metavar="[NAME:]VAL", help=f"absolute tolerance (default {self.default_text})"
        )
        g.add_argument(
            "--rtol", nargs="+", metavar="[NAME:]VAL", help=f"relative tolerance (default {self.default_text})"
        )
        g.add_argument(
            "--check-error-stat",
            nargs="+",
            metavar="[NAME:]STAT",
            help="elemwise (default), max, mean, median or quantile",
        )
        g.add_argument("--error-quantile", nargs="+", metavar="[NAME:]Q", help="quantile for 'quantile' (default 0.99)")
        g.add_argument(
            "--infinities-compare-equal",
            action="store_true",
            default=None,
            help="equal ±inf at the same position count as equal (the default; opt in with --polygraphy-defaults)",
        )
        g.add_argument(
            "--int-atol",
            type=float,
            metavar="VAL",
            help="absolute tolerance of integer tensors narrower than 64 bits, i.e. quantized data and integer "
            "accumulators (default 1: one unit; 0 = exact; --atol NAME:VAL still wins for a named tensor)",
        )
        g.add_argument(
            "--polygraphy-defaults",
            action="store_true",
            help="Polygraphy's exact rules: matched ±inf fail (inf-inf = NaN), integers judged by --atol, "
            "ONNX Runtime with all graph optimizations",
        )
        add_choice(
            g,
            "--rel-mode",
            ("polygraphy", "robust"),
            "relative error: |s-r|/|r| as Polygraphy (default), or |s-r|/(|r|+atol) that behaves near zero",
        )
        g.add_argument(
            "--no-shape-check", action="store_true", help="compare tensors of equal size but different shape"
        )
        return g

    def parse(self, args: argparse.Namespace) -> ToleranceOptions:
        """The typed, validated :class:`~engine_core.options.ToleranceOptions`."""
        from engine_core.options import ToleranceOptions

        return ToleranceOptions(
            atol=args.atol or (),
            rtol=args.rtol or (),
            check_error_stat=args.check_error_stat or (),
            error_quantile=args.error_quantile or (),
            infinities_compare_equal=args.infinities_compare_equal,
            rel_mode=args.rel_mode,
            check_shapes=not args.no_shape_check,
            int_atol=args.int_atol,
            polygraphy_defaults=args.polygraphy_defaults,
        )


class CheckArgs:
    """What `polygraphy run` adds around the ``simple`` comparator: validation, Top-K, compare functions, metrics."""

    def add_parser_args(self, parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
        g = parser.add_argument_group("checks beyond tolerances (Polygraphy `run` comparison options)")
        g.add_argument(
            "--validate",
            action="store_true",
            help="check every run (reference and subject) for NaN/Inf; any found fails (exit 1), also without a subject",
        )
        g.add_argument(
            "--postprocess",
            nargs="+",
            metavar="[NAME:]top-K[,axis=A]",
            help="compare the indices of the K largest values (along the last axis, or A) instead of the values",
        )
        g.add_argument(
            "--compare-func",
            nargs="+",
            metavar="FUNC",
            help="simple (default), indices (with --postprocess top-K: classifiers, detectors), l2, "
            "cosine_similarity, snr (Polygraphy's default thresholds); several: all must pass",
        )
        g.add_argument(
            "--index-tolerance",
            nargs="+",
            metavar="[NAME:]N",
            help="indices: how many places a value may move; the last N entries are ignored (default 0)",
        )
        g.add_argument(
            "--check-metric",
            nargs="+",
            metavar="[NAME:]METRIC>=V",
            help="thresholds every tensor must also meet: cosine, snr (dB), l2 or a statistic (max_abs, mean_rel, "
            "…) with >=, <=, > or <, e.g. 'cosine>=0.999' 'snr>=30'",
        )
        g.add_argument(
            "--compare-func-script",
            metavar="PATH.py[:FUNC]",
            help="FUNC(subject, reference) (default compare_outputs) gets {name: array} dicts and returns "
            "{name: bool}; its verdicts replace the tolerances",
        )
        return g

    def parse(self, args: argparse.Namespace) -> ExtraChecks:
        """The validated :class:`~engine_core.comparator.checks.ExtraChecks`."""
        from engine_core.comparator.checks import ExtraChecks

        return ExtraChecks.from_specs(
            compare_funcs=args.compare_func,
            index_tolerance=args.index_tolerance,
            check_metric=args.check_metric,
            postprocess=args.postprocess,
            validate=args.validate,
            compare_func_script=args.compare_func_script,
        )


class CheckCommandArgs:
    """An external pass/fail command (``--check``) with its timeout and ``--fail-regex`` (bisect, reduce, debug build).

    ``argv=True``: ``--check`` takes the rest of the command line as the command's words (run without a shell),
    else one shell command string. ``help`` describes the command's contract for the command.
    """

    def __init__(self, title: str, help: str, *, argv: bool = False) -> None:
        self.title = title
        self.help = help
        self.argv = argv

    def add_parser_args(self, parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
        g = parser.add_argument_group(self.title)
        if self.argv:
            g.add_argument("--check", nargs=argparse.REMAINDER, metavar="CMD", help=self.help)
        else:
            g.add_argument("--check", metavar="CMD", help=self.help)
        g.add_argument(
            "--check-timeout",
            type=float,
            default=600.0,
            metavar="S",
            help="seconds before a hanging check is killed and counts as failed (default 600)",
        )
        g.add_argument(
            "--fail-regex",
            nargs="+",
            metavar="REGEX",
            help="a check run whose stdout or stderr matches any of these fails, whatever its exit code "
            "(Polygraphy's --fail-regex)" + (" (give it before --check)" if self.argv else ""),
        )
        return g

    def parse(self, args: argparse.Namespace) -> CheckCommand | None:
        """The validated :class:`~engine_core.check.CheckCommand` (program checked), or ``None`` without ``--check``."""
        from engine_core.check import check_command

        return check_command(args.check, args.check_timeout, args.fail_regex or ())


class PrecisionArgs:
    """The precision a model is rewritten to: ``--precision`` or a ``--plan`` from bisect, the INT8 calibration cache,
    and (``fallback=True``) what nodes that cannot be INT8 fall back to (convert, debug build)."""

    def __init__(self, precision_help: str, calibration_help: str, *, fallback: bool = False) -> None:
        self.precision_help = precision_help
        self.calibration_help = calibration_help
        self.fallback = fallback

    def add_parser_args(self, parser: argparse.ArgumentParser) -> None:
        prec = parser.add_mutually_exclusive_group()
        prec.add_argument("--precision", choices=("fp32", "fp16", "bf16", "int8"), help=self.precision_help)
        prec.add_argument("--plan", metavar="FILE", help="precision plan (JSON from `trtdbg bisect`)")
        if self.fallback:
            add_choice(
                parser,
                "--fallback",
                ("fp32", "fp16", "bf16"),
                "with --precision int8: precision of nodes that cannot be INT8 (default fp32)",
            )
        parser.add_argument("--calibration-cache", metavar="F", help=self.calibration_help)

    def parse(self, args: argparse.Namespace) -> Rewrite:
        """The :class:`~engine_core.precision.convert.Rewrite` asked for."""
        from engine_core.precision.convert import Rewrite

        fallback = args.fallback if self.fallback else "fp32"
        return Rewrite(args.precision, args.plan, fallback, args.calibration_cache)


def add_json_arg(
    p: argparse.ArgumentParser | argparse._ArgumentGroup,
    help: str = "print one JSON document",
    *,
    quiet: str | None = None,
) -> None:
    """``--json``: the command prints its result as JSON; with ``quiet`` (its help) also ``--quiet``."""
    p.add_argument("--json", action="store_true", help=help)
    if quiet:
        p.add_argument("--quiet", action="store_true", help=quiet)


def add_external_data_dir_arg(
    p: argparse.ArgumentParser | argparse._ArgumentGroup,
    help: str = "folder of MODEL's external data (default: beside MODEL)",
) -> None:
    """``--external-data-dir DIR``: where MODEL's external data files are."""
    p.add_argument("--external-data-dir", metavar="DIR", help=help)


def add_choice(
    p: argparse.ArgumentParser | argparse._ArgumentGroup, flag: str, choices: tuple[str, ...], help: str
) -> None:
    """An option taking one of ``choices``; the first is the default."""
    p.add_argument(flag, choices=choices, default=choices[0], help=help)


def add_trt_module_arg(p: argparse.ArgumentParser | argparse._ArgumentGroup, help: str) -> None:
    """``--trt-module auto|tensorrt|tensorrt_rtx`` (default auto)."""
    add_choice(p, "--trt-module", ("auto", "tensorrt", "tensorrt_rtx"), help)


def add_ort_opt_level_arg(
    p: argparse.ArgumentParser | argparse._ArgumentGroup, help: str, default: str | None = None
) -> None:
    """``--ort-opt-level disable|basic|extended|all``: ONNX Runtime's graph optimization level."""
    p.add_argument("--ort-opt-level", choices=("disable", "basic", "extended", "all"), default=default, help=help)


def add_workspace_arg(p: argparse.ArgumentParser) -> None:
    """``--workspace DIR`` (default ``.trtdbg/`` beside the model)."""
    p.add_argument("--workspace", metavar="DIR", help="workspace folder (default .trtdbg/ beside the model)")
