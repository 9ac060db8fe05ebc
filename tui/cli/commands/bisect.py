"""``trtdbg bisect``: find the nodes that must stay in higher precision (FP16/BF16/INT8 plans at the ONNX level)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from tui.cli.args import (
    CheckCommandArgs,
    DataArgs,
    ToleranceArgs,
    add_choice,
    add_external_data_dir_arg,
    add_json_arg,
    add_workspace_arg,
)

DATA = DataArgs()
CHECK = CheckCommandArgs(
    "pass/fail check (default: compare the outputs with the FP32 model)",
    "shell command deciding pass (exit 0) or fail; {model}, {outputs}, {inputs}, {reference_outputs}, {plan}, "
    "{step} are replaced by the step's files (also TRTDBG_MODEL, TRTDBG_OUTPUTS, TRTDBG_INPUTS, "
    "TRTDBG_REFERENCE_OUTPUTS, TRTDBG_PLAN, TRTDBG_STEP in its environment)",
)
TOLERANCES = ToleranceArgs(
    "tolerances of the output comparison (Polygraphy 'simple' comparator rules)",
    default_text="2e-2 fp16, 1e-1 bf16/int8",
)

_CHOICES = {
    "precision": (("fp16", "bf16", "int8"), "target precision (default fp16)"),
    "fallback": (
        ("fp32", "fp16", "bf16"),
        "precision culprits fall back to (default fp32; INT8 with --fallback fp16 = TensorRT --int8 --fp16)",
    ),
    "subject": (
        ("ort", "ort-cuda"),
        "where plans run: ort (CPU, FP16/BF16 storage rounding emulated) or ort-cuda (real types)",
    ),
    "mode": (
        ("auto", "bisect", "linear"),
        "auto (default) bisects, and tries one node at a time where the culprits found so far are dense; bisect "
        "always halves the suspects; linear tries one node at a time like Polygraphy",
    ),
    "direction": (
        ("forward", "reverse"),
        "which end falls back first: the earlier nodes (forward, default) or the later ones",
    ),
}
"""The search's options with a fixed set of values (the first is the default) and their help."""


