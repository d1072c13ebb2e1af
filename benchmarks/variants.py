"""`--variant NAME=FLAGS`: a named setting of a benchmark's contender, as the flags of the rapgpt command."""

from __future__ import annotations

import argparse


def parse_variant(text: str) -> tuple[str, str]:
    name, sep, flags = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"a variant is NAME=FLAGS, e.g. lr3e-3='--lr 3e-3'; got {text!r}")
    return name, flags
