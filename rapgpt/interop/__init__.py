"""Interoperability: rapgpt runs to and from the formats other tools read.

    gpt2.py          the one mapping between rapgpt's GPT and Hugging Face's GPT2LMHeadModel (config and weights)
    hf_import.py     `rapgpt import-hf`: a Hugging Face GPT-2 checkpoint directory -> a rapgpt run
    hf_export.py     `rapgpt export --format hf`: a run -> a directory that `transformers` loads
    hf_tokenizer.py  the tokenizer files of that directory
    model_card.py    its README.md
    peft_export.py   `rapgpt export --format peft`: a LoRA adapter -> a PEFT adapter directory
    peft_import.py   `rapgpt import-peft`: a PEFT LoRA adapter for GPT-2 -> a rapgpt adapter
    gguf_export.py   `rapgpt export --format gguf`: a run -> one GGUF file for llama.cpp and Ollama

This module imports nothing heavy, so that the command line can list the formats quickly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rapgpt.errors import ConfigError
from rapgpt.options import setting

EXPORT_FORMATS = ("hf", "peft", "gguf")
# The types of a GGUF file's matrices (llama.cpp's names); f16 is what llama.cpp's own converter writes by default.
GGUF_TYPES = ("f32", "f16", "bf16", "q8_0")
DEFAULT_GGUF_TYPE = "f16"


@dataclass(frozen=True)
class GGUFConfig:
    """`rapgpt export --format gguf`: how the file stores the weights. Unset, it takes `DEFAULT_GGUF_TYPE`; it is
    refused with the other formats, which have no such choice."""

    type: str | None = setting(
        None, f"--format gguf: the type of the weight matrices, one of {', '.join(GGUF_TYPES)} (q8_0: 8-bit blocks "
              f"of 32; default: {DEFAULT_GGUF_TYPE})", choices=GGUF_TYPES, metavar="TYPE")


def export(
    run: str | Path, out_dir: str | Path, format: str = "hf", *, adapter: str | Path | None = None,
    merge: bool = False, base: str | Path | None = None, base_model: str | None = None, force: bool = False,
    gguf: GGUFConfig | None = None,
) -> Path:
    """Export to `out_dir` (for gguf, a file) in `format` (one of `EXPORT_FORMATS`) and return `out_dir`.

    hf and gguf: the run directory `run`, or with `adapter` and `merge` that run with the adapter merged into it;
    gguf's settings are `gguf`.
    peft: the adapter directory `run` (trained on `base`, by default the base run it records), or the adapter
    `adapter` trained on the run `run`; `base_model` is the base that adapter_config.json names.
    """
    gguf = gguf or GGUFConfig()
    if gguf.type is not None and format != "gguf":
        raise ConfigError(f"--type sets the matrices' type of a GGUF file: drop it with --format {format}")
    if format in ("hf", "gguf"):
        if base is not None or base_model is not None:
            raise ConfigError(f"--base and --base-model name the base of an adapter exported with --format peft; "
                              f"with --format {format}, RUN is the model exported (and --adapter the adapter merged "
                              "into it)")
        if format == "gguf":
            from rapgpt.interop.gguf_export import export_gguf

            return export_gguf(run, out_dir, type=gguf.type or DEFAULT_GGUF_TYPE, adapter=adapter, merge=merge,
                               force=force)
        from rapgpt.interop.hf_export import export_hf

        return export_hf(run, out_dir, adapter=adapter, merge=merge, force=force)
    if format == "peft":
        if merge:
            raise ConfigError("--merge gives a plain model, not an adapter: use --format hf with --merge, or drop "
                              "--merge to export the adapter for PEFT")
        if adapter is not None:
            if base is not None:
                raise ConfigError("RUN is the base when --adapter is given: drop --base or --adapter")
            run, base = adapter, run
        from rapgpt.interop.peft_export import export_peft

        return export_peft(run, out_dir, base, base_model=base_model, force=force)
    raise ConfigError(f"unknown export format {format!r}: choose one of {', '.join(EXPORT_FORMATS)}")
