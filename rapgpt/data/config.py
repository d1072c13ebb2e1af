"""`rapgpt prepare`'s settings beside the cleaning ones (`CleanOptions`): what is read, which songs are kept, how
they are split and tokenized.

Kept light (no tokenizer libraries) so that the command line can show the defaults without loading them.
"""

from __future__ import annotations

from dataclasses import dataclass

from rapgpt.data.lyric_bpe import DEFAULT_VOCAB_SIZE
from rapgpt.data.readers import FORMATS
from rapgpt.data.tokenizer import TOKENIZERS
from rapgpt.options import setting


@dataclass(frozen=True)
class PrepareConfig:
    tokenizer: str | None = setting(
        None, "tokenizer: char, gpt2, or bpe trained on the lyrics (default: char, or --vocab-from's)",
        choices=TOKENIZERS)
    format: str = setting("auto", "source format; auto: by extension and content", choices=FORMATS)
    text_field: str | None = setting(None, "CSV column or JSON field holding the lyrics")
    artist_field: str | None = setting(None, "CSV column or JSON field holding the artist")
    title_field: str | None = setting(None, "CSV column or JSON field holding the title")
    records_field: str | None = setting(
        None, "JSON key (dotted for nested keys) holding the list of songs, when a file has several lists "
        "(default: found by looking)", metavar="KEY")
    separator: str | None = setting(None, "text between songs in a .txt (default: 2+ blank lines)", metavar="TEXT")
    val_fraction: float = setting(0.1, "share of songs for validation", metavar="F")
    seed: int = setting(1337, "seed of the train/validation split, salting each song's hash")
    artists: tuple[str, ...] = setting(
        (), "keep only this artist's songs (repeatable; case and punctuation ignored)", name="artist", repeat=True)
    exclude_artists: tuple[str, ...] = setting(
        (), "leave this artist's songs out, e.g. to fine-tune on them later (repeatable)", name="exclude_artist",
        repeat=True)
    vocab_from: str | None = setting(None, "reuse this dataset's tokenizer (for a fine-tuning set)", metavar="DIR")
    vocab_size: int | None = setting(
        None, f"ids of a --tokenizer bpe, learned from the training split (default {DEFAULT_VOCAB_SIZE})", metavar="N")
    workers: int | None = setting(None, "processes for cleaning and tokenizing (default: cores)")
