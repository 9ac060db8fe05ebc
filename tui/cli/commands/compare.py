"""`trtdbg compare` (being written)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="(compare: being written)")
    p.set_defaults(run=None)
