"""``trtdbg reduce``: shrink a failing model to a minimal sub-graph that still fails on every sample's data."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tui.cli.args import (
    CheckCommandArgs,
    DataArgs,
    ToleranceArgs,
    add_choice,
    add_external_data_dir_arg,
    add_json_arg,
    add_ort_opt_level_arg,
    add_workspace_arg,
)

DATA = DataArgs()
CHECK = CheckCommandArgs(
    "or: a check command (its run timed out or matching --fail-regex also means 'still fails')",
    "(must come last) a command that exits non-zero while the model still fails; {model} and {inputs} are "
    "replaced by the candidate and its inputs (Polygraphy JSON), also TRTDBG_MODEL and TRTDBG_INPUTS",
    argv=True,
)
TOLERANCES = ToleranceArgs("tolerances for --subject/--subject-model (Polygraphy 'simple' comparator rules)")


HELP = "shrink a failing model to a minimal failing sub-graph (judged over every input sample)"
DESCRIPTION = """Delta debugging over outputs, then inputs (as Polygraphy's debug reduce). Other branches are frozen from the data:
constants when equal in every sample, else extra inputs fed per sample. A candidate still fails when the compare of
ort (FP32) against --subject / --subject-model fails on any sample, or when --check CMD exits non-zero. Writes OUT,
OUT's inputs (.inputs.json) and a report (.reduce.json). With --subject-model the same cut of M2 is written to OUT's
.subject.onnx. Exit code 0 = reduced model written, 1 = the model does not fail, 2 = usage or input error."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reduce", help=HELP, description=DESCRIPTION)
    p.add_argument("model", metavar="MODEL", help="ONNX model (read only)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="where to write the minimal failing model")
    add_choice(
        p,
        "--mode",
        ("bisect", "linear"),
        "bisect (default; assumes one contiguous failing region) or linear (one node at a time)",
    )
    p.add_argument("--no-reduce-outputs", action="store_true", help="skip the outputs phase")
    p.add_argument("--no-reduce-inputs", action="store_true", help="skip the inputs phase")
    judge = p.add_argument_group("what 'fails' means (one of)")
    judge.add_argument("--subject", metavar="SPEC", help="compare ort against this backend spec (e.g. ort-cuda)")
    judge.add_argument(
        "--subject-model",
        metavar="M2",
        help="compare against the same cut of a second model with the same tensor names (e.g. FP16 copy)",
    )
    judge.add_argument("--subject-backend", metavar="SPEC", default="ort", help="backend that runs --subject-model")
    CHECK.add_parser_args(p)
    TOLERANCES.add_parser_args(p)
    add_ort_opt_level_arg(p, "ONNX Runtime graph optimization level of both sides (default: as compare picks it)")
    DATA.add_parser_args(p)
    p.add_argument(
        "--artifact", metavar="PATH", help="where --check candidates are written (default: in the workspace)"
    )
    add_external_data_dir_arg(p)
    add_json_arg(p, "print the report as JSON", quiet="do not print each judged candidate")
    add_workspace_arg(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from engine_core.backend.ort import OrtRunner
    from engine_core.data.store import save_inputs
    from engine_core.errors import TrtdbgError
    from engine_core.model.loader import check_external_data, load_model
    from engine_core.model.save import check_output_path, save_model
    from engine_core.model.weights import estimate_memory, require_memory, weights_bytes
    from engine_core.safetext import printable
    from engine_core.surgeon.reduce import CommandJudge, CompareJudge, Judge, Reducer, ReduceStep, check_reducible
    from engine_core.workspace import Workspace, atomic_write_json
    from tui.cli.progress import CliJob

    data = DATA.parse(args)
    tolerances = TOLERANCES.parse(args)
    chosen = [
        flag
        for flag, given in (
            ("--subject", args.subject),
            ("--subject-model", args.subject_model),
            ("--check", args.check is not None),
        )
        if given
    ]
    if len(chosen) != 1:
        raise TrtdbgError(
            f"reduce: give exactly one of --subject SPEC, --subject-model M2 or --check CMD "
            f"(got {', '.join(chosen) or 'none'})"
        )
    check = CHECK.parse(args)
    out = Path(args.output)
    inputs_out = out.with_name(out.stem + ".inputs.json")
    report_out = out.with_name(out.stem + ".reduce.json")
    subject_out = out.with_name(out.stem + ".subject.onnx")
    protect = [args.model] + ([args.subject_model] if args.subject_model else [])
    for path in (out, inputs_out, report_out, subject_out):
        check_output_path(path, protect, external_data=False)
    model = load_model(args.model, load_external_data=False, external_data_dir=args.external_data_dir)
    check_external_data(model, args.model, args.external_data_dir)
    check_reducible(model, args.model)
    subject_model = None
    if args.subject_model:
        subject_model = load_model(args.subject_model, load_external_data=False)
        check_external_data(subject_model, args.subject_model)
    low = [args.subject.partition(":")[2]] if args.subject else []
    other = weights_bytes(subject_model) if subject_model is not None else 0
    require_memory(f"reduce of {args.model}", estimate_memory(model, low, extra=other))
    workspace = Workspace.for_model(args.model, args.workspace)
    workspace.check_writable()
    workdir = workspace.path("reduce")
    judge: Judge
    if check is not None:
        judge = CommandJudge(check, args.artifact or workdir / "candidate.onnx")
    else:
        judge = CompareJudge(
            workdir,
            tolerances,
            subject=args.subject,
            subject_model=subject_model,
            subject_model_path=args.subject_model,
            subject_backend=args.subject_backend,
            opt_level=args.ort_opt_level,
        )
    with OrtRunner(model, args.model, opt_level="disable") as runner:
        metas = runner.input_metadata()

    def show(step: ReduceStep) -> None:
        verdict = "fails" if step.fails else "passes"
        node = printable(step.node)  # one line per step, whatever the node is called
        print(f"[{step.phase}] {step.index + 1}/{step.total} {node}: {step.nodes} node(s) {verdict}", file=sys.stderr)

    with CliJob(quiet=args.quiet, show=None if args.quiet else show) as events:
        source = data.source(metas, model=args.model)
        feeds = list(source)
        for w in source.warnings:
            events.warn(w)
        reducer = Reducer(model, args.model, feeds, judge, events=events, data_dir=args.external_data_dir)
        result = reducer.run(
            args.mode, reduce_outputs=not args.no_reduce_outputs, reduce_inputs=not args.no_reduce_inputs
        )
    doc = result.to_json()
    doc["data"] = source.describe()
    # runners find external data beside the path they are given: name the model as if it sat in --external-data-dir
    beside_data = Path(args.external_data_dir) / Path(args.model).name if args.external_data_dir else args.model
    coverage = _subject_coverage(args.subject, model, str(beside_data))
    doc["precision_coverage"] = coverage.to_json() if coverage else None
    if result.candidate is not None:
        written = save_model(result.candidate.model, out, protect=protect, base=result.candidate.data_dir)
        if isinstance(judge, CompareJudge) and judge.subject_model is not None:
            subject = judge.subject_candidate(result.candidate)
            written += save_model(subject, subject_out, protect=protect, base=judge.subject_dir)
        save_inputs(inputs_out, result.candidate.feeds)
        written.append(inputs_out)
        doc["written"] = [str(p) for p in written]
    atomic_write_json(report_out, doc)
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        sys.stdout.write(result.to_text() + "\n")
        if coverage:
            sys.stdout.write(f"subject on the whole model: {coverage.text()}\n")
        if result.candidate is not None:
            sys.stdout.write(f"wrote {', '.join(doc['written'])} and {report_out}\n")
    return 0 if result.candidate is not None else 1


def _subject_coverage(subject: str | None, model: Any, path: str) -> Any:
    """The precision subject's coverage on the whole model (``None`` for other judges)."""
    from engine_core.precision.runner import is_precision_spec
    from engine_core.runners import make_runner

    if not subject or not is_precision_spec(subject.strip().lower()):
        return None
    return getattr(make_runner(subject, model, path), "coverage", None)
