"""Scores generations against real songs: fluency first, then style probability, similarity, craft and
originality per sample, summed up per prompt and per model, with real songs' figures as the calibration line.

Style and craft are read only from fluent generations: a sample below the real songs' fluency is labelled "not
fluent" whatever its style probability, and its style and rhyme figures are left out of every mean. Everything
here works from texts, so it is indifferent to how the generations were produced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from rapgpt.evaluate.craft import Craft, craft, mean_craft
from rapgpt.evaluate.embed import Embedder
from rapgpt.evaluate.fluency import (
    MARGIN,
    MIN_WORD_COUNT,
    THRESHOLD_QUANTILE,
    FluencyReference,
    ReferenceModel,
    fluency,
    is_fluent,
    thresholds,
)
from rapgpt.evaluate.originality import NgramIndex, originality
from rapgpt.evaluate.references import HELDOUT_SHARE, Song, build_references, is_heldout
from rapgpt.evaluate.style import cosine_similarity, train_style_classifier
from rapgpt.evaluate.text import lyric_lines

ON_STYLE = 0.5  # classifier probability from which a sample is labelled on-style (classes are balanced)
COPY_WORDS = 12  # a verbatim span this long is worth a comment
GATED = ("probability", "centroid", "nearest", *Craft.__dataclass_fields__)  # read from fluent samples only
ALL_SAMPLES = ("real_word_share", "known_bigram_share", "reference_logprob", "ngram_share")


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


def _gated(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Fluency and originality means over all samples; style and craft means over the fluent ones only (None
    when no sample is fluent), with the count of each."""
    fluent = [s for s in samples if s["fluent"]]
    out: dict[str, Any] = {k: _mean([s[k] for s in samples]) for k in ALL_SAMPLES if samples and k in samples[0]}
    out |= {k: _mean([s[k] for s in fluent]) if fluent else None for k in GATED}
    out |= {"samples": len(samples), "fluent": len(fluent),
            "longest_copy_words": max((s["longest_copy_words"] for s in samples), default=0)}
    return out


def _percent(x: float) -> str:
    return f"{100 * x:.0f}%"


def comment(row: dict[str, Any], artist: str, real: dict[str, float]) -> str:
    """A short reading of one prompt's samples, from the figures (the write-up's 'comment' column). Style and rhyme
    are read only from fluent samples: nonsense is never called on-style or rhyming."""
    parts = []
    if not row["fluent"]:
        parts.append(f"not fluent: {_percent(row['real_word_share'])} real words, "
                     f"{_percent(row['known_bigram_share'])} known word pairs (real songs: "
                     f"{_percent(real['real_word_share'])}, {_percent(real['known_bigram_share'])})")  # fmt: skip
    else:
        p = row["probability"]
        parts.append(f"reads like {artist}" if p >= 0.7 else f"close to {artist}" if p >= ON_STYLE else "generic")
        if row["fluent"] < row["samples"]:
            parts.append(f"{row['samples'] - row['fluent']} of {row['samples']} samples not fluent")
    if row["longest_copy_words"] >= COPY_WORDS:
        parts.append(f"copies {row['longest_copy_words']} words verbatim")
    if row["fluent"]:
        if row["repetition_rate"] > 0.3 or row["distinct_2"] < 0.6:
            parts.append("repetitive")
        if row["rhyme_density"] >= real["rhyme_density"]:
            parts.append("rhymes as densely as the real songs")
        elif row["rhyme_density"] < 0.5 * real["rhyme_density"]:
            parts.append("few rhymes")
    return ", ".join(parts)


def label(row: dict[str, Any]) -> str:
    if not row["fluent"]:
        return "not fluent"
    return "on-style" if row["probability"] >= ON_STYLE else "off-style"


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
    reference_model: ReferenceModel | None = None,
) -> dict[str, Any]:
    """The report's figures. `generations[model][i]` holds the sample texts (continuations) for `prompts[i]`.
    Fluency is measured against the songs the calibration does not hold out (and under `reference_model`)."""
    lines = chunk_length(generations, chunk_lines)
    refs = build_references(songs, artist, lines, max_train=max_train_chunks, max_heldout=max_heldout_chunks, seed=seed)
    classifier, quality = train_style_classifier(refs, embedder)
    reference_vectors = embedder.encode(refs.target_train)
    known = FluencyReference.build(s.text for s in songs if not is_heldout(s, HELDOUT_SHARE))

    def style(chunks: list[str]) -> dict[str, np.ndarray]:
        centroid, nearest = cosine_similarity(embedder.encode(chunks), reference_vectors)
        return {"probability": classifier.predict_proba(chunks), "centroid": centroid, "nearest": nearest}

    real_fluency = {name: [fluency(c, known, reference_model) for c in chunks]
                    for name, chunks in (("target_heldout", refs.target_heldout),
                                         ("other_artists", refs.other_heldout))}  # fmt: skip
    limits = thresholds([f for figures in real_fluency.values() for f in figures])
    calibration = {}
    for name, chunks in (("target_heldout", refs.target_heldout), ("other_artists", refs.other_heldout)):
        scores = style(chunks)
        figures = real_fluency[name]
        calibration[name] = {
            "chunks": len(chunks),
            **{k: _mean([f[k] for f in figures]) for k in figures[0]},
            "fluent_share": _mean([is_fluent(f, limits) for f in figures]),
            **{k: _mean(v) for k, v in scores.items()},
            **mean_craft(chunks),
            "probabilities": scores["probability"].round(4).tolist(),
            "centroids": scores["centroid"].round(4).tolist(),
        }
    calibration["target_heldout"]["texts"] = refs.target_heldout  # the real side of the blind test
    real = calibration["target_heldout"]

    models: dict[str, Any] = {}
    for model, per_prompt in generations.items():
        flat = [(i, text) for i, texts in enumerate(per_prompt) for text in texts]
        chunks = ["\n".join(complete_lines(text)[:lines]) for _, text in flat]
        scores = style(chunks)
        samples = []
        for j, ((i, text), chunk) in enumerate(zip(flat, chunks)):
            copied = originality(text, index)
            figures = fluency(chunk, known, reference_model)
            samples.append({
                "prompt": i,
                "text": text,
                "chunk": chunk,
                **figures,
                "fluent": is_fluent(figures, limits),
                **{k: float(v[j]) for k, v in scores.items()},
                **asdict(craft(chunk)),
                "ngram_share": copied.ngram_share,
                "longest_copy_words": copied.longest_copy_words,
                "longest_copy": copied.longest_copy,
                "copied_lines": copied.copied_lines,
            })  # fmt: skip
        per_prompt_means = [_gated([s for s in samples if s["prompt"] == i]) for i in range(len(prompts))]
        for row in per_prompt_means:
            row["label"] = label(row)
            row["comment"] = comment(row, artist, real)
        fluent = [s for s in samples if s["fluent"]]
        models[model] = {
            "summary": {
                **_gated(samples),
                "fluent_share": _mean([s["fluent"] for s in samples]),
                "on_style_share": _mean([s["probability"] >= ON_STYLE for s in fluent]) if fluent else None,
                "copied_samples": sum(bool(s["copied_lines"]) for s in samples),
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
        "fluency": {
            "thresholds": limits,
            "quantile": THRESHOLD_QUANTILE,
            "margin": MARGIN,
            "min_word_count": MIN_WORD_COUNT,
            "vocabulary_words": len(known.vocabulary),
            "reference_bigrams": len(known.bigrams),
            "reference_model": reference_model.name if reference_model else None,
        },
        "classifier": asdict(quality),
        "calibration": calibration,
        "models": models,
    }
