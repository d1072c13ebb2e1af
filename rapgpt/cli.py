"""The `rapgpt` command: a thin skin over the typed functions of each stage.

Each subcommand is declared by one `_add_<name>` function that builds its parser and binds a handler; handlers
import their stage lazily so that `rapgpt --help` stays fast. A `RapgptError` becomes one line on stderr and
exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from rapgpt import __version__
from rapgpt.errors import RapgptError


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.ArgumentDefaultsHelpFormatter(prog, max_help_position=36, width=110)


def _command(sub, name: str, summary: str, description: str | None = None) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=summary, description=description or summary, formatter_class=_formatter)


def _add_train(sub) -> None:
    from rapgpt.options import add_flags
    from rapgpt.training.config import PretrainConfig

    p = _command(
        sub, "train", "Pretrain a GPT model on a prepared dataset.",
        "Pretrain a GPT model on a dataset written by `rapgpt prepare`. Settings come from the defaults, then a "
        "TOML file (--config), then the options below. Under `torchrun --nproc_per_node=N` the run is data "
        "parallel. A run killed at any moment continues with --resume from its last evaluation.",
    )
    p.add_argument("--data", required=True, help="dataset directory written by `rapgpt prepare`")
    p.add_argument("--out", required=True, help="run directory: weights, config.json, metrics, curves, state")
    p.add_argument("--config", metavar="FILE", help="TOML file of settings, named as the options below with _")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    add_flags(p, PretrainConfig)
    p.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> None:
    # OpenMP threads that spin while they wait stall each other on a machine shared with other work (a step can
    # take twice as long on 2 threads as on 1); sleeping costs little when the machine is idle. Set before torch
    # loads; an explicit OMP_WAIT_POLICY in the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from rapgpt.options import flags_given
    from rapgpt.train import pretrain, resolve_run_config
    from rapgpt.training.config import PretrainConfig

    flags = flags_given(args, PretrainConfig)
    config = resolve_run_config(PretrainConfig, args.out, args.resume, args.config, flags)
    pretrain(args.data, args.out, config, resume=args.resume)


# One entry per subcommand, in the order `rapgpt --help` lists them.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_train]


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
