"""``trtdbg reduce``: shrink a failing model to a minimal sub-graph that still fails on every sample's data."""

from __future__ import annotations

import argparse
import json
import sys

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
    from engine_core.safetext import printable
    from engine_core.surgeon.reduce import ReduceStep
    from engine_core.surgeon.reduce_job import ReduceRequest, run_reduce
    from tui.cli.progress import CliJob

    request = ReduceRequest(
        model=args.model,
        output=args.output,
        mode=args.mode,
        reduce_outputs=not args.no_reduce_outputs,
        reduce_inputs=not args.no_reduce_inputs,
        data=DATA.parse(args),
        subject=args.subject,
        subject_model=args.subject_model,
        subject_backend=args.subject_backend,
        tolerances=TOLERANCES.parse(args),
        check=args.check,
        check_timeout=args.check_timeout,
        fail_regex=tuple(args.fail_regex or ()),
        ort_opt_level=args.ort_opt_level,
        artifact=args.artifact,
        external_data_dir=args.external_data_dir,
        workspace=args.workspace,
    )

    def show(step: ReduceStep) -> None:
        verdict = "fails" if step.fails else "passes"
        node = printable(step.node)  # one line per step, whatever the node is called
        print(f"[{step.phase}] {step.index + 1}/{step.total} {node}: {step.nodes} node(s) {verdict}", file=sys.stderr)

    with CliJob(quiet=args.quiet, show=None if args.quiet else show) as events:
        done = run_reduce(request, events)
    result, doc = done.result, done.report
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        sys.stdout.write(result.to_text() + "\n")
        if done.coverage:
            sys.stdout.write(f"subject on the whole model: {done.coverage.text()}\n")
        if result.candidate is not None:
            sys.stdout.write(f"wrote {', '.join(doc['written'])} and {done.report_path}\n")
    return 0 if result.candidate is not None else 1
