"""`trtdbg inspect` (being written)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="(inspect: being written)")
    p.set_defaults(run=None)