HELP = "find the nodes that must stay in higher precision (FP16/BF16/INT8 precision bisection)"
DESCRIPTION = """Rewrite MODEL in low precision at the ONNX level and search, by bisection, for the nodes that must fall back to a
higher precision for the outputs to pass (tolerances against the FP32 model, or --check). Reports node names and
saves a reusable plan. The state is saved after every step: --resume continues after a crash. Exit code 0 = the
final plan passes, 1 = it does not (or the search was left unfinished), 2 = usage or input error."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bisect", help=HELP, description=DESCRIPTION)
    p.add_argument("model", metavar="MODEL", help="ONNX model (FP32)")
    add_external_data_dir_arg(p)
    for name, (choices, help) in _CHOICES.items():
        add_choice(p, f"--{name}", choices, help)
    drive = p.add_mutually_exclusive_group()
    drive.add_argument("--auto", action="store_true", help="choose automatically (default)")
    drive.add_argument(
        "--interactive",
        action="store_true",
        help="ask at each step which half falls back (1/2), or let you judge (p/f); b = back, q = quit",
    )
    CHECK.add_parser_args(p)
    TOLERANCES.add_parser_args(p)
    DATA.add_parser_args(p)
    q = p.add_argument_group("INT8")
    q.add_argument(
        "--calibration-cache",
        metavar="F",
        help="TensorRT calibration cache to take INT8 scales from (default: calibrate on the input data)",
    )
    q.add_argument(
        "--write-calibration-cache",
        metavar="F",
        help="where to write the ranges as a TensorRT calibration cache (default: in the workspace)",
    )
    out = p.add_argument_group("output")
    out.add_argument("--resume", action="store_true", help="continue the bisection saved in the workspace")
    add_json_arg(
        out, "print one JSON document (culprits, evaluations, passed, plan, steps, ...)", quiet="no per-step lines"
    )
    add_workspace_arg(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from engine_core.precision.bisect import BisectOptions, BisectSession
    from tui.cli.progress import CliJob, line_printer

    show: Callable[[str], None] = (lambda _: None) if args.quiet else line_printer(args.json)
    job = CliJob(show=lambda record: show(_step_line(record)))
    data, tolerances, check = DATA.parse(args), TOLERANCES.parse(args), CHECK.parse(args)
    options = BisectOptions(
        model=args.model,
        precision=args.precision,
        fallback=args.fallback,
        subject=args.subject,
        mode=args.mode,
        direction=args.direction,
        check=args.check,
        check_timeout=args.check_timeout,
        fail_regex=check.fail_regex if check else (),
        tolerances=tolerances,
        data=data,
        calibration_cache=args.calibration_cache,
        write_calibration_cache=args.write_calibration_cache,
        workspace=args.workspace,
        external_data_dir=args.external_data_dir,
    )
    if args.resume:
        session = BisectSession.resume(
            args.model,
            args.workspace,
            events=job.events,
            data=data if data.given else None,
            tolerances=tolerances if tolerances.given else None,
            external_data_dir=args.external_data_dir,
        )
        ignored = options.ignored_by_resume(session.options)
        if ignored:
            job.events.warn(
                "--resume continues with the options the bisection started with; ignoring "
                + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in ignored.items())
            )
    else:
        session = BisectSession(options, events=job.events)
    try:
        with job:
            session.start()
            show(_header(session))
            for record in session.steps():
                show(_step_line(record) + "  (saved)")
            if args.interactive:
                _interactive(session, show)
            else:
                session.run()
        result = session.result()
    finally:
        session.close()
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        sys.stdout.write(_summary(result) + "\n")
    return 0 if result["passed"] else 1


def _header(session: Any) -> str:
    o = session.options
    cands = ", ".join(f"{k}: {v}" for k, v in session.result()["candidates"].items())
    how = "emulated storage rounding on CPU" if session.evaluator.emulated else "real types on CUDA"
    check = f"--check {o.check}" if o.check else f"compare outputs ({_tol(session)})"
    return (
        f"bisect {o.model}: {o.precision} (fallback {o.fallback}), {o.mode} {o.direction}, {how}\n"
        f"  candidates {cands}; {len(session.demoted)} automatic demotion(s); check: {check}\n"
        f"  data: {session.data_text}; state: {session.workspace.path('bisect', 'state.json')}"
    )


def _tol(session: Any) -> str:
    s = session.evaluator.settings.describe()
    return f"atol {s['atol']:g}, rtol {s['rtol']:g}, {s['check_error_stat']}"


def _names(names: list[str], limit: int = 3) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:2])}, ... {names[-1]}"


def _step_line(rec: dict[str, Any]) -> str:
    """One line per step (node names escaped: a name cannot start a new line)."""
    from engine_core.precision.evaluate import Evaluation
    from engine_core.safetext import printable

    ev = Evaluation.from_json(rec["evaluation"])
    kind = rec["kind"]
    if kind == "split":
        what = f"split {rec['suspects']}: {len(rec['fallback'])} fall back ({_names(rec['fallback'])})"
    elif kind == "all-low":
        what = f"all {rec['phase'].split('->')[0]} ({rec['high']} kept)"
    elif kind == "verify":
        what = f"verify {rec['high']} kept"
    else:
        what = "baseline"
    cached = " [cached]" if rec["cached"] else ""
    return printable(f"step {rec['index']:>3}  {rec['phase']:<10} {what}: {ev.summary()}{cached} -> {rec['outcome']}")


def _interactive(session: Any, show: Callable[[str], None]) -> None:
    """Ask at each split which half falls back; automatic steps run without asking."""
    while (prop := session.proposal()) is not None:
        if prop.halves is None:
            show(_step_line(session.render_step(session.step(0))))
            continue
        halves = [session.search.names(h) for h in prop.halves]
        print(
            f"\nstep {len(session.history) + 1}: {len(session.search.region)} suspects, "
            f"{len(prop.high)} already at {session.search.current.fallback}",
            file=sys.stderr,
        )
        for k, names in enumerate(halves, start=1):
            print(f"  [{k}] {len(names):>5} node(s): {_names(names, 6)}", file=sys.stderr)
        print(
            f"  model with [1] falling back (to judge it yourself): {session.write_candidate(prop, 0)}", file=sys.stderr
        )
        try:
            print(
                "which half falls back? [1]/2, p/f = judge [1] yourself, b = back, q = quit: ",
                end="",
                file=sys.stderr,
                flush=True,
            )
            answer = input().strip().lower()  # the prompt goes to stderr: stdout stays clean for --json
        except EOFError:
            answer = "q"
        if answer in ("q", "quit"):
            print(
                f"stopped; continue with: trtdbg bisect {session.options.model} --resume --interactive", file=sys.stderr
            )
            return
        if answer in ("b", "back"):
            undone = session.back()
            print(f"went back {len(undone)} step(s)" if undone else "nothing to go back to", file=sys.stderr)
            continue
        if answer in ("", "1", "2"):
            rec = session.step(int(answer or 1) - 1)
        elif answer in ("p", "f", "pass", "fail"):
            rec = session.step(0, verdict=answer.startswith("p"))
        else:
            print(f"'{answer}' is not one of 1, 2, p, f, b, q", file=sys.stderr)
            continue
        show(_step_line(session.render_step(rec)))


def _summary(result: dict[str, Any]) -> str:
    lines = []
    prec = result["culprit_precisions"]
    if result["culprits"]:
        lines.append(f"culprits ({len(prec)}) kept in higher precision:")
        width = max(len(n) for n in prec)
        lines += [f"  {n:<{width}}  {p}" for n, p in prec.items()]
    else:
        lines.append("no culprits: every candidate runs in the target precision")
    if result["demoted"]:
        lines.append(f"automatic demotions ({len(result['demoted'])}):")
        lines += [f"  {n}: {why}" for n, why in list(result["demoted"].items())[:20]]
        if len(result["demoted"]) > 20:
            lines.append(f"  ... {len(result['demoted']) - 20} more in the plan file")
    if result.get("precision_coverage"):
        from engine_core.precision.coverage import Coverage

        lines.append(Coverage(**result["precision_coverage"]).text())
    if result["plan"]:
        lines.append(f"plan: {result['plan']}")
    if result["layer_precisions"]:
        lines.append(f"TensorRT <= 10 (weak typing): {result['layer_precisions']}")
    if result["calibration_cache"]:
        lines.append(f"calibration cache (TensorRT format): {result['calibration_cache']}")
    if result["problem"]:
        lines.append(f"problem: {result['problem']}")
    verdict = (
        "final plan passes"
        if result["passed"]
        else ("final plan FAILS" if result["finished"] else "unfinished (continue with --resume)")
    )
    lines.append(f"{result['evaluations']} evaluation(s); {verdict}")
    return "\n".join(lines)
