"""The `rapgpt` command: a thin skin over the typed functions of each stage.

Each subcommand is declared by one `_add_<name>` function that builds its parser and binds a handler; handlers
import their stage lazily so that `rapgpt --help` stays fast. A `RapgptError` becomes one line on stderr and
exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rapgpt import __version__
from rapgpt.errors import RapgptError


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.ArgumentDefaultsHelpFormatter(prog, max_help_position=36, width=110)


def _command(sub, name: str, summary: str, description: str | None = None) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=summary, description=description or summary, formatter_class=_formatter)


def _add_generate(sub) -> None:
    from rapgpt.generate.params import SamplingParams  # torch-free: the defaults shown below are the real ones

    d = SamplingParams()
    p = _command(
        sub,
        "generate",
        "Write lyrics with a trained model, streamed to the terminal.",
        "Continue a prompt with a trained model. The lyrics alone go to stdout (the prompt, then the continuation, "
        "as it is written); model size, notices and speed go to stderr. Several samples are separated by a line "
        "<|endoftext|>.",
    )
    p.add_argument("--model", required=True, type=Path, metavar="RUN", help="run directory of a trained model")
    p.add_argument("--prompt", default="", type=_unescape, metavar="TEXT",
                   help="the start of the lyrics (\\n is a line break); empty starts a song from scratch")
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens, metavar="N",
                   help="token budget of the continuation")
    p.add_argument("--temperature", type=float, default=d.temperature, metavar="T",
                   help="randomness: 0 always takes the most likely token, higher is wilder")
    p.add_argument("--top-k", type=int, default=d.top_k, metavar="K", help="sample among the K most likely tokens")
    p.add_argument("--top-p", type=float, default=d.top_p, metavar="P",
                   help="sample among the most likely tokens holding probability P, in (0, 1]")
    p.add_argument("--min-p", type=float, default=d.min_p, metavar="P",
                   help="drop tokens less than P times as likely as the most likely one")
    p.add_argument("--repetition-penalty", type=float, default=d.repetition_penalty, metavar="X",
                   help="> 1 discourages tokens already in the prompt or the continuation")
    p.add_argument("--frequency-penalty", type=float, default=d.frequency_penalty, metavar="X",
                   help="in [-2, 2]: lowers a token's logit by X per earlier use in the continuation")
    p.add_argument("--presence-penalty", type=float, default=d.presence_penalty, metavar="X",
                   help="in [-2, 2]: lowers a token's logit by X once it was used in the continuation")
    p.add_argument("--stop", nargs="+", type=_unescape, default=list(d.stop), metavar="S",
                   help="end the continuation before the first of these strings (\\n is a line break)")
    p.add_argument("--seed", type=int, default=d.seed, metavar="S",
                   help="make the output reproducible (sample i uses S + i); random when omitted")
    p.add_argument("--num-samples", type=int, default=1, metavar="N", help="how many continuations to write")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="precision of the weights and activations (bf16 halves memory and is faster on most CPUs)")
    p.add_argument("--quantize", choices=("int8",), default=None,
                   help="int8 weights with per-channel scales (a quarter of fp32's memory, activations in --precision)")
    p.add_argument("--cache-info", action="store_true", help="print the KV cache's size and its formula to stderr")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads (default: all cores); on a machine busy with other work, 1 is often faster")
    p.set_defaults(handler=_generate)


def _unescape(text: str) -> str:
    r"""Read \n, \t and \\ typed on a command line as a line break, a tab and a backslash."""
    return re.sub(r"\\([nt\\])", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}[m.group(1)], text)


def _generate(args: argparse.Namespace) -> None:
    from rapgpt.generate.command import generate_command
    from rapgpt.generate.params import SamplingParams

    params = SamplingParams(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
        min_p=args.min_p, repetition_penalty=args.repetition_penalty, frequency_penalty=args.frequency_penalty,
        presence_penalty=args.presence_penalty, stop=tuple(args.stop), seed=args.seed,
    )
    generate_command(args.model, args.prompt, params, args.num_samples, args.precision, args.quantize,
                     args.cache_info, args.threads)


# One entry per subcommand, in the order `rapgpt --help` lists them.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_generate]


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
