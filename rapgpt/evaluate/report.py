"""The evaluation report: report.md and report.html (the same blocks, rendered twice), report.json, PNG plots."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from rapgpt.fileio import atomic_write, atomic_write_bytes, atomic_write_json

Block = tuple  # ("h", level, text) | ("p", text) | ("table", header, rows) | ("img", file, alt) | ("pre", text)


def _f(x: float | None, digits: int = 3) -> str:
    """A figure, or a dash for one that has no value (a style mean over no fluent sample)."""
    return "—" if x is None else f"{x:.{digits}f}"


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _fluent(s: dict[str, Any]) -> str:
    return f"{s['fluent']} of {s['samples']}"


def _short(text: str, width: int = 60) -> str:
    one_line = " / ".join(line.strip() for line in text.strip().splitlines())
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"


CRAFT = ("rhyme_density", "end_rhyme_rate", "distinct_1", "distinct_2", "repetition_rate", "words_per_line",
         "syllables_per_line")  # fmt: skip


def _real(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The calibration rows: real songs of the artist (held out from the classifier) and of the others."""
    cal = report["calibration"]
    return {f"real {report['artist']} (held out)": cal["target_heldout"], "real, other artists": cal["other_artists"]}


FLUENCY = {"real_word_share": "real words", "known_bigram_share": "known word pairs",
           "reference_logprob": "log-prob/token (reference model)"}


def _fluency_keys(report: dict[str, Any]) -> list[str]:
    return [k for k in FLUENCY if k in report["fluency"]["thresholds"]]


def _summary(report: dict[str, Any]) -> list[Block]:
    artist, cal, models = report["artist"], report["calibration"], report["models"]
    real = cal["target_heldout"]
    fluency = " -> ".join(
        f"{m} {_fluent(v['summary'])} samples fluent ({_pct(v['summary']['real_word_share'])} real words, "
        f"{_pct(v['summary']['known_bigram_share'])} known word pairs)" for m, v in models.items())  # fmt: skip
    style = " -> ".join(
        f"{m} {_f(v['summary']['probability'], 2)} ({v['summary']['fluent']} samples)" for m, v in models.items())
    headline = (
        f"Fluency: {fluency}; real held-out songs by {artist}: {_pct(real['real_word_share'])} real words, "
        f"{_pct(real['known_bigram_share'])} known word pairs. Style, over the fluent samples only (probability "
        f"that a generation is {artist}'s, by the style classifier): {style}; real held-out songs by {artist}: "
        f"{_f(real['probability'], 2)}, other artists' real songs: {_f(cal['other_artists']['probability'], 2)}."
    )
    keys = _fluency_keys(report)
    header = ["", "fluent samples", *(FLUENCY[k] for k in keys), "style probability", "on-style share",
              "similarity (centroid)", "similarity (nearest)", "rhyme density", "copied n-grams",
              "longest copy (words)"]  # fmt: skip
    rows = []
    for m, v in models.items():
        s = v["summary"]
        rows.append([m, _fluent(s), *(_f(s[k]) for k in keys), _f(s["probability"]), _f(s["on_style_share"], 2),
                     _f(s["centroid"]), _f(s["nearest"]), _f(s["rhyme_density"], 2), _f(s["ngram_share"]),
                     str(s["longest_copy_words"])])  # fmt: skip
    for name, c in _real(report).items():
        rows.append([name, f"{_pct(c['fluent_share'])} of {c['chunks']}", *(_f(c[k]) for k in keys),
                     _f(c["probability"]), "", _f(c["centroid"]), _f(c["nearest"]), _f(c["rhyme_density"], 2), "",
                     ""])  # fmt: skip
    note = ("Style, similarity and rhyme figures of the generations are means over their fluent samples only "
            "(— when none is fluent); fluency and copying are over all samples.")
    return [("h", 2, "Summary"), ("p", headline), ("table", header, rows), ("p", note)]


