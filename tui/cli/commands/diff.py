"""``trtdbg diff A B``: which layers changed tactic, precision or format between two tactic replays, engines or
debug-build folders (the successor of Polygraphy's ``diff-tactics``)."""

from __future__ import annotations

import argparse
import sys

from tui.cli.args import add_json_arg, add_trt_module_arg

HELP = "layers whose tactic/precision/format differ between two replays, engines or good/bad folders"
DESCRIPTION = """Compare A and B: TensorRT 10 tactic replays (Polygraphy JSON), engines (.plan, or engine-inspector JSON),
debug-build iteration JSON or timing caches where TensorRT exposes them. A folder stands for every file in it (e.g.
`trtdbg diff RUN/good RUN/bad`): a value is reported when B has it and no file of A does. Exit 0 = no difference, 1
= differences."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``trtdbg diff``."""
    p = sub.add_parser("diff", help=HELP, description=DESCRIPTION)
    p.add_argument("a", metavar="A", help="file or folder (the good side)")
    p.add_argument("b", metavar="B", help="file or folder (the bad side)")
    add_trt_module_arg(p, "TensorRT module for engines and timing caches (default auto)")
    add_json_arg(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Read both sides and print the differences."""
    from engine_core.backend.trt.tactics import diff_tables, read_side, selector_note

    a, b = read_side(args.a, args.trt_module), read_side(args.b, args.trt_module)
    diffs = diff_tables(a, b)
    notes = list(dict.fromkeys(n for t in (*a, *b) for n in t.notes if not n.startswith("verdict:")))
    if any(t.kind == "tactic replay" for t in (*a, *b)):
        note = selector_note(args.trt_module)
        if note and note not in notes:
            notes.append(note)
    if args.json:
        import json

        doc = {"a": [t.source for t in a], "b": [t.source for t in b], "differences": diffs, "notes": notes}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        head = (
            f"[I] A: {len(a)} file(s), {sum(len(t.layers) for t in a)} layer entries; "
            f"B: {len(b)} file(s), {sum(len(t.layers) for t in b)} layer entries"
        )
        lines = [head]
        lines += [f"    {d['text']}" for d in diffs] or ["[I] No layer differs"]
        lines += [f"[I] {n}" for n in notes]
        sys.stdout.write("\n".join(lines) + "\n")
    return 1 if diffs else 0
