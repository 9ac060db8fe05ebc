"""Argument groups shared by several commands (data sources, workspace)."""

from __future__ import annotations

import argparse


def add_data_args(p: argparse.ArgumentParser) -> None:
    """Input data options: random (seed, ranges, shapes), a data-loader script, or saved inputs."""
    g = p.add_argument_group("input data (default: random, seed 1, values in [0,1])")
    g.add_argument("--seed", type=int, default=1, help="random seed; iteration i uses seed+i (default 1)")
    g.add_argument("--val-range", nargs="+", metavar="[NAME:][LO,HI]", help="value range per input (default [0,1])")
    g.add_argument(
        "--shapes",
        nargs="+",
        metavar="NAME:1x3x640x640",
        help="shapes for dynamic inputs (also NAME:[1,3,640,640]); default: model hints, else batch 1, "
        "spatial 224, sequence 128",
    )
    g.add_argument("--iterations", type=int, default=1, metavar="N", help="number of random samples (default 1)")
    src = g.add_mutually_exclusive_group()
    src.add_argument(
        "--data-loader-script",
        metavar="PATH.py[:FUNC]",
        help="a script whose FUNC (default load_data) yields feed dicts",
    )
    src.add_argument("--load-inputs", nargs="+", metavar="F", help="saved inputs (.json, directory, .npz)")


def add_workspace_arg(p: argparse.ArgumentParser) -> None:
    """``--workspace DIR`` (default ``.trtdbg/`` beside the model)."""
    p.add_argument("--workspace", metavar="DIR", help="workspace folder (default .trtdbg/ beside the model)")
