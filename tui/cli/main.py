"""``trtdbg`` command line: argparse front end that dispatches to subcommand modules.

Only argparse-level code runs at import time so that ``trtdbg --help`` answers fast
without importing onnx, onnxruntime or Textual; each command imports engine_core lazily.

Untrusted text (names from model and data files, paths, loader output) reaches the terminal only
through :func:`engine_core.safetext.printable`: the one error line is escaped whole, and in text mode
stdout and stderr escape every control character except the line breaks trtdbg writes itself.
``--json`` output keeps the raw strings (JSON escapes control characters itself).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from tui.cli.commands import COMMANDS


class OneLineParser(argparse.ArgumentParser):
    """argparse with a one-line usage error (``trtdbg compare: error: …; see trtdbg compare --help``), exit 2."""

    _words: list[str] = []

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self._words = [str(w) for w in (sys.argv[1:] if args is None else args)]
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> Any:
        from engine_core.safetext import printable

        self.exit(
            2,
            f"{self.prog}: error: {printable(message)}{_swallowed_by_check(self._words, message)}; "
            f"see {self.prog} --help\n",
        )


def _swallowed_by_check(words: list[str], message: str) -> str:
    """Why a required option is "missing" when ``--check`` (which takes the rest of the line) swallowed it."""
    if "required" not in message or "--check" not in words:
        return ""
    wanted = {s for part in message.rsplit(":", 1)[-1].split(",") for s in part.strip().split("/")}
    swallowed = [w for w in words[words.index("--check") + 1 :] if w.split("=", 1)[0] in wanted]
    if not swallowed:
        return ""
    return (
        f" ({swallowed[0]} came after --check, which takes the rest of the line as its command: give it before --check)"
    )


class PrintableStream:
    """A text stream that escapes control characters written to it, except the layout ones in ``keep``."""

    def __init__(self, stream: TextIO, keep: str) -> None:
        from engine_core.safetext import UNSAFE, printable

        self._stream = stream
        self._unsafe = UNSAFE
        self._escape = lambda m: m.group() if m.group() in keep else printable(m.group())

    def write(self, text: str) -> int:
        if self._unsafe.search(text):
            text = self._unsafe.sub(self._escape, text)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (cheap: no heavy imports)."""
    parser = OneLineParser(prog="trtdbg", description="Interactive debugger for ONNX / TensorRT numerics.")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    parser.add_argument(
        "--version", action="store_true", help="print the versions of trtdbg, onnx, onnxruntime and TensorRT found"
    )
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
    stdout, stderr = sys.stdout, sys.stderr
    try:
        args_list = _model_shortcut(list(sys.argv[1:] if argv is None else argv))
        parser = build_parser()
        try:
            args = parser.parse_args(args_list)
        except SystemExit as exc:  # --help, or a usage error already printed in one line
            return exc.code if isinstance(exc.code, int) else 2
        if args.version:
            from engine_core.sysinfo import component_versions

            for name, version in component_versions().items():
                if version is not None or name in ("onnx", "onnxruntime"):
                    print(f"{name} {version or 'not installed'}")
            return 0
        if not getattr(args, "run", None):
            parser.print_help()
            return 2
        sys.stderr = PrintableStream(stderr, keep="\n\r\t")
        if not getattr(args, "json", False):
            sys.stdout = PrintableStream(stdout, keep="\n\t")
        return _run(args)
    except BrokenPipeError:
        # the reader went away (``trtdbg inspect M | head``): stop quietly, like any Unix filter
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
        return 141
    finally:
        sys.stdout, sys.stderr = stdout, stderr


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("trtdbg: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise
    except Exception as exc:
        from engine_core.errors import TrtdbgError
        from engine_core.safetext import printable

        if args.debug:
            raise
        if isinstance(exc, TrtdbgError):
            print(f"trtdbg: error: {printable(exc)}", file=sys.stderr)
            return exc.exit_code
        print(
            f"trtdbg: internal error: {type(exc).__name__}: {printable(exc)} (rerun with --debug for a traceback)",
            file=sys.stderr,
        )
        return 3


if __name__ == "__main__":
    sys.exit(main())