def _fluency(report: dict[str, Any]) -> list[Block]:
    fl = report["fluency"]
    limits = "; ".join(f"{FLUENCY[k]} at least {_f(v)}" for k, v in fl["thresholds"].items())
    text = (
        f"A sample is fluent when every measure reaches its threshold: the {_pct(fl['quantile'])} quantile of the "
        f"same measure over the real held-out chunks (the artist's and the other artists' together), lowered by "
        f"{fl['margin']:g} times its distance to their median: {limits}. Real words: words in "
        f"CMUdict or used at least {fl['min_word_count']} times in the reference songs ({fl['vocabulary_words']} "
        f"such words). Known word pairs: word bigrams found in the reference songs ({fl['reference_bigrams']} "
        "distinct ones; the calibration's held-out songs are not among them). A sample below a threshold is "
        "labelled \"not fluent\", whatever its style probability, and is left out of the style and rhyme figures."
    )
    model = (f"Log-probability: mean per token under the reference model {fl['reference_model']}."
             if fl["reference_model"] else
             "No reference model given (rapgpt eval --reference-model RUN): no log-probability measure.")
    return [("h", 2, "Fluency"), ("p", text), ("p", model)]


def _judge(report: dict[str, Any]) -> list[Block]:
    """The blind test: how often people took each source's excerpts for real, with a 95% Wilson interval."""
    if "judge" not in report:
        return []
    judge = report["judge"]
    ours = set(judge["models"].values())
    rows = []
    for t in judge["sources"]:
        name = "real songs" if t["source"] == "real" else t["source"] + (" (this report)" * (t["source"] in ours))
        low, high = t["interval"] or (None, None)
        share = "—" if t["share"] is None else _pct(t["share"])
        interval = "—" if low is None else f"{_pct(low)}–{_pct(high)}"
        rows.append([name, str(t["excerpts"]), str(t["answers"]), share, interval])
    text = (f"People shown an excerpt of a few lines on the studio's \"Real or model?\" page (rapgpt serve "
            f"--judge-db {judge['db']}) answered whether a real song or the model wrote it. A model whose lines are "
            "taken for real as often as real lines are is indistinguishable to them.")
    header = ["source", "excerpts", "answers", "taken for real", "95% interval (Wilson)"]
    return [("h", 2, "Blind test"), ("p", text), ("table", header, rows)]


def _style(report: dict[str, Any]) -> list[Block]:
    artist, cal, clf = report["artist"], report["calibration"], report["classifier"]
    (train_target, train_other), (heldout_target, heldout_other) = clf["train_chunks"], clf["heldout_chunks"]
    classifier = (
        f"Logistic regression on sentence embeddings and word and character n-gram TF-IDF, trained on "
        f"{train_target} chunks by {artist} and {train_other} by other artists. On held-out songs "
        f"({heldout_target} + {heldout_other} chunks): ROC AUC {_f(clf['auc'])}, accuracy {_f(clf['accuracy'])}, "
        f"mean probability {_f(clf['target_probability'])} for {artist}'s chunks and "
        f"{_f(clf['other_probability'])} for other artists'."
    )
    similarity = (
        f"Cosine similarity of each generation's embedding to the centroid of {artist}'s real lyrics. "
        f"Calibration: real held-out songs by {artist} score {_f(cal['target_heldout']['centroid'])}, other "
        f"artists' real songs {_f(cal['other_artists']['centroid'])}: compare a model's figure with both, since "
        "any rap lyric is close to any other."
    )
    return [
        ("h", 2, "Style classifier"),
        ("p", classifier),
        ("h", 2, "Similarity to the artist's lyrics"),
        ("p", similarity),
        ("img", "similarity.png", "Distributions of similarity and style probability"),
    ]


