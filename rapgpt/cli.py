"""The `rapgpt` command: a thin skin over the typed functions of each stage.

Each subcommand is declared by one `_add_<name>` function that builds its parser and binds a handler; handlers
import their stage lazily so that `rapgpt --help` stays fast. A `RapgptError` becomes one line on stderr and
exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from rapgpt import __version__
from rapgpt.errors import RapgptError

def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.ArgumentDefaultsHelpFormatter(prog, max_help_position=36, width=110)


def _command(sub, name: str, summary: str, description: str | None = None) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=summary, description=description or summary, formatter_class=_formatter)


# One entry per subcommand, in the order `rapgpt --help` lists them.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rapgpt",
        description="Train lyric-writing GPT models on a CPU: prepare data, pretrain, fine-tune, generate, serve.",
        formatter_class=_formatter,
    )
    parser.add_argument("--version", action="version", version=f"rapgpt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except RapgptError as e:
        print(f"rapgpt {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rapgpt {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
