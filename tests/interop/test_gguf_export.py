"""`rapgpt export --format gguf`: the file's contents, read back with the gguf package, and the file run by llama.cpp
itself (through llama-cpp-python) against rapgpt on the same weights."""

import math

import gguf
import numpy as np
import pytest
import torch

from rapgpt.checkpoint import load_run
from rapgpt.cli import main
from rapgpt.data.tokenizer import CharTokenizer
from rapgpt.errors import CheckpointError, ConfigError
from rapgpt.generate import SamplingParams, generate
from rapgpt.generate.inference import load_for_inference
from rapgpt.interop import GGUFConfig, export
from rapgpt.interop.gguf_export import export_gguf
from rapgpt.lora import load_adapted_run
from rapgpt.model import GPT, GPTConfig


def read_tensors(path) -> dict[str, tuple[str, np.ndarray]]:
    """Each tensor of a GGUF file: its type name and its values as float32, in numpy's (rows, columns) order."""
    reader = gguf.GGUFReader(path)
    return {t.name: (t.tensor_type.name, gguf.quants.dequantize(t.data, t.tensor_type).reshape(t.shape[::-1]))
            for t in reader.tensors}


def read_strings(path, key: str) -> list[str]:
    field = gguf.GGUFReader(path).fields[key]
    return [bytes(field.parts[i]).decode() for i in field.data]


@pytest.mark.parametrize("type, tolerance", [("f32", 0), ("f16", 2**-11), ("bf16", 2**-8), ("q8_0", 1 / 127)])
def test_matrices_take_the_type_and_keep_the_weights(tmp_path, make_run, make_tokenizer, type, tolerance):
    model = make_run(tmp_path / "run", make_tokenizer("char"), bias=False)
    tensors = read_tensors(export_gguf(tmp_path / "run", tmp_path / "m.gguf", type=type))
    qkv_type, qkv = tensors["blk.1.attn_qkv.weight"]
    expected = model.transformer.h[1].attn.c_attn.weight.detach().numpy()
    assert qkv_type == type.upper() and qkv.shape == expected.shape  # nn.Linear's (out, in) layout
    # Relative to each row's largest weight: q8_0 rounds to half a step of its block's scale.
    assert np.abs(qkv - expected).max() <= tolerance * np.abs(expected).max()
    assert tensors["token_embd.weight"][0] == type.upper()
    # Norms, biases (zero where the model has none) and positions stay float32, exactly.
    assert tensors["position_embd.weight"][0] == "F32"
    assert np.array_equal(tensors["position_embd.weight"][1], model.transformer.wpe.weight.detach().numpy())
    assert tensors["blk.0.ffn_up.bias"][0] == "F32" and not tensors["blk.0.ffn_up.bias"][1].any()
    assert "output.weight" not in tensors  # llama.cpp ties the head to token_embd, as rapgpt does
    assert len(tensors) == 4 + 12 * model.config.n_layer


def test_char_vocabulary_is_spelt_byte_by_byte_with_merges_for_multibyte_characters(tmp_path, make_run):
    tokenizer = CharTokenizer.from_texts(["ab\n é🎤"])
    make_run(tmp_path / "run", tokenizer)
    path = export_gguf(tmp_path / "run", tmp_path / "m.gguf", type="f32")
    decode = {c: b for b, c in gguf.vocab.bytes_to_unicode().items()}
    tokens = read_strings(path, "tokenizer.ggml.tokens")
    assert tokens[0] == "<|endoftext|>"
    assert [bytes(decode[c] for c in t).decode() for t in tokens[1:]] == tokenizer.itos[1:]
    # é: 2 bytes, one merge; 🎤: 4 bytes, three merges; U+FFFD (id 1): 3 bytes, two merges.
    assert len(read_strings(path, "tokenizer.ggml.merges")) == 1 + 3 + 2


def test_refusals_name_the_fix(tmp_path, make_run, make_tokenizer, make_adapter):
    make_run(tmp_path / "run", make_tokenizer("char"))
    (tmp_path / "taken.gguf").write_text("keep me")
    with pytest.raises(CheckpointError, match="already exists.*--force"):
        export_gguf(tmp_path / "run", tmp_path / "taken.gguf")
    assert (tmp_path / "taken.gguf").read_text() == "keep me"
    with pytest.raises(ConfigError, match="is a directory"):
        export_gguf(tmp_path / "run", tmp_path)
    with pytest.raises(ConfigError, match="--type sets"):
        export(tmp_path / "run", tmp_path / "hf", "hf", gguf=GGUFConfig(type="q8_0"))
    with pytest.raises(ConfigError, match="unknown GGUF type 'q4_k'"):
        export_gguf(tmp_path / "run", tmp_path / "m.gguf", type="q4_k")
    make_adapter(tmp_path / "lora", ("c_attn",))
    with pytest.raises(ConfigError, match="--merge"):
        export_gguf(tmp_path / "lora" / "base", tmp_path / "m.gguf", adapter=tmp_path / "lora" / "adapter")
    assert not (tmp_path / "m.gguf").exists()


def test_q8_0_refuses_rows_that_are_not_whole_blocks(tmp_path, make_tokenizer):
    from rapgpt.checkpoint import save_run

    tokenizer = make_tokenizer("char")
    save_run(tmp_path / "run", GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=8, n_layer=1, n_head=2,
                                             n_embd=24)), tokenizer)
    with pytest.raises(ConfigError, match="blocks of 32 values.*--type f16"):
        export_gguf(tmp_path / "run", tmp_path / "m.gguf", type="q8_0")
    export_gguf(tmp_path / "run", tmp_path / "m.gguf", type="f16")


# llama.cpp itself, through llama-cpp-python.

