"""How well the style classifier tells one artist from the others, by the features it uses.

    PYTHONPATH=. python benchmarks/style_auc.py [--data ../shared/data/rap-genius-35] [--chunks 600]

For each artist: held-out ROC AUC and accuracy of logistic regression on 8-line chunks, on MiniLM embeddings
alone, on word and character TF-IDF alone, and on all three (what `rapgpt eval` uses), with the held-out mean
probability of the artist's chunks and of the others'. Also the cosine similarity of held-out chunks to the
artist's centroid, which does not separate them. Embeddings are cached in a temporary directory for the run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from rapgpt.evaluate.embed import Embedder
from rapgpt.evaluate.references import Song, build_references
from rapgpt.evaluate.style import cosine_similarity, train_style_classifier

FEATURES = {"MiniLM": ("embedding",), "TF-IDF words+chars": ("words", "chars"), "all (rapgpt)": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/rap-genius-35"))
    parser.add_argument("--artists", nargs="+", default=["Eminem", "Kendrick Lamar", "Snoop Dogg"])
    parser.add_argument("--chunks", type=int, default=600, help="training chunks per side; a quarter held out")
    args = parser.parse_args()
    songs = [Song(s["artist"], s["title"], s["lyrics"]) for f in sorted(Path(args.data).glob("*.json"))
             for s in json.loads(f.read_text(encoding="utf-8")) if s.get("lyrics")]  # fmt: skip
    print("| artist | features | AUC | accuracy | P(artist) on artist | P(artist) on others |")
    print("| --- | --- | --- | --- | --- | --- |")
    similarity = []
    with tempfile.TemporaryDirectory() as cache:
        embedder = Embedder(cache_dir=cache, progress=True)
        for artist in args.artists:
            refs = build_references(songs, artist, 8, max_train=args.chunks, max_heldout=args.chunks // 4)
            for name, views in FEATURES.items():
                _, q = train_style_classifier(refs, embedder, views or ("embedding", "words", "chars"))
                print(f"| {artist} | {name} | {q.auc:.3f} | {q.accuracy:.3f} | {q.target_probability:.3f} | "
                      f"{q.other_probability:.3f} |", flush=True)  # fmt: skip
            own, _ = cosine_similarity(embedder.encode(refs.target_heldout), embedder.encode(refs.target_train))
            other, _ = cosine_similarity(embedder.encode(refs.other_heldout), embedder.encode(refs.target_train))
            similarity.append((artist, float(np.mean(own)), float(np.mean(other))))
    print("\n| artist | cosine to centroid: artist's held-out chunks | other artists' chunks |\n| --- | --- | --- |")
    for artist, own, other in similarity:
        print(f"| {artist} | {own:.3f} | {other:.3f} |")


if __name__ == "__main__":
    main()
