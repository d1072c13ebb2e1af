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


def _add_collect(sub) -> None:
    p = _command(sub, "collect", "collect lyrics from Genius into one Lyrics_<Artist>.json file per artist",
                 "Collect song lyrics from Genius into OUT/Lyrics_<Artist>.json (the lyricsgenius format that "
                 "`rapgpt prepare` reads). Running it again resumes: songs already saved are kept and skipped.")
    p.add_argument("--artist", action="append", required=True, metavar="NAME",
                   help="artist name as spelt on genius.com; repeat for several artists")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the Lyrics_<Artist>.json files")
    p.add_argument("--max-songs", type=int, default=None, metavar="N",
                   help="at most N songs per artist, counting songs saved by earlier runs; omitted: all")
    p.add_argument("--token", default=None,
                   help="Genius API client access token; omitted: $GENIUS_ACCESS_TOKEN (get one at "
                        "https://genius.com/api-clients)")
    p.add_argument("--sort", choices=("popularity", "title"), default="popularity", help="order to collect songs in")
    p.add_argument("--include-features", action="store_true",
                   help="also collect songs where the artist is featured but not the primary artist")
    p.add_argument("--save-every", type=int, default=20, metavar="N",
                   help="rewrite an artist's file after every N new songs (and always when the run ends)")
    p.add_argument("--min-interval", type=float, default=0.5, metavar="SECONDS",
                   help="least time between two requests to Genius")
    p.add_argument("--retries", type=int, default=5,
                   help="retries of a request on timeouts, connection errors, 429 and 5xx, with exponential backoff")
    p.add_argument("--api-root", default="https://api.genius.com",
                   help="Genius API base URL (change only for a mirror or a test server)")
    p.add_argument("--web-root", default="https://genius.com",
                   help="Genius web site base URL, for the lyrics pages (change only for a mirror or a test server)")
    p.set_defaults(handler=_run_collect)


def _run_collect(args: argparse.Namespace) -> None:
    from rapgpt.data.collect import RequestPolicy, collect, format_summary

    policy = RequestPolicy(min_interval=args.min_interval, retries=args.retries)
    summaries = collect(args.artist, args.out, args.max_songs, args.token, include_features=args.include_features,
                        sort=args.sort, save_every=args.save_every, policy=policy, api_root=args.api_root,
                        web_root=args.web_root)
    print(format_summary(summaries))



def _add_import_hf(sub) -> None:
    p = _command(
        sub, "import-hf", "Turn a local Hugging Face GPT-2 checkpoint into a rapgpt run.",
        "Convert a Hugging Face GPT-2 checkpoint directory on disk (config.json with model.safetensors, its shards, "
        "or pytorch_model.bin) into a rapgpt run directory that uses GPT-2's BPE tokenizer. Nothing is downloaded.",
    )
    p.add_argument("hf_dir", metavar="DIR", help="the Hugging Face checkpoint directory")
    p.add_argument("--out", required=True, metavar="RUN", help="the run directory to create")
    p.add_argument("--force", action="store_true", help="replace RUN if it exists")

    def handler(args: argparse.Namespace) -> None:
        from rapgpt.interop.hf_import import import_hf

        print(f"imported {args.hf_dir} -> {import_hf(args.hf_dir, args.out, force=args.force)}")

    p.set_defaults(handler=handler)


def _add_export(sub) -> None:
    from rapgpt.interop import EXPORT_FORMATS

    p = _command(
        sub, "export", "Export a run for other tools (Hugging Face transformers).",
        "Write a run in a format other tools load. hf: a directory that transformers' "
        "AutoModelForCausalLM.from_pretrained and AutoTokenizer.from_pretrained load offline, with a model card: "
        "the GPT-2 checkpoint format that vLLM, TGI and llama.cpp's converter read.",
    )
    p.add_argument("run", metavar="RUN", help="the run directory to export")
    p.add_argument("--format", default="hf", choices=EXPORT_FORMATS, help="the format to write")
    p.add_argument("--out", required=True, metavar="DIR", help="the directory to create")
    p.add_argument("--force", action="store_true", help="replace DIR if it exists")

    def handler(args: argparse.Namespace) -> None:
        from rapgpt.interop import export

        print(f"exported {args.run} -> {export(args.run, args.out, args.format, force=args.force)} ({args.format})")

    p.set_defaults(handler=handler)


# One entry per subcommand, in the order `rapgpt --help` lists them.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_collect, _add_import_hf, _add_export]


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