def _intrinsic(report: dict[str, Any]) -> list[Block]:
    if "intrinsic" not in report:
        return []
    header = ["model", "text", "tokens", "loss/token", "perplexity", "accuracy", "bits/char"]
    rows = [[m, text, str(r["tokens"]), _f(r["loss"]), _f(r["perplexity"], 2), _f(r["accuracy"]),
             _f(r["bits_per_character"])]
            for m, by_text in report["intrinsic"].items() for text, r in by_text.items()]  # fmt: skip
    return [("h", 2, "Intrinsic"), ("table", header, rows)]


def _prompts(report: dict[str, Any]) -> list[Block]:
    """The write-up's table: prompt, similarity, label, comment (and the classifier's probability)."""
    rows = []
    for i, prompt in enumerate(report["prompts"]):
        for m, v in report["models"].items():
            p = v["prompts"][i]
            rows.append([_short(prompt, 40), m, _fluent(p), _f(p["centroid"]), _f(p["probability"]), p["label"],
                         p["comment"]])
    header = ["prompt", "model", "fluent samples", "similarity", "probability", "label", "comment"]
    return [("h", 2, "Prompts"), ("table", header, rows), ("img", "prompts.png", "Style probability per prompt")]


def _craft(report: dict[str, Any]) -> list[Block]:
    header = ["", "rhyme density", "end-rhyme rate", "distinct-1", "distinct-2", "repetition", "words/line",
              "syllables/line"]  # fmt: skip
    named = [*((f"{m} ({v['summary']['fluent']} fluent samples)", v["summary"]) for m, v in report["models"].items()),
             *_real(report).items()]  # fmt: skip
    return [("h", 2, "Craft"), ("table", header, [[name, *(_f(s[k], 2) for k in CRAFT)] for name, s in named])]


def _originality(report: dict[str, Any]) -> list[Block]:
    out: list[Block] = [("h", 2, "Originality")]
    for m, v in report["models"].items():
        copied = [s for s in v["samples"] if s["copied_lines"]]
        share = _f(100 * v["summary"]["ngram_share"], 1)
        found = f"{len(copied)} of {len(v['samples'])} samples contain copied lines"
        out.append(("p", f"{m}: {share}% of word {report['ngram']}-grams found in the training text; {found}."))
        if copied:  # the first ten such samples, line by line
            lines = [f"[{m}, prompt {s['prompt'] + 1}] {line}" for s in copied[:10] for line in s["copied_lines"]]
            out.append(("pre", "\n".join(lines)))
    return out


def _samples(report: dict[str, Any]) -> list[Block]:
    out: list[Block] = [("h", 2, "Samples")]
    for i, prompt in enumerate(report["prompts"]):
        for m, v in report["models"].items():
            first = next((s for s in v["samples"] if s["prompt"] == i), None)
            if first:
                fluent = "" if first["fluent"] else ", not fluent"
                out += [("p", f"Prompt {i + 1} ({m}{fluent}): {_short(prompt)}"), ("pre", first["chunk"])]
    return out


