"""LoRA fine-tuning (`rapgpt finetune`): a base run adapted to one artist through the same loop as pretraining.

The base model is loaded from its run directory, its target layers are wrapped by LoRA (`rapgpt.lora`) and every
base weight is frozen, so `fit` optimizes the adapter alone. At every evaluation the run directory receives the
adapter (adapter.safetensors + adapter_config.json, naming the base by fingerprint) and finetune.json (the base,
the data and the settings, from which `--resume` continues); the adapter of the lowest validation loss goes to
`best/`; the loop adds its metrics, curves and resumable state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rapgpt.checkpoint import load_run
from rapgpt.data.dataset import TokenDataset
from rapgpt.errors import DataError
from rapgpt.fileio import atomic_write_json
from rapgpt.lora import apply_lora, save_adapter, trainable_parameters_report
from rapgpt.options import to_dict
from rapgpt.training.config import FinetuneConfig
from rapgpt.training.loop import fit
from rapgpt.training.runtime import setup_runtime, teardown

BEST_ADAPTER = "best"
RECORD = "finetune.json"


def finetune(base: str | Path, data: str | Path, out: str | Path, config: FinetuneConfig | None = None,
             resume: bool = False) -> dict[str, Any]:
    """Train a LoRA adapter of the run at `base` on the dataset at `data`, writing it to `out`.

    The dataset must use the base's tokenizer (prepare it with `--vocab-from BASE_DATA`). Returns the last
    evaluation's record.
    """
    config = config or FinetuneConfig()
    lora_config = config.lora
    dataset = TokenDataset(data)
    out = Path(out)
    runtime = setup_runtime(config.device, config.precision, config.threads)
    try:
        model, tokenizer, base_config = load_run(base)
        if dataset.tokenizer != tokenizer:
            raise DataError(
                f"{dataset.path} was tokenized differently from the base run {base}: prepare the artist's songs "
                f"with `rapgpt prepare ... --artist NAME --vocab-from {base_config.get('data', 'BASE_DATA')}`"
            )
        torch.manual_seed(config.seed)  # LoRA's A matrices start random: the same seed, the same adapter
        apply_lora(model.train(), lora_config)
        if runtime.is_main:
            print(f"LoRA rank {lora_config.rank}, alpha {lora_config.alpha:g}"
                  f"{' (rsLoRA)' if lora_config.rslora else ''} on {', '.join(lora_config.targets)}: "
                  f"{trainable_parameters_report(model)}")
        train_config = to_dict(config)

        def save(kind: str, record: dict[str, Any]) -> None:
            if kind == "best":
                save_adapter(out / BEST_ADAPTER, model, lora_config, base_run=base)
                return
            save_adapter(out, model, lora_config, base_run=base)
            progress = {k: v for k, v in record.items() if k != "sample"}
            atomic_write_json(out / RECORD, {"base": str(Path(base).resolve()), "data": str(dataset.path.resolve()),
                                             "train_config": train_config, "progress": progress})

        identity = {
            "base": base_config["model"],
            "lora": lora_config.to_dict(),
            "tokenizer": tokenizer.to_json(),
            "data": {split: int(dataset.meta["tokens"][split]) for split in ("train", "val")},
        }
        return fit(model, config, dataset.tokens("train"), dataset.tokens("val"), out, save, runtime,
                   identity=identity, resume=resume, tokenizer=tokenizer)
    finally:
        teardown(runtime)
