"""Subcommand modules. Each has ``add_parser(subparsers)`` and sets ``run`` via defaults.

Modules here import only argparse-level code at import time; engine_core is imported inside
the ``run`` functions.
"""

from tui.cli.commands import (
    bench,
    bisect,
    check,
    compare,
    convert,
    debug,
    demo,
    diff,
    inspect,
    open,
    reduce,
    surgeon,
    template,
)

COMMANDS = (open, inspect, compare, demo, surgeon, reduce, check, bisect, bench, convert, template, debug, diff)
