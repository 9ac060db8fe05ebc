"""``trtdbg`` command line: argparse front end that dispatches to subcommand modules.

Only argparse-level code runs at import time so that ``trtdbg --help`` answers fast
without importing onnx, onnxruntime or Textual; each command imports engine_core lazily.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tui.cli.commands import COMMANDS


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (cheap: no heavy imports)."""
    parser = argparse.ArgumentParser(prog="trtdbg", description="Interactive debugger for ONNX / TensorRT numerics.")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def _model_shortcut(args: list[str]) -> list[str]:
    """``trtdbg MODEL.onnx ...`` means ``trtdbg open MODEL.onnx ...`` (first positional: a .onnx path or a file)."""
    import os

    names = {m.__name__.rsplit(".", 1)[-1] for m in COMMANDS}
    for k, a in enumerate(args):
        if a.startswith("-"):
            if a in ("-h", "--help"):
                return args
            continue
        if a not in names and (a.lower().endswith(".onnx") or os.path.isfile(a)):
            return args[:k] + ["open"] + args[k:]
        return args
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the command, map user errors to exit code 2."""
    args_list = _model_shortcut(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(args_list)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("trtdbg: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from engine_core.errors import TrtdbgError

        if args.debug:
            raise
        if isinstance(exc, TrtdbgError):
            print(f"trtdbg: error: {exc}", file=sys.stderr)
            return exc.exit_code
        print(
            f"trtdbg: internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)", file=sys.stderr
        )
        return 3


if __name__ == "__main__":
    sys.exit(main())
