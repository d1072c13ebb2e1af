"""The model card (README.md) of an exported model, written from whatever the run directory records.

Runs made by `rapgpt train` record their data (`data`) and settings (`train_config`) in config.json and their
evaluations in metrics.jsonl; a run lacking any of these still gets a card that says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rapgpt.data.tokenizer import Tokenizer
from rapgpt.model import GPT

MAX_VALUE_CHARS = 80
USAGE = """## Usage

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("path/to/this/directory")
tokenizer = AutoTokenizer.from_pretrained("path/to/this/directory")
ids = tokenizer("Mic check", return_tensors="pt").input_ids
print(tokenizer.decode(model.generate(ids, do_sample=True, max_new_tokens=200)[0]))
```"""
LIMITATIONS = """## Limitations

The model imitates the lyrics it was trained on, including their language and themes, and can repeat passages of
them. Hugging Face tokenizers read the text `<|endoftext|>` as the end-of-text token, where rapgpt treats it as
ordinary text."""


def model_card(run_dir: Path, run_config: dict[str, Any], model: GPT, tokenizer: Tokenizer) -> str:
    c = model.config
    sections = [
        "---\nlibrary_name: transformers\npipeline_tag: text-generation\ntags:\n- rapgpt\n- gpt2\n- lyrics\n---",
        f"# {run_dir.resolve().name}",
        "A GPT-2 language model for song lyrics made with rapgpt and exported for Hugging Face `transformers`."
        + imported_note(run_config) + merged_note(run_config),
        "## Model\n\n" + table({
            "architecture": "GPT2LMHeadModel (output head tied to the token embedding)",
            "layers": c.n_layer, "heads": c.n_head, "width": c.n_embd, "context (tokens)": c.block_size,
            "vocabulary": c.vocab_size, "parameters": f"{model.num_params():,}",
        }) + "\n\nTokenizer: " + describe(tokenizer),
        "## Training data\n\n" + (table(data_facts(run_config)) or "The run does not record its training data."),
        "## Training settings\n\n" + (table(training_facts(run_config)) or "The run does not record its settings."),
        "## Metrics\n\n" + metrics_section(run_dir / "metrics.jsonl"),
        USAGE,
        LIMITATIONS,
    ]
    return "\n\n".join(sections) + "\n"


def imported_note(run_config: dict[str, Any]) -> str:
    source = run_config.get("imported_from")
    hub = source.get("hub") if isinstance(source, dict) else None
    if isinstance(hub, dict):
        return (f" Its weights were imported from the Hugging Face Hub model `{hub.get('repo_id')}` at commit "
                f"{hub.get('commit')}.")
    if isinstance(source, dict) and "path" in source:
        return f" Its weights were imported from the Hugging Face checkpoint at `{source['path']}`."
    return ""


def merged_note(run_config: dict[str, Any]) -> str:
    """What `load_adapted_run` records of an adapter merged into the exported weights."""
    lora = (run_config.get("adapter") or {}).get("lora")
    if not isinstance(lora, dict):
        return ""
    targets = ", ".join(f"`{t}`" for t in lora.get("targets", []))
    return f" A LoRA adapter (rank {lora.get('rank')}, on {targets}) is merged into its weights."


def describe(tokenizer: Tokenizer) -> str:
    if tokenizer.kind == "gpt2":
        return "GPT-2's byte-level BPE (vocab.json, merges.txt), with `<|endoftext|>` as bos and eos."
    if tokenizer.kind == "bpe":
        return (f"a byte-level BPE of {tokenizer.vocab_size:,} ids trained on the lyrics (tokenizer.json); id 0 is "
                "`<|endoftext|>` (bos and eos).")
    return (f"one token per character (tokenizer.json) for {tokenizer.vocab_size - 2} characters; id 0 is "
            "`<|endoftext|>` (bos and eos) and id 1, U+FFFD, stands for any character outside the vocabulary.")


def data_facts(run_config: dict[str, Any]) -> dict[str, Any]:
    """The run's `data` record, with the statistics of its dataset's meta.json when that is still on disk."""
    data = run_config.get("data")
    if data is None:
        return {}
    facts = flatten(data if isinstance(data, dict) else {"dataset": data})
    for value in (data.values() if isinstance(data, dict) else [data]):
        meta_file = Path(value) / "meta.json" if isinstance(value, str) else None
        if meta_file is not None and meta_file.is_file():
            try:
                meta = json.loads(meta_file.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            facts.update(flatten({k: meta[k] for k in ("tokens", "songs", "stats") if k in meta}))
    return facts


def training_facts(run_config: dict[str, Any]) -> dict[str, Any]:
    facts = flatten(run_config.get("train_config") or {})
    if "step" in run_config:
        facts["steps trained"] = run_config["step"]
    return facts


def metrics_section(path: Path) -> str:
    records = read_records(path)
    if not records:
        return "The run has no recorded evaluations (metrics.jsonl)."
    lines = [f"{len(records)} evaluations were recorded. The last:", "", table(flatten(records[-1]))]
    scored = [r for r in records if isinstance(r.get("val_loss"), (int, float))]
    if scored:
        best = min(scored, key=lambda r: r["val_loss"])
        lines += ["", f"Lowest validation loss: {fmt(best['val_loss'])} (step {best.get('step', '?')})."]
    return "\n".join(lines)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a metrics.jsonl, skipping lines that are not (e.g. a last line cut by a crash)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level with dotted keys: {"tokens": {"train": 5}} -> {"tokens.train": 5}."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        value = ", ".join(map(fmt, value))
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


def table(facts: dict[str, Any]) -> str:
    """A two-column Markdown table, or "" for no facts."""
    if not facts:
        return ""
    return "\n".join(["| | value |", "|---|---|", *(f"| {fmt(k)} | {fmt(v)} |" for k, v in facts.items())])
