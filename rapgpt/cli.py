"""The `rapgpt` command: a table of subcommands, each a thin skin over the typed function of one stage.

A `Command` names its settings types (frozen dataclasses whose fields become its flags, see `rapgpt.options`),
its other arguments (what to read and write), and the function that runs it with the settings built from the
flags. Functions import their stage lazily so that `rapgpt --help` stays fast. A `RapgptError` becomes one line
on stderr and exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rapgpt import __version__
from rapgpt.data.clean import CleanOptions
from rapgpt.data.collect_config import CollectConfig
from rapgpt.data.config import PrepareConfig
from rapgpt.errors import ConfigError, RapgptError
from rapgpt.evaluate.config import EvalConfig
from rapgpt.generate.params import GenerateConfig, SamplingParams, WritingParams, unescape
from rapgpt.interop import EXPORT_FORMATS, GGUFConfig
from rapgpt.options import add_flags, flags_given, from_args
from rapgpt.quickstart import QuickstartConfig
from rapgpt.serve.config import ServeConfig
from rapgpt.training.config import FinetuneConfig, PretrainConfig

Arg = tuple[tuple[str, ...], dict[str, Any]]


def arg(*names: str, **kwargs: Any) -> Arg:
    """An argument that is not a setting: what a command reads and writes (argparse's add_argument's terms)."""
    return names, kwargs


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    description: str | None
    run: Callable[..., None]  # called with the namespace and one instance of each settings type
    settings: tuple[type, ...] = ()
    args: tuple[Arg, ...] = ()
    layered: bool = False  # takes --config FILE and --resume; `run` resolves the settings itself


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default only when it says something: not for None, False, an empty list or text."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default in ([], ""):
            return action.help
        return super()._get_help_string(action)


def _formatter(prog: str) -> argparse.HelpFormatter:
    return _HelpFormatter(prog, max_help_position=36, width=110)


def _force(output: str) -> Arg:
    return arg("--force", action="store_true", help=f"replace {output} if it exists")


def _quickstart(args: argparse.Namespace, config: QuickstartConfig) -> None:
    from rapgpt.quickstart import quickstart

    quickstart(args.out, config, force=args.force)


def _collect(args: argparse.Namespace, config: CollectConfig) -> None:
    from rapgpt.data.collect import collect, format_summary

    print(format_summary(collect(args.artist, args.out, **config.arguments())))


def _prepare(args: argparse.Namespace, config: PrepareConfig, clean: CleanOptions) -> None:
    from rapgpt.data.dataset import TokenDataset
    from rapgpt.data.dryrun import dry_run, format_dry_run
    from rapgpt.data.prepare import prepare
    from rapgpt.data.stats import format_stats

    if args.dry_run:
        print(format_dry_run(dry_run(args.sources, config, clean, progress=not args.no_progress)))
        return
    if args.out is None:
        raise ConfigError("--out DIR is required: name the dataset directory to write (or pass --dry-run)")
    out = prepare(args.sources, args.out, **asdict(config), clean=clean, force=args.force,
                  progress=not args.no_progress)
    print(format_stats(TokenDataset(out).meta["stats"]))
    print(f"dataset written to {out}")


def _train(args: argparse.Namespace) -> None:
    # OpenMP threads that spin while they wait stall each other on a machine shared with other work (a step can
    # take twice as long on 2 threads as on 1); sleeping costs little when the machine is idle. Set before torch
    # loads; an explicit OMP_WAIT_POLICY in the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from rapgpt.training.loop import pretrain, resolve_run_config

    flags = flags_given(args, PretrainConfig)
    config = resolve_run_config(PretrainConfig, args.out, args.resume, args.config, flags)
    pretrain(args.data, args.out, config, resume=args.resume)


def _finetune(args: argparse.Namespace) -> None:
    from rapgpt.training.finetune import RECORD, finetune
    from rapgpt.training.loop import resolve_run_config

    flags = flags_given(args, FinetuneConfig)
    config = resolve_run_config(FinetuneConfig, args.out, args.resume, args.config, flags, record=RECORD)
    finetune(args.base, args.data, args.out, config, resume=args.resume)


def _generate(args: argparse.Namespace, params: SamplingParams, config: GenerateConfig,
              writing: WritingParams) -> None:
    from rapgpt.generate.command import generate_command

    generate_command(args.model, args.prompt, params, config, adapter=args.adapter, writing=writing)


def _merge(args: argparse.Namespace) -> None:
    from rapgpt.lora import merge_run

    out = merge_run(args.base, args.adapter, args.out, force=args.force)
    print(f"merged {args.adapter} into its base: wrote {out}")


def _eval(args: argparse.Namespace, config: EvalConfig) -> None:
    from rapgpt.evaluate.run import evaluate

    path = evaluate(args.model, args.data, args.out, adapter=args.adapter, config=config)
    print(f"report written to {path}", file=sys.stderr)


def _serve(args: argparse.Namespace, config: ServeConfig) -> None:
    import logging

    from rapgpt.serve.server import serve

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    serve(args.model, args.adapter, config)


def _import_hf(args: argparse.Namespace) -> None:
    from rapgpt.interop.hf_import import import_hf

    print(f"imported {args.hf_dir} -> {import_hf(args.hf_dir, args.out, force=args.force)}")


def _export(args: argparse.Namespace, gguf: GGUFConfig) -> None:
    from rapgpt.interop import export

    out = export(args.run, args.out, args.format, adapter=args.adapter, merge=args.merge, base=args.base,
                 base_model=args.base_model, force=args.force, gguf=gguf)
    print(f"exported {args.adapter or args.run} -> {out} ({args.format}{', merged' if args.merge else ''})")


def _import_peft(args: argparse.Namespace) -> None:
    from rapgpt.interop.peft_import import import_peft

    print(f"imported {args.peft_dir} -> {import_peft(args.peft_dir, args.base, args.out, force=args.force)}")


# One entry per subcommand, in the order `rapgpt --help` lists them.
COMMANDS: list[Command] = [
    Command(
        "quickstart", "Run the whole pipeline on the bundled sample corpus, then serve it in the browser.",
        "Prepare the bundled sample corpus with one artist held out, pretrain a small character model on the "
        "others, fine-tune a LoRA adapter on that artist, print lyrics from both, write an evaluation report and "
        "serve both models in the browser. Everything lands in --out, as the individual commands would write it.",
        _quickstart, (QuickstartConfig,), (
            arg("--out", default="runs/quickstart", help="directory for the datasets, runs and report"),
            arg("--force", action="store_true", help="replace --out if it exists"),
        ),
    ),
    Command(
        "collect", "Collect lyrics from Genius into one Lyrics_<Artist>.json file per artist.",
        "Collect song lyrics from Genius into OUT/Lyrics_<Artist>.json (the lyricsgenius format that "
        "`rapgpt prepare` reads). Running it again resumes: songs already saved are kept and skipped.",
        _collect, (CollectConfig,), (
            arg("--artist", action="append", required=True, metavar="NAME",
                help="artist name as spelt on genius.com; repeat for several artists"),
            arg("--out", required=True, metavar="DIR", help="directory for the Lyrics_<Artist>.json files"),
        ),
    ),
    Command(
        "prepare", "Turn lyric files into a tokenized dataset: read, clean, dedupe, split, tokenize.",
        "Read lyrics (folders of .txt, .txt, CSV, Genius/lyricsgenius JSON), clean and deduplicate them, split them "
        "by song into train and validation, tokenize them, and write DIR/train.bin, val.bin, songs.jsonl, "
        "tokenizer.json and meta.json. Prints the dataset's statistics.",
        _prepare, (PrepareConfig, CleanOptions), (
            arg("sources", nargs="*", metavar="SOURCE", help="lyric files or folders (default: the sample corpus)"),
            arg("--out", metavar="DIR", help="the dataset directory to write (required unless --dry-run)"),
            arg("--dry-run", action="store_true", help="read and clean the sources and print what would be kept of "
                "each (format, songs, artists, words, drops, excerpts), writing nothing"),
            _force("DIR"),
            arg("--no-progress", action="store_true", help="hide the progress bars"),
        ),
    ),
    Command(
        "train", "Pretrain a GPT model on a prepared dataset.",
        "Pretrain a GPT model on a dataset written by `rapgpt prepare`. Settings come from the defaults, then a "
        "TOML file (--config), then the options below. Under `torchrun --nproc_per_node=N` the run is data "
        "parallel. A run killed at any moment continues with --resume from its last evaluation.",
        _train, (PretrainConfig,), (
            arg("--data", required=True, help="dataset directory written by `rapgpt prepare`"),
            arg("--out", required=True, help="run directory: weights, config.json, metrics, curves, state"),
        ), layered=True,
    ),
    Command(
        "finetune", "Fine-tune a trained run on one artist with LoRA.",
        "Train a LoRA adapter of a base run (from `rapgpt train`) on a dataset of one artist's songs, prepared with "
        "`rapgpt prepare SOURCE --artist NAME --vocab-from BASE_DATA`. Only the adapter is trained and saved; the "
        "training loop, evaluation, plots, checkpoints and --resume are those of `rapgpt train`.",
        _finetune, (FinetuneConfig,), (
            arg("--base", required=True, metavar="RUN", help="the base run directory"),
            arg("--data", required=True, help="dataset directory with the base's tokenizer"),
            arg("--out", required=True, metavar="RUN2", help="adapter run directory"),
        ), layered=True,
    ),
    Command(
        "generate", "Write lyrics with a trained model, streamed to the terminal.",
        "Continue a prompt with a trained model. The lyrics alone go to stdout (the prompt, then the continuation, "
        "as it is written); model size, notices and speed go to stderr. Several samples are separated by a line "
        "<|endoftext|>.",
        _generate, (SamplingParams, GenerateConfig, WritingParams), (
            arg("--model", required=True, type=Path, metavar="RUN", help="run directory of a trained model"),
            arg("--adapter", type=Path, metavar="RUN2", help="a LoRA adapter directory (from `rapgpt finetune`) "
                                                             "trained on RUN, merged in before generating"),
            arg("--prompt", default="", type=unescape, metavar="TEXT",
                help="the start of the lyrics (\\n is a line break); empty starts a song from scratch"),
        ),
    ),
    Command(
        "merge", "Merge a LoRA adapter into its base model, giving a standalone run directory.",
        "Fold the adapter's low-rank updates into the base weights. The result loads and generates like any "
        "pretrained run, at the base model's speed, without the adapter.",
        _merge, args=(
            arg("--base", metavar="RUN", help="the base run directory the adapter was trained on; when omitted, "
                                              "the one the adapter records"),
            arg("--adapter", required=True, metavar="RUN2",
                help="the fine-tuning run directory holding adapter.safetensors and adapter_config.json"),
            arg("--out", required=True, metavar="RUN3", help="the new run directory to write"),
            arg("--force", action="store_true", help="replace the model in --out if it already exists"),
        ),
    ),
    Command(
        "eval", "Evaluate a model (and an adapter): intrinsic scores, style, lyric craft, originality; writes a "
                "report.", None,
        _eval, (EvalConfig,), (
            arg("--model", required=True, help="run directory of the (base) model"),
            arg("--adapter", help="run directory of a LoRA adapter on --model: reported beside the base"),
            arg("--data", required=True, help="prepared dataset: real songs for style and calibration, its training "
                                              "text for originality, its validation split for the intrinsic scores"),
            arg("--out", required=True, help="report directory: report.md, report.html, report.json, plots"),
        ),
    ),
    Command(
        "serve", "Serve a model over HTTP: the browser front end, rapgpt's API and OpenAI's.",
        "Serve a trained run, and any fine-tuned adapters of it, with a lyrics front end at / , POST /api/generate, "
        "OpenAI-compatible /v1/completions and /v1/models, /health and /metrics. Requests in flight are decoded "
        "together in one batch per model.",
        _serve, (ServeConfig,), (
            arg("--model", required=True, metavar="RUN", help="the run directory to serve (from `rapgpt train`)"),
            arg("--adapter", action="append", default=[], metavar="NAME=RUN2",
                help="also serve the fine-tuned adapter in RUN2 (from `rapgpt finetune`) as model NAME; repeat for "
                     "several. Each is merged into its own copy of the weights"),
        ),
    ),
    Command(
        "import-hf", "Turn a Hugging Face GPT-2 checkpoint (a directory, or a Hub name like gpt2) into a run.",
        "Convert a Hugging Face GPT-2 checkpoint into a rapgpt run directory that uses GPT-2's BPE tokenizer. SOURCE "
        "is a directory on disk (config.json with model.safetensors, its shards, or pytorch_model.bin) or a Hub model "
        "id such as gpt2, distilgpt2 or user/model@revision, taken from the Hugging Face cache or downloaded into it "
        "(HF_HOME, HF_HUB_OFFLINE, HF_ENDPOINT and HF_TOKEN apply; needs huggingface_hub).",
        _import_hf, args=(
            arg("hf_dir", metavar="SOURCE", help="the checkpoint directory, or a Hub model id[@revision]"),
            arg("--out", required=True, metavar="RUN", help="the run directory to create"),
            _force("RUN"),
        ),
    ),
    Command(
        "export", "Export a run or a LoRA adapter for other tools (transformers, PEFT, llama.cpp, Ollama).",
        "Write a run in a format other tools load. hf: a directory that transformers' "
        "AutoModelForCausalLM.from_pretrained and AutoTokenizer.from_pretrained load offline, with a model card: "
        "the GPT-2 checkpoint format that vLLM, TGI and llama.cpp's converter read (a fine-tuned model: "
        "RUN --adapter RUN2 --merge). peft: a LoRA adapter RUN2 as a PEFT adapter directory, which "
        "peft.PeftModel.from_pretrained loads onto the base run's hf export. gguf: one GGUF file with the model "
        "and its tokenizer, which llama.cpp and Ollama run (--out model.gguf; needs the gguf extra).",
        _export, settings=(GGUFConfig,), args=(
            arg("run", metavar="RUN", help="the run directory to export; with --format peft, the adapter directory "
                                           "(or, with --adapter, its base run)"),
            arg("--format", default="hf", choices=EXPORT_FORMATS, help="the format to write"),
            arg("--out", required=True, metavar="DIR", help="the directory to create; with --format gguf, the file"),
            arg("--adapter", metavar="RUN2", help="a LoRA adapter directory trained on RUN: merged into it (hf and "
                                                  "gguf, with --merge) or exported (peft)"),
            arg("--merge", action="store_true", help="fold --adapter into RUN's weights (--format hf or gguf)"),
            arg("--base", metavar="RUN", help="--format peft: the base run the adapter was trained on; omitted: the "
                                              "one the adapter records"),
            arg("--base-model", metavar="PATH",
                help="--format peft: the base model adapter_config.json names (base_model_name_or_path), usually "
                     "the base run's --format hf export, which is then checked to hold the base's weights"),
            _force("DIR"),
        ),
    ),
    Command(
        "import-peft", "Turn a PEFT LoRA adapter for GPT-2 into a rapgpt adapter.",
        "Convert a PEFT LoRA adapter directory (adapter_config.json, adapter_model.safetensors) trained on a GPT-2 "
        "model into a rapgpt adapter on the rapgpt run holding that model's weights (see `rapgpt import-hf`).",
        _import_peft, args=(
            arg("peft_dir", metavar="DIR", help="the PEFT adapter directory"),
            arg("--base", required=True, metavar="RUN", help="the run holding the weights the adapter adapts"),
            arg("--out", required=True, metavar="RUN2", help="the adapter directory to create"),
            _force("RUN2"),
        ),
    ),
]


def _add(sub: argparse._SubParsersAction, command: Command) -> None:
    p = sub.add_parser(command.name, help=command.summary, description=command.description or command.summary,
                       formatter_class=_formatter)
    for names, kwargs in command.args:
        p.add_argument(*names, **kwargs)
    if command.layered:
        p.add_argument("--config", metavar="FILE", help="TOML file of settings, named as the options below with _")
        p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    for cls in command.settings:
        add_flags(p, cls, f"{cls.__name__} settings" + (" (also accepted in the --config TOML file)"
                                                         if command.layered else ""))
    p.set_defaults(command_entry=command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rapgpt",
        description="Train lyric-writing GPT models on a CPU: prepare data, pretrain, fine-tune, generate, serve.",
        formatter_class=_formatter,
    )
    parser.add_argument("--version", action="version", version=f"rapgpt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        _add(sub, command)
    return parser


def settings_of(args: argparse.Namespace) -> list[Any]:
    """The settings the command's function is called with: each type's defaults, overridden by the flags."""
    command: Command = args.command_entry
    return [] if command.layered else [from_args(args, cls) for cls in command.settings]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.command_entry.run(args, *settings_of(args))
    except RapgptError as e:
        print(f"rapgpt {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rapgpt {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
