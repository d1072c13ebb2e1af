"""Style: how much a text reads like the target artist, by a classifier and by embedding similarity.

The classifier is the main measure. Logistic regression learns the target artist's chunks against the other
artists' from three views of each chunk: sentence embeddings (what it talks about), word uni- and bigram TF-IDF
(vocabulary and phrases) and character 2-5-gram TF-IDF (spelling, slang, sounds). Each view is L2-normalised, so
none outweighs the others by scale; classes are weighted to balance, so 0.5 is the neutral probability.

Cosine similarity to the artist's real lyrics (to their centroid, and to the nearest one) is what the RapGPT
write-up reports. It barely separates one rapper from another (any rap is close to any rap), so the report always
prints it beside the same figure for real held-out songs of the artist and of other artists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from rapgpt.evaluate.embed import Embedder
from rapgpt.evaluate.references import References

VIEWS = ("embedding", "words", "chars")


class StyleClassifier:
    """P(text is by the target artist), learned from real chunks of the target and of other artists."""

    def __init__(self, embedder: Embedder, views: Sequence[str] = VIEWS, C: float = 3.0):
        if not views or set(views) - set(VIEWS):
            raise ValueError(f"views must be a non-empty subset of {VIEWS}, got {views}")
        self.embedder = embedder
        self.views = tuple(views)
        self.tfidf = {
            "words": TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2),
            "chars": TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
        }
        self.model = LogisticRegression(C=C, max_iter=3000, class_weight="balanced")

    def _features(self, texts: Sequence[str], fit: bool = False) -> sparse.csr_matrix:
        parts = []
        for view in self.views:
            if view == "embedding":
                parts.append(sparse.csr_matrix(self.embedder.encode(texts)))
            else:
                parts.append(self.tfidf[view].fit_transform(texts) if fit else self.tfidf[view].transform(texts))
        return sparse.hstack(parts).tocsr()

    def fit(self, target: Sequence[str], other: Sequence[str]) -> StyleClassifier:
        texts = [*target, *other]
        labels = np.r_[np.ones(len(target)), np.zeros(len(other))]
        self.model.fit(self._features(texts, fit=True), labels)
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        return self.model.predict_proba(self._features(texts))[:, 1]


@dataclass(frozen=True)
class ClassifierQuality:
    auc: float  # held-out ROC AUC, target chunks against other artists' chunks
    accuracy: float  # held-out, at probability 0.5, over both classes
    target_probability: float  # mean probability on the target artist's held-out chunks
    other_probability: float  # mean probability on other artists' held-out chunks
    train_chunks: tuple[int, int]  # (target, other)
    heldout_chunks: tuple[int, int]


def train_style_classifier(
    refs: References, embedder: Embedder, views: Sequence[str] = VIEWS
) -> tuple[StyleClassifier, ClassifierQuality]:
    """The classifier fitted on the references' training chunks, and its quality on their held-out chunks."""
    classifier = StyleClassifier(embedder, views).fit(refs.target_train, refs.other_train)
    p_target = classifier.predict_proba(refs.target_heldout)
    p_other = classifier.predict_proba(refs.other_heldout)
    labels = np.r_[np.ones(len(p_target)), np.zeros(len(p_other))]
    scores = np.r_[p_target, p_other]
    quality = ClassifierQuality(
        auc=float(roc_auc_score(labels, scores)),
        accuracy=float(((scores >= 0.5) == labels).mean()),
        target_probability=float(p_target.mean()),
        other_probability=float(p_other.mean()),
        train_chunks=(len(refs.target_train), len(refs.other_train)),
        heldout_chunks=(len(refs.target_heldout), len(refs.other_heldout)),
    )
    return classifier, quality


def cosine_similarity(vectors: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per vector: cosine similarity to the references' centroid, and to the nearest reference (unit vectors)."""
    centroid = references.mean(0)
    centroid /= np.linalg.norm(centroid)
    return vectors @ centroid, (vectors @ references.T).max(1)
