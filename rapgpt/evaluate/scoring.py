"""Scores generations against real songs: style probability, similarity, craft and originality per sample,
summed up per prompt and per model, with real songs' figures as the calibration line.

Everything here works from texts, so it is indifferent to how the generations were produced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from rapgpt.evaluate.craft import craft, mean_craft
from rapgpt.evaluate.embed import Embedder
from rapgpt.evaluate.originality import NgramIndex, originality
from rapgpt.evaluate.references import Song, build_references
from rapgpt.evaluate.style import cosine_similarity, train_style_classifier
from rapgpt.evaluate.text import lyric_lines

ON_STYLE = 0.5  # classifier probability from which a sample is labelled on-style (classes are balanced)
COPY_WORDS = 12  # a verbatim span this long is worth a comment


def complete_lines(text: str) -> list[str]:
    """The generation's lyric lines, without a last line that the token budget cut off."""
    lines = lyric_lines(text)
    if len(lines) > 1 and not text.endswith("\n"):
        lines = lines[:-1]
    return lines


def chunk_length(generations: dict[str, list[list[str]]], chunk_lines: int) -> int:
    """Lines per chunk: `chunk_lines`, or fewer when most generations are shorter, so that generations and real
    chunks have the same length and length cannot tell them apart."""
    counts = [len(complete_lines(t)) for samples in generations.values() for texts in samples for t in texts]
    return max(1, min(chunk_lines, int(np.median(counts)) if counts else chunk_lines))


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else 0.0


def _aggregate(samples: list[dict[str, Any]]) -> dict[str, float]:
    """Means of the samples' figures; for the longest copy, the longest one."""
    keys = [k for k, v in samples[0].items() if isinstance(v, float | int) and k != "prompt"] if samples else []
    out = {k: _mean([s[k] for s in samples]) for k in keys}
    if samples:
        out["longest_copy_words"] = max(s["longest_copy_words"] for s in samples)
    return out


def comment(sample: dict[str, Any], artist: str, real: dict[str, float]) -> str:
    """A short reading of one prompt's samples, from the figures (the write-up's 'comment' column)."""
    p = sample["probability"]
    parts = [f"reads like {artist}" if p >= 0.7 else f"close to {artist}" if p >= ON_STYLE else "generic"]
    if sample["longest_copy_words"] >= COPY_WORDS:
        parts.append(f"copies {sample['longest_copy_words']} words verbatim")
    if sample["repetition_rate"] > 0.3 or sample["distinct_2"] < 0.6:
        parts.append("repetitive")
    if sample["rhyme_density"] >= real["rhyme_density"]:
        parts.append("rhymes as densely as the real songs")
    elif sample["rhyme_density"] < 0.5 * real["rhyme_density"]:
        parts.append("few rhymes")
    return ", ".join(parts)


def score_generations(
    prompts: Sequence[str],
    generations: dict[str, list[list[str]]],
    songs: Sequence[Song],
    artist: str,
    embedder: Embedder,
    index: NgramIndex,
    chunk_lines: int = 8,
    max_train_chunks: int = 600,
    max_heldout_chunks: int = 150,
    seed: int = 0,
) -> dict[str, Any]:
    """The report's figures. `generations[model][i]` holds the sample texts (continuations) for `prompts[i]`."""
    lines = chunk_length(generations, chunk_lines)
    refs = build_references(songs, artist, lines, max_train=max_train_chunks, max_heldout=max_heldout_chunks, seed=seed)
    classifier, quality = train_style_classifier(refs, embedder)
    reference_vectors = embedder.encode(refs.target_train)

    def style(chunks: list[str]) -> dict[str, np.ndarray]:
        centroid, nearest = cosine_similarity(embedder.encode(chunks), reference_vectors)
        return {"probability": classifier.predict_proba(chunks), "centroid": centroid, "nearest": nearest}

    calibration = {}
    for name, chunks in (("target_heldout", refs.target_heldout), ("other_artists", refs.other_heldout)):
        scores = style(chunks)
        calibration[name] = {
            "chunks": len(chunks),
            **{k: _mean(v) for k, v in scores.items()},
            **mean_craft(chunks),
            "probabilities": scores["probability"].round(4).tolist(),
            "centroids": scores["centroid"].round(4).tolist(),
        }
    real = calibration["target_heldout"]

    models: dict[str, Any] = {}
    for model, per_prompt in generations.items():
        flat = [(i, text) for i, texts in enumerate(per_prompt) for text in texts]
        chunks = ["\n".join(complete_lines(text)[:lines]) for _, text in flat]
        scores = style(chunks)
        samples = []
        for j, ((i, text), chunk) in enumerate(zip(flat, chunks)):
            copied = originality(text, index)
            samples.append({
                "prompt": i,
                "text": text,
                "chunk": chunk,
                **{k: float(v[j]) for k, v in scores.items()},
                **asdict(craft(chunk)),
                "ngram_share": copied.ngram_share,
                "longest_copy_words": copied.longest_copy_words,
                "longest_copy": copied.longest_copy,
                "copied_lines": copied.copied_lines,
            })  # fmt: skip
        per_prompt_means = [_aggregate([s for s in samples if s["prompt"] == i]) for i in range(len(prompts))]
        for means in per_prompt_means:
            means["label"] = "on-style" if means["probability"] >= ON_STYLE else "off-style"
            means["comment"] = comment(means, artist, real)
        models[model] = {
            "summary": {
                **_aggregate(samples),
                "on_style_share": _mean([s["probability"] >= ON_STYLE for s in samples]),
                "copied_samples": sum(bool(s["copied_lines"]) for s in samples),
                "samples": len(samples),
            },
            "prompts": per_prompt_means,
            "samples": samples,
        }
    return {
        "artist": artist,
        "embedder": embedder.name,
        "chunk_lines": lines,
        "chunk_lines_asked": chunk_lines,
        "ngram": index.n,
        "prompts": list(prompts),
        "classifier": asdict(quality),
        "calibration": calibration,
        "models": models,
    }