@pytest.fixture
def llama():
    """Load a GGUF file in llama.cpp with every logit kept and a float32 KV cache (llama.cpp's default is f16)."""
    llama_cpp = pytest.importorskip(
        "llama_cpp", reason="llama-cpp-python is not installed (scripts/install-llama-cpp.sh builds it)")

    def load(path, n_ctx: int):
        return llama_cpp.Llama(str(path), n_ctx=n_ctx, n_batch=n_ctx, n_threads=1, logits_all=True, verbose=False,
                               type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32, seed=0)

    return load


def llama_logits(llm, ids: list[int]) -> torch.Tensor:
    llm.reset()
    llm.eval(ids)
    return torch.from_numpy(np.array(llm.scores[: len(ids)]))


def rapgpt_logits(model: GPT, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids]))[0][0]


@pytest.mark.parametrize("kind", ["gpt2", "char"])
def test_llama_cpp_tokenizes_and_detokenizes_as_rapgpt_with_the_start_token(tmp_path, make_run, make_tokenizer,
                                                                             llama, invented_text, kind):
    tokenizer = make_tokenizer(kind)
    make_run(tmp_path / "run", tokenizer)
    llm = llama(export_gguf(tmp_path / "run", tmp_path / "m.gguf", type="f32"), 48)
    ids = tokenizer.encode(invented_text)
    assert llm.tokenize(invented_text.encode()) == [tokenizer.eot_id, *ids]
    assert llm.detokenize(ids).decode() == invented_text
    assert llm.token_bos() == llm.token_eos() == tokenizer.eot_id


@pytest.mark.parametrize("kind", ["gpt2", "char"])
def test_llama_cpp_greedy_tokens_equal_rapgpt_for_f32(tmp_path, make_run, make_tokenizer, llama, kind):
    tokenizer = make_tokenizer(kind)
    make_run(tmp_path / "run", tokenizer, bias=kind == "gpt2")
    llm = llama(export(tmp_path / "run", tmp_path / "m.gguf", "gguf", gguf=GGUFConfig(type="f32")), 48)
    model, _ = load_for_inference(tmp_path / "run")
    (ours,) = generate(model, tokenizer, ["Neon drips"], SamplingParams(temperature=0, max_new_tokens=32))
    prompt = [tokenizer.eot_id, *tokenizer.encode("Neon drips")]
    theirs = [t for t, _ in zip(llm.generate(prompt, temp=0.0), range(32))]
    assert len(ours.tokens) >= 8
    assert theirs[: len(ours.tokens)] == ours.tokens
    if ours.finish_reason == "eot":
        assert theirs[len(ours.tokens)] == tokenizer.eot_id


@pytest.mark.parametrize("type, tolerance", [("f32", 5e-4), ("f16", 2e-3), ("bf16", 1.5e-2)])
def test_llama_cpp_logits_are_close_to_rapgpt_float32(tmp_path, make_run, make_tokenizer, llama, type, tolerance):
    tokenizer = make_tokenizer("gpt2")
    model = make_run(tmp_path / "run", tokenizer)
    llm = llama(export_gguf(tmp_path / "run", tmp_path / "m.gguf", type=type), 48)
    ids = torch.randint(0, tokenizer.vocab_size, (48,), generator=torch.Generator().manual_seed(1)).tolist()
    ours, theirs = rapgpt_logits(model, ids), llama_logits(llm, ids)
    # The error grows with the logits' spread: compare against it.
    assert (theirs - ours).abs().max() <= tolerance * ours.abs().max()


def perplexity(logits: torch.Tensor, ids: list[int]) -> float:
    return math.exp(torch.nn.functional.cross_entropy(logits[:-1].double(), torch.tensor(ids[1:])).item())


def test_llama_cpp_q8_0_perplexity_is_within_one_percent_of_rapgpt_float32(tmp_path, make_tokenizer, llama,
                                                                          invented_text):
    """On a model trained for a few steps, so that its perplexity means something."""
    from rapgpt.checkpoint import save_run

    tokenizer = make_tokenizer("char")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=2, n_head=2, n_embd=64))
    ids = [tokenizer.eot_id, *tokenizer.encode(invented_text * 2)][:64]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(40):
        loss = model(torch.tensor([ids[:-1]]), torch.tensor([ids[1:]]))[1]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    save_run(tmp_path / "run", model.eval(), tokenizer)
    llm = llama(export_gguf(tmp_path / "run", tmp_path / "m.gguf", type="q8_0"), 64)
    ours, theirs = perplexity(rapgpt_logits(model, ids), ids), perplexity(llama_logits(llm, ids), ids)
    assert ours < tokenizer.vocab_size / 4  # it did learn the text
    assert abs(theirs / ours - 1) < 0.01


def test_cli_exports_a_merged_adapter_that_llama_cpp_runs_as_rapgpt(tmp_path, make_adapter, llama, capsys):
    make_adapter(tmp_path, ("c_attn", "wte"))
    out = tmp_path / "adapted.gguf"
    main(["export", str(tmp_path / "base"), "--adapter", str(tmp_path / "adapter"), "--merge", "--format", "gguf",
          "--type", "f32", "--out", str(out)])
    assert f"-> {out} (gguf, merged)" in capsys.readouterr().out
    merged, tokenizer, _ = load_adapted_run(tmp_path / "base", tmp_path / "adapter", merge=True)
    base = load_run(tmp_path / "base")[0]
    ids = [tokenizer.eot_id, *tokenizer.encode("Rhymes on the 9 train")]
    theirs, ours = llama_logits(llama(out, 48), ids), rapgpt_logits(merged, ids)
    assert (theirs - ours).abs().max() <= 1e-4 * ours.abs().max()
    assert (rapgpt_logits(base, ids) - ours).abs().max() > 100 * (theirs - ours).abs().max()  # the adapter counts

