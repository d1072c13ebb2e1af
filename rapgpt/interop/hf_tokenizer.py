"""Tokenizer files that `transformers.AutoTokenizer` loads offline and that give rapgpt's token ids.

GPT-2 BPE is written as GPT-2's own vocab.json and merges.txt. A character tokenizer becomes a `tokenizers`
tokenizer.json: a word-level model whose words are single characters, after a pre-tokenizer that splits the text
into code points, with the end-of-text token at id 0 (bos and eos) and U+FFFD at id 1 for unknown characters. One
difference remains on both: Hugging Face tokenizers read the text "<|endoftext|>" as the end-of-text token, where
rapgpt's `encode` treats it as ordinary characters. A lyric BPE is already a `tokenizers` tokenizer: its own JSON
is written, with the end-of-text token added as special.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rapgpt.data.lyric_bpe import LyricBPETokenizer
from rapgpt.data.tokenizer import EOT_TEXT, CharTokenizer, GPT2Tokenizer, Tokenizer, gpt2_bpe_files
from rapgpt.errors import TokenizerError
from rapgpt.fileio import atomic_write_json


def save_hf_tokenizer(out_dir: Path, tokenizer: Tokenizer, max_length: int) -> None:
    """Write the tokenizer's files into `out_dir`; `max_length` is the model's context length."""
    settings = {"bos_token": EOT_TEXT, "eos_token": EOT_TEXT, "model_max_length": max_length,
                "clean_up_tokenization_spaces": False}  # decode must not drop the space before punctuation
    if isinstance(tokenizer, GPT2Tokenizer):
        encoder, merges = gpt2_bpe_files()
        (out_dir / "vocab.json").write_bytes(encoder.read_bytes())  # OpenAI's files are Hugging Face's format too
        (out_dir / "merges.txt").write_bytes(merges.read_bytes())
        config = {"tokenizer_class": "GPT2Tokenizer", **settings, "unk_token": EOT_TEXT, "add_prefix_space": False}
    elif isinstance(tokenizer, CharTokenizer):
        atomic_write_json(out_dir / "tokenizer.json", char_tokenizer_json(tokenizer))
        config = {"tokenizer_class": "PreTrainedTokenizerFast", **settings, "unk_token": CharTokenizer.UNKNOWN_TEXT}
    elif isinstance(tokenizer, LyricBPETokenizer):
        atomic_write_json(out_dir / "tokenizer.json", tokenizer.hf_json())
        config = {"tokenizer_class": "PreTrainedTokenizerFast", **settings}
    else:
        raise TokenizerError(
            f"no Hugging Face form for the {tokenizer.kind!r} tokenizer: export supports gpt2, char and bpe"
        )
    atomic_write_json(out_dir / "tokenizer_config.json", config)


def char_tokenizer_json(tokenizer: CharTokenizer) -> dict[str, Any]:
    """A `tokenizers` tokenizer.json giving each character its rapgpt id (see the module docstring)."""
    eot = {"id": tokenizer.eot_id, "content": EOT_TEXT, "single_word": False, "lstrip": False, "rstrip": False,
           "normalized": False, "special": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [eot],
        "normalizer": None,
        # One piece per code point, as Python iterates a str; [\s\S] and not ".", which skips newlines.
        "pre_tokenizer": {"type": "Split", "pattern": {"Regex": r"[\s\S]"}, "behavior": "Isolated", "invert": False},
        "post_processor": None,
        "decoder": {"type": "Fuse"},  # join the characters back with nothing between them
        "model": {"type": "WordLevel", "vocab": {c: i for i, c in enumerate(tokenizer.itos)},
                  "unk_token": CharTokenizer.UNKNOWN_TEXT},
    }
