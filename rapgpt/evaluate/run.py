"""`rapgpt eval`: generate from a model (and an adapter), score the generations, write the report.

Generation is the one step that touches the models: `generate_texts` calls the project's sampler. Everything
after it works from texts (`rapgpt.evaluate.scoring`).
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections import Counter
from dataclasses import asdict
from importlib import resources
from pathlib import Path

import torch

from rapgpt.checkpoint import load_run
from rapgpt.data.dataset import TokenDataset
from rapgpt.data.tokenizer import CharTokenizer, Tokenizer
from rapgpt.errors import ConfigError
from rapgpt.evaluate.config import EvalConfig
from rapgpt.evaluate.embed import Embedder
from rapgpt.evaluate.fluency import ReferenceModel
from rapgpt.evaluate.intrinsic import intrinsic, token_stream
from rapgpt.evaluate.judging import judge
from rapgpt.evaluate.originality import NgramIndex
from rapgpt.evaluate.references import dataset_songs, require_artist
from rapgpt.evaluate.report import write_report
from rapgpt.evaluate.scoring import score_generations
from rapgpt.generate.lexicon import Speller, run_speller
from rapgpt.generate.params import WritingParams
from rapgpt.model import GPT
from rapgpt.training.runtime import pick_device


def read_prompts(path: str | Path | None = None) -> list[str]:
    """Prompts from a file, one per line (blank lines and # comments skipped); the shipped set by default."""
    if path is None:
        text = (resources.files("rapgpt.evaluate") / "prompts.txt").read_text(encoding="utf-8")
    else:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"prompts file not found: {path} (one prompt per line)")
        text = path.read_text(encoding="utf-8")
    prompts = [line.strip() + "\n" for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not prompts:
        raise ConfigError(f"no prompts in {path}: write one prompt per line")
    return prompts


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rapgpt"


def training_index(dataset: TokenDataset, cache_dir: Path) -> NgramIndex:
    """The n-gram index of the dataset's training text, built once and kept in the cache directory."""
    key = hashlib.sha256(str(dataset.path.resolve()).encode() + (dataset.path / "meta.json").read_bytes())
    key.update(str((dataset.path / "train.bin").stat().st_mtime_ns).encode())
    path = cache_dir / f"ngrams-{key.hexdigest()[:16]}.npy"
    if path.is_file():
        return NgramIndex.load(path)
    index = NgramIndex.build((s.text for s in dataset_songs(dataset, "train")), progress=True)
    index.save(path)
    return index


def fit_prompts(prompts: list[str], tokenizer: Tokenizer) -> list[str]:
    """The prompts without the characters a character model has never seen (the sampler would refuse them)."""
    if not isinstance(tokenizer, CharTokenizer):
        return prompts
    unknown = set().union(*(tokenizer.unknown_chars(p) for p in prompts))
    if unknown:
        shown = ", ".join(repr(c) for c in sorted(unknown))
        print(f"removed from the prompts: {shown} (not in the character model's vocabulary)", file=sys.stderr)
    return ["".join(c for c in p if c not in unknown) for p in prompts]


def generate_texts(
    model: GPT, tokenizer: Tokenizer, prompts: list[str], num_samples: int, max_new_tokens: int, seed: int,
    writing: WritingParams | None = None, speller: Speller | None = None,
) -> list[list[str]]:
    """`num_samples` continuations per prompt from the project's sampler, in one batched call (verses written
    line by line when `writing` asks for a scheme). The sampler seeds request j with seed + j, so every sample has
    its own seed, and each model gets the same ones."""
    from rapgpt.generate import BatchDecoder, SamplingParams
    from rapgpt.generate.scheme import write
    from rapgpt.generate.threads import decode_threads, torch_threads

    requests = [p for _ in range(num_samples) for p in prompts]
    params = SamplingParams(max_new_tokens=max_new_tokens, seed=seed)
    with torch_threads(decode_threads()):
        completions = write(BatchDecoder(model, tokenizer, max_batch=32), requests, params, writing, speller)
    return [[completions[i * len(prompts) + k].text for i in range(num_samples)] for k in range(len(prompts))]


def load_adapted(model_run: str | Path, adapter_run: str | Path, device: torch.device) -> tuple[GPT, Tokenizer]:
    from rapgpt.lora import load_adapted_run

    model, tokenizer, _ = load_adapted_run(model_run, adapter_run, merge=True, device=device)
    return model, tokenizer


def intrinsic_scores(model: GPT, dataset: TokenDataset, artist: str, max_tokens: int) -> dict[str, dict]:
    """Intrinsic figures on the validation split, and on the artist's validation songs when there are some."""
    streams = {"val": token_stream(dataset, "val")}
    if dataset.songs("val", artist):
        streams[f"val, {artist}"] = token_stream(dataset, "val", artist)
    return {
        name: asdict(intrinsic(model, dataset.tokenizer, stream, max_tokens, progress=True))
        for name, stream in streams.items()
        if len(stream) > 1
    }


def evaluate(
    model: str | Path,
    data: str | Path,
    out: str | Path,
    adapter: str | Path | None = None,
    config: EvalConfig | None = None,
) -> Path:
    """Evaluate a model run (and an adapter on it) against a prepared dataset; write the report into `out`.
    `config.reference_model`, a run that is not the one judged, adds each text's log-probability to the fluency;
    `config.judge_db` gets the report's excerpts for the blind test, and gives the report its answers so far. With
    a rhyme scheme, every sample is a verse of `chunk_lines` lines written to it (8 candidates a line)."""
    config = config or EvalConfig()
    artist, num_samples, seed = config.artist, config.num_samples, config.seed
    device = pick_device(config.device)
    intrinsic_tokens = config.intrinsic_tokens  # 0 skips the intrinsic scores
    if Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"--out {out} is a file: give a directory for the report")
    writing = WritingParams(scheme=config.scheme, lines=config.chunk_lines) if config.scheme != "free" else None
    dataset = TokenDataset(data)
    prompt_list = read_prompts(config.prompts)
    cache = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    artists = Counter(s.artist for s in dataset.songs())
    if artist is None:
        artist = artists.most_common(1)[0][0]
        print(f"--artist not given: evaluating against {artist}, who has the most songs in {data}", file=sys.stderr)
    require_artist(artists, artist)
    runs = {"base": str(model), **({"adapter": str(adapter)} if adapter else {})}
    loaded = {"base": load_run(model, device)[:2]}
    if adapter:
        loaded["adapter"] = load_adapted(model, adapter, device)
    prompt_list = fit_prompts(prompt_list, loaded["base"][1])
    reader = None
    if config.reference_model:
        reader = ReferenceModel(config.reference_model, *load_run(config.reference_model, device)[:2])

    scores: dict[str, dict] = {}
    generations: dict[str, list[list[str]]] = {}
    for name, (net, tokenizer) in loaded.items():
        if intrinsic_tokens and tokenizer != dataset.tokenizer:
            print(f"{name}: tokenizer differs from the dataset's, no intrinsic scores", file=sys.stderr)
        elif intrinsic_tokens:
            scores[name] = intrinsic_scores(net, dataset, artist, intrinsic_tokens)
        print(f"generating {num_samples} x {len(prompt_list)} samples with {name}", file=sys.stderr)
        speller = run_speller(model, tokenizer, config.lexicon, adapter if name == "adapter" else None)
        generations[name] = generate_texts(net, tokenizer, prompt_list, num_samples, config.max_new_tokens, seed,
                                           writing, speller)

    report = score_generations(
        prompt_list,
        generations,
        dataset_songs(dataset),
        artist,
        Embedder(config.embedder, cache_dir=cache, progress=True),
        training_index(dataset, cache),
        chunk_lines=config.chunk_lines,
        max_train_chunks=config.reference_chunks,
        max_heldout_chunks=config.reference_chunks // 4,
        seed=seed,
        reference_model=reader,
    )
    report["runs"] = {**runs, "data": str(data), "scheme": config.scheme}
    if scores:
        report["intrinsic"] = scores
    if config.judge_db:
        report["judge"] = judge(report, config.judge_db)
    return write_report(report, out)
