"""`rapgpt export --format gguf`: a run as one GGUF file, the format llama.cpp and Ollama load.

The file is written with the `gguf` package (the format's own Python library) as llama.cpp's `gpt2` architecture:
the tensors of a Hugging Face GPT-2 under llama.cpp's names, in nn.Linear's (out, in) layout, which is GGUF's, with
GPT-2's zero biases where a rapgpt model has none. The output head is left out: llama.cpp ties it to the token
embedding when it is absent, as rapgpt does. Norms, biases and the position embedding stay float32 in every type,
as llama.cpp's own converter keeps them; the other matrices take the chosen type.

The tokenizer travels as llama.cpp's byte-level BPE (`tokenizer.ggml.model = gpt2`), with the end-of-text token as
the start token that llama.cpp puts before a prompt, as rapgpt's decoder does:
- GPT-2 BPE: GPT-2's own vocabulary and merges.
- characters: each character is one token, spelt in the byte-level alphabet, with merges that join the bytes of
  each multi-byte character and nothing more, so that llama.cpp reads exactly one token per character. One
  difference remains: llama.cpp drops a character outside the vocabulary, where rapgpt reads it as U+FFFD (id 1).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from rapgpt.checkpoint import load_run
from rapgpt.data.tokenizer import EOT_TEXT, CharTokenizer, GPT2Tokenizer, Tokenizer, gpt2_bpe_files
from rapgpt.errors import CheckpointError, ConfigError, TokenizerError
from rapgpt.fileio import atomic_write
from rapgpt.interop import GGUF_TYPES
from rapgpt.interop.gpt2 import SETTINGS, full_state
from rapgpt.model import GPT

try:
    import gguf
except ImportError as e:  # an optional extra: say how to get it when the format is asked for
    raise ConfigError("--format gguf needs the gguf package: pip install 'rapgpt[gguf]'") from e

ARCH = gguf.MODEL_ARCH.GPT2
# Tensors llama.cpp's converter keeps in float32 whatever the file type (besides every 1-D tensor).
ALWAYS_F32 = (gguf.MODEL_TENSOR.POS_EMBD,)
# A merge that never applies: both halves stand for the byte 0xFF, which UTF-8 text never holds. llama.cpp refuses
# a BPE vocabulary without merges, and an ASCII character vocabulary has none of its own.
NO_OP_MERGE = "ÿ ÿ"


def export_gguf(
    run: str | Path, out_file: str | Path, *, type: str = "f16", adapter: str | Path | None = None,
    merge: bool = False, force: bool = False,
) -> Path:
    """Write the run directory `run` (with `adapter` and `merge`: that run with the LoRA adapter merged into its
    weights) to the GGUF file `out_file`, its matrices in `type` (one of `GGUF_TYPES`); return its path."""
    if type not in GGUF_TYPES:
        raise ConfigError(f"unknown GGUF type {type!r}: choose one of {', '.join(GGUF_TYPES)}")
    if adapter is not None and not merge:
        raise ConfigError("a GGUF file holds no separate adapter: pass --merge to fold the adapter into the "
                          "exported weights")
    out_file = Path(out_file)
    if out_file.is_dir():
        raise ConfigError(f"{out_file} is a directory: --format gguf writes one file, e.g. --out model.gguf")
    if out_file.exists() and not force:
        raise CheckpointError(f"{out_file} already exists (pass --force to replace it)")
    if adapter is None:
        model, tokenizer, _ = load_run(run)
    else:
        from rapgpt.lora import load_adapted_run

        model, tokenizer, _ = load_adapted_run(run, adapter, merge=True)
    name = Path(run).resolve().name
    atomic_write(out_file, lambda tmp: write_gguf(tmp, model, tokenizer, type, name))
    return out_file


def write_gguf(path: Path, model: GPT, tokenizer: Tokenizer, type: str, name: str) -> None:
    """Write `model` and `tokenizer` as a GGUF file at `path`, its matrices in `type`."""
    c = model.config
    if c.vocab_size != tokenizer.vocab_size:
        raise CheckpointError(f"the model has {c.vocab_size} token embeddings but its tokenizer {tokenizer.vocab_size} "
                              "tokens: llama.cpp needs one token per embedding")
    qtype = gguf.GGMLQuantizationType[type.upper()]
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[ARCH])
    writer.add_name(name)
    writer.add_file_type(gguf.LlamaFileType["ALL_F32" if type == "f32" else f"MOSTLY_{type.upper()}"])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_context_length(c.block_size)
    writer.add_embedding_length(c.n_embd)
    writer.add_feed_forward_length(4 * c.n_embd)
    writer.add_block_count(c.n_layer)
    writer.add_head_count(c.n_head)
    writer.add_layer_norm_eps(SETTINGS["layer_norm_epsilon"][0])
    add_tokenizer(writer, tokenizer)
    for gguf_name, array, tensor_type in gguf_tensors(model, qtype):
        writer.add_tensor(gguf_name, array, raw_dtype=tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def gguf_tensors(model: GPT, qtype: gguf.GGMLQuantizationType) -> Iterator[tuple[str, np.ndarray, object]]:
    """(llama.cpp name, data, type) of each tensor of `model`, matrices in `qtype` (see the module docstring)."""
    names = gguf.get_tensor_name_map(ARCH, model.config.n_layer)
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    for key, tensor in full_state(model).items():
        found = names.get_type_and_name(key, try_suffixes=(".weight", ".bias"))
        if found is None:
            raise CheckpointError(f"no GGUF name for the tensor {key!r} of a GPT-2 model")
        kind, gguf_name = found
        array = tensor.to(torch.float32).numpy()
        if array.ndim == 1 or kind in ALWAYS_F32:
            yield gguf_name, array, gguf.GGMLQuantizationType.F32
            continue
        if array.shape[-1] % block:
            raise ConfigError(f"{qtype.name} stores rows in blocks of {block} values, and {key} has rows of "
                              f"{array.shape[-1]}: export this model with --type f16 or bf16")
        yield gguf_name, gguf.quants.quantize(array, qtype), qtype


def add_tokenizer(writer: gguf.GGUFWriter, tokenizer: Tokenizer) -> None:
    """The tokenizer as llama.cpp's byte-level BPE, the end-of-text token as the start and end of text."""
    if isinstance(tokenizer, GPT2Tokenizer):
        tokens, merges = gpt2_vocab()
    elif isinstance(tokenizer, CharTokenizer):
        tokens, merges = char_vocab(tokenizer)
    else:
        raise TokenizerError(f"no GGUF form for the {tokenizer.kind!r} tokenizer: llama.cpp can carry gpt2 and char")
    types = [gguf.TokenType.CONTROL if i == tokenizer.eot_id else gguf.TokenType.NORMAL for i in range(len(tokens))]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges or [NO_OP_MERGE])
    writer.add_bos_token_id(tokenizer.eot_id)
    writer.add_eos_token_id(tokenizer.eot_id)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)


def gpt2_vocab() -> tuple[list[str], list[str]]:
    """GPT-2's tokens in id order and its merges, from the files rapgpt's tokenizer is built from."""
    encoder_file, merges_file = gpt2_bpe_files()
    encoder: dict[str, int] = json.loads(encoder_file.read_text(encoding="utf-8"))
    tokens = sorted(encoder, key=encoder.__getitem__)
    lines = merges_file.read_text(encoding="utf-8").splitlines()
    return tokens, [line for line in lines if line and not line.startswith("#version")]


def char_vocab(tokenizer: CharTokenizer) -> tuple[list[str], list[str]]:
    """Each character as a byte-level token, and the merges that join the bytes of the multi-byte ones."""
    byte_char = gguf.vocab.bytes_to_unicode()
    tokens, merges = [], {}
    for i, char in enumerate(tokenizer.itos):
        if i == tokenizer.eot_id:
            tokens.append(EOT_TEXT)
            continue
        pieces = [byte_char[b] for b in char.encode("utf-8")]
        tokens.append("".join(pieces))
        for n in range(1, len(pieces)):
            merges["".join(pieces[:n]) + " " + pieces[n]] = None  # ordered and without repeats
    return tokens, list(merges)
