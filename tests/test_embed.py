import shutil

import numpy as np
import pytest

from rapgpt.errors import ConfigError
from rapgpt.evaluate.embed import Embedder, default_encoder_dir

TEXTS = ["the rain taps morse code on my window", "short", "engines idle while the city counts its debts\nand sleeps"]


def test_mean_pooled_encoder_matches_sentence_transformers(tmp_path):
    # The packaged MiniLM is mean pooling + normalisation; without modules.json the same weights take the plain
    # Hugging Face path, which must give the same vectors.
    plain = tmp_path / "plain"
    shutil.copytree(default_encoder_dir(), plain, ignore=shutil.ignore_patterns("modules.json", "1_Pooling"))
    reference = Embedder().encode(TEXTS)
    ours = Embedder(plain).encode(TEXTS)
    assert reference.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_disk_cache_serves_texts_seen_before_without_loading_the_encoder(tmp_path):
    first = Embedder(cache_dir=tmp_path).encode(TEXTS[:2])
    again = Embedder(cache_dir=tmp_path)
    np.testing.assert_array_equal(again.encode(TEXTS[:2]), first)
    assert again._model is None
    assert again.encode(TEXTS).shape == (3, 384) and again._model is not None


def test_directory_without_an_encoder_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="not an encoder directory"):
        Embedder(tmp_path)
