import json
import random
import time

import numpy as np
import pytest

from rapgpt.evaluate.embed import Embedder
from rapgpt.evaluate.references import Song, build_references
from rapgpt.evaluate.style import StyleClassifier, cosine_similarity, train_style_classifier
from tests.invented_artists import invented_line, invented_songs


def test_cosine_similarity_to_centroid_and_nearest_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    refs = rng.normal(size=(7, 5))
    refs /= np.linalg.norm(refs, axis=1, keepdims=True)
    vecs = rng.normal(size=(3, 5))
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    centroid, nearest = cosine_similarity(vecs, refs)
    mean = refs.mean(0)
    for i, v in enumerate(vecs):
        assert centroid[i] == pytest.approx(v @ mean / np.linalg.norm(mean))
        assert nearest[i] == pytest.approx(max(v @ r for r in refs))


def test_classifier_tells_two_invented_styles_apart():
    refs = build_references(invented_songs(), "Harbor Saint", chunk_lines=4, max_train=40, max_heldout=15)
    classifier, quality = train_style_classifier(refs, Embedder())
    assert quality.auc > 0.95 and quality.target_probability > quality.other_probability + 0.3
    rng = random.Random(7)
    sea = "\n".join(invented_line("Harbor Saint", rng) for _ in range(4))
    desert = "\n".join(invented_line("Dust Prophet", rng) for _ in range(4))
    p_sea, p_desert = classifier.predict_proba([sea, desert])
    assert p_sea > 0.5 > p_desert


@pytest.mark.slow
@pytest.mark.shared_data
def test_classifier_on_rap_genius_ranks_eminems_held_out_chunks_above_other_artists(shared_data):
    songs = [Song(s["artist"], s["title"], s["lyrics"]) for f in sorted((shared_data / "rap-genius-35").glob("*.json"))
             for s in json.loads(f.read_text(encoding="utf-8")) if s.get("lyrics")]  # fmt: skip
    # A small sample keeps the embedding under a minute; the report's defaults use four times as many chunks.
    refs = build_references(songs, "Eminem", chunk_lines=8, max_train=250, max_heldout=80)
    start = time.perf_counter()
    classifier, quality = train_style_classifier(refs, Embedder())
    print(f"Eminem vs 34 artists: {quality} in {time.perf_counter() - start:.0f} s")
    assert quality.auc >= 0.85
    assert quality.target_probability > quality.other_probability + 0.2
    assert isinstance(classifier, StyleClassifier)


def test_views_choose_the_features_and_tfidf_alone_never_embeds(tmp_path):
    refs = build_references(invented_songs(), "Harbor Saint", chunk_lines=4, max_train=30, max_heldout=10)
    embedder = Embedder(cache_dir=tmp_path)
    _, quality = train_style_classifier(refs, embedder, views=("words", "chars"))
    assert quality.auc > 0.95 and embedder._model is None
    with pytest.raises(ValueError, match="views"):
        StyleClassifier(embedder, views=("rhymes",))