def blocks(report: dict[str, Any]) -> list[Block]:
    runs = "; ".join(f"{k}: {v}" for k, v in report.get("runs", {}).items())
    lines = report["chunk_lines"]
    chunks = f"Generations and real songs compared in chunks of {lines} line{'s' if lines != 1 else ''}"
    if lines < report.get("chunk_lines_asked", lines):
        chunks += (f" (not {report['chunk_lines_asked']}: most generations are shorter; short chunks are harder to "
                   "tell apart)")
    setup = (f"{chunks}; sentence encoder: {report['embedder']}; originality against the training text's word "
             f"{report['ngram']}-grams.")  # fmt: skip
    head: list[Block] = [("h", 1, f"Evaluation: {report['artist']}"), *([("p", runs)] if runs else []), ("p", setup)]
    sections = (_summary, _fluency, _judge, _style, _intrinsic, _prompts, _craft, _originality, _samples)
    return head + [b for section in sections for b in section(report)]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block]) -> str:
    parts = []
    for b in blocks:
        if b[0] == "h":
            parts.append("#" * b[1] + " " + b[2])
        elif b[0] == "p":
            parts.append(b[1])
        elif b[0] == "table":
            rows = [b[1], ["---"] * len(b[1]), *b[2]]
            parts.append("\n".join("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows))
        elif b[0] == "img":
            parts.append(f"![{b[2]}]({b[1]})")
        elif b[0] == "pre":
            parts.append("```\n" + b[1] + "\n```")
    return "\n\n".join(parts) + "\n"


def to_html(blocks: list[Block], title: str) -> str:
    e = html.escape
    parts = [f"<!doctype html><meta charset='utf-8'><title>{e(title)}</title>",
             ("<style>body{font-family:sans-serif;max-width:70em;margin:auto}td,th{border:1px solid #ccc;"
             "padding:2px 6px}table{border-collapse:collapse}pre{background:#f4f4f4;padding:6px}</style>")]  # fmt: skip
    for b in blocks:
        if b[0] == "h":
            parts.append(f"<h{b[1]}>{e(b[2])}</h{b[1]}>")
        elif b[0] == "p":
            parts.append(f"<p>{e(b[1])}</p>")
        elif b[0] == "table":
            head = "".join(f"<th>{e(c)}</th>" for c in b[1])
            body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in b[2])
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
        elif b[0] == "img":
            parts.append(f"<img src='{e(b[1])}' alt='{e(b[2])}' style='max-width:100%'>")
        elif b[0] == "pre":
            parts.append(f"<pre>{e(b[1])}</pre>")
    return "\n".join(parts) + "\n"


def plot(report: dict[str, Any], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    artist, cal, models = report["artist"], report["calibration"], report["models"]
    series = {
        f"real {artist} (held out)": (cal["target_heldout"]["centroids"], cal["target_heldout"]["probabilities"]),
        "real, other artists": (cal["other_artists"]["centroids"], cal["other_artists"]["probabilities"]),
        **{f"{m} (fluent samples)": ([s["centroid"] for s in v["samples"] if s["fluent"]],
                                     [s["probability"] for s in v["samples"] if s["fluent"]])
           for m, v in models.items()},
    }  # fmt: skip
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, (centroids, probabilities) in ((k, v) for k, v in series.items() if v[0]):
        axes[0].hist(centroids, bins=20, density=True, histtype="step", linewidth=1.5, label=name)
        axes[1].hist(probabilities, bins=20, range=(0, 1), density=True, histtype="step", linewidth=1.5, label=name)
    axes[0].set(title=f"Cosine similarity to {artist}'s centroid", xlabel="cosine similarity", ylabel="density")
    axes[1].set(title=f"Style classifier: P({artist})", xlabel="probability")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    _save(fig, out_dir / "similarity.png")

    n = len(report["prompts"])
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * n + 2), 4))
    width = 0.8 / max(len(models), 1)
    for k, (m, v) in enumerate(models.items()):
        heights = [np.nan if p["probability"] is None else p["probability"] for p in v["prompts"]]
        ax.bar([i + k * width for i in range(n)], heights, width, label=f"{m} (fluent samples)")
    ax.axhline(cal["target_heldout"]["probability"], color="k", linestyle="--", label=f"real {artist}")
    ax.axhline(cal["other_artists"]["probability"], color="grey", linestyle=":", label="real, other artists")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(n)], [str(i + 1) for i in range(n)])
    ax.set(xlabel="prompt", ylabel=f"P({artist})", ylim=(0, 1), title="Style probability per prompt")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, out_dir / "prompts.png")
    plt.close("all")


def _save(fig, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))


def write_report(report: dict[str, Any], out_dir: str | Path) -> Path:
    """Write report.json, the plots, report.md and report.html into `out_dir`; return the Markdown file."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "report.json", report)
    plot(report, out_dir)
    content = blocks(report)
    atomic_write_bytes(out_dir / "report.html", to_html(content, f"rapgpt eval: {report['artist']}").encode())
    atomic_write_bytes(out_dir / "report.md", to_markdown(content).encode())
    return out_dir / "report.md"
