"""A byte-level BPE trained on the lyrics themselves (`rapgpt prepare --tokenizer bpe --vocab-size N`).

GPT-2's BPE spends most of its 50,257 ids on words that lyrics never use, and a character model spends its
context and its steps on single letters. A BPE trained on the training split with Hugging Face's `tokenizers`
sits between: a few thousand ids, each a common piece of a lyric. It is byte-level like GPT-2's (GPT-2's
pre-tokenization pattern, then merges over bytes), so every text encodes and nothing is unknown. The end-of-text
token is id 0; as with the other tokenizers, `encode` reads the text "<|endoftext|>" as ordinary characters.

The whole trained tokenizer (the `tokenizers` JSON) is the spec saved beside the dataset and the model.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from typing import Any

from rapgpt.data.tokenizer import EOT_TEXT, Tokenizer
from rapgpt.errors import ConfigError, TokenizerError

BYTES = 256
# After 20 minutes of `rapgpt train` on a 2-core CPU, 8,192 ids beat 4,096 on bits per character and on the share
# of real words in samples (the README's speedrun section).
DEFAULT_VOCAB_SIZE = 8192
MAX_VOCAB_SIZE = 65536  # ids fit the dataset's uint16 files and the model stays small


@functools.cache
def byte_symbols() -> dict[str, int]:
    """The printable character that byte-level BPE writes for each byte, mapped back to the byte (GPT-2's scheme:
    printable Latin-1 bytes stand for themselves, the others are shifted past 255 in byte order)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols = {chr(b): b for b in printable}
    shifted = (b for b in range(BYTES) if b not in set(printable))
    symbols.update({chr(BYTES + n): b for n, b in enumerate(shifted)})
    return symbols


def check_vocab_size(vocab_size: int) -> None:
    if not BYTES < vocab_size <= MAX_VOCAB_SIZE:
        raise ConfigError(
            f"--vocab-size must be between {BYTES + 1} (the 256 bytes and the end-of-text token) and "
            f"{MAX_VOCAB_SIZE}, got {vocab_size}"
        )


class LyricBPETokenizer(Tokenizer):
    """Byte-level BPE trained on a corpus; `spec` is its `tokenizers` JSON (see the module docstring)."""

    kind = "bpe"

    def __init__(self, spec: dict[str, Any]):
        from tokenizers import Tokenizer as Backend

        try:
            self.backend = Backend.from_str(json.dumps(spec))
        except Exception as e:  # tokenizers raises its own exception type for a malformed file
            raise TokenizerError(f"the BPE tokenizer's JSON cannot be read: {e}") from e
        self.spec = spec
        self.vocab_size = self.backend.get_vocab_size()
        if self.backend.token_to_id(EOT_TEXT) != 0:
            raise TokenizerError(f"a lyric BPE must have {EOT_TEXT} at id 0: rebuild it with `rapgpt prepare`")
        self.eot_id = 0
        symbols = byte_symbols()
        pieces = [self.backend.id_to_token(i) for i in range(self.vocab_size)]
        self._bytes = [bytes(symbols[c] for c in piece) for piece in pieces[1:]]
        self._bytes.insert(0, EOT_TEXT.encode("utf-8"))

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE) -> LyricBPETokenizer:
        """Learn `vocab_size` ids (256 bytes, the end-of-text token and merges) from `texts`."""
        from tokenizers import Tokenizer as Backend
        from tokenizers import decoders, models, pre_tokenizers, trainers

        check_vocab_size(vocab_size)
        backend = Backend(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[EOT_TEXT],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        backend.train_from_iterator(texts, trainer)
        spec = json.loads(backend.to_str())
        spec["added_tokens"] = []  # id 0 stays in the vocabulary, but its text is not matched in input
        return cls(spec)

    def encode(self, text: str) -> list[int]:
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.backend.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        return b"".join(self._bytes[i] for i in ids).decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        return self._bytes[token_id]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "bpe": self.spec}

    def hf_json(self) -> dict[str, Any]:
        """The `tokenizers` JSON for Hugging Face, where the end-of-text token is a special added token."""
        eot = {"id": self.eot_id, "content": EOT_TEXT, "single_word": False, "lstrip": False, "rstrip": False,
               "normalized": False, "special": True}
        return {**self.spec, "added_tokens": [eot]}
