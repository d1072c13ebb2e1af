import copy
import math

import pytest
import torch
from torch.nn import functional as F

from rapgpt.checkpoint import save_run
from rapgpt.data.tokenizer import CharTokenizer
from rapgpt.errors import ConfigError
from rapgpt.generate import kernels
from rapgpt.generate.inference import (
    cache_nbytes,
    format_bytes,
    load_for_inference,
    model_nbytes,
    prepare_for_inference,
)
from rapgpt.generate.linear import DenseLinear, Int8Embedding, Int8Linear, PackedLinear, Q8Linear, can_pack
from rapgpt.model import GPT, GPTConfig

# Invented verses, only to give a tiny model something learnable.
VERSES = """\
rolling through the city with the windows down low
every corner that I know got a story to show
mama said keep moving when the river runs slow
so I keep on moving and I never let go
lights on the avenue, rhythm in my shoes
paying all my dues while I'm singing out the blues
"""


def logits_of(model, idx):
    with torch.no_grad():
        return model(idx)[0].float()


def perplexity(model, idx, targets) -> float:
    with torch.no_grad():
        logits, _ = model(idx)
    return math.exp(F.cross_entropy(logits.float().flatten(0, 1), targets.flatten()).item())


@pytest.fixture(params=["native", "pytorch"])
def int8_kind(request, monkeypatch):
    """Runs a test with int8 in the native kernel's q8_0 blocks, and again with per-channel int8 in PyTorch (what
    a machine without the kernel gets); yields the int8 Linear type in use."""
    if request.param == "pytorch":
        monkeypatch.setattr(kernels, "q8_isa", lambda: 0)
        return Int8Linear
    if not kernels.q8_isa():
        pytest.skip("rapgpt's native int8 kernel does not build or run here")
    return Q8Linear


@pytest.fixture(scope="module")
def trained():
    """A tiny character model trained for a couple of seconds on the verses above, and windows of them."""
    tok = CharTokenizer.from_texts([VERSES])
    data = torch.tensor(tok.encode(VERSES))
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=48, n_layer=2, n_head=4, n_embd=64, dropout=0.0))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(100):
        starts = torch.randint(0, len(data) - 49, (8,))
        batch = torch.stack([data[s : s + 49] for s in starts])
        _, loss = model(batch[:, :-1], batch[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    windows = torch.stack([data[s : s + 49] for s in range(0, len(data) - 49, 23)])
    return model.eval(), tok, windows[:, :-1], windows[:, 1:]


@pytest.mark.parametrize("precision", [torch.float32, torch.bfloat16])
def test_int8_keeps_perplexity_within_two_percent_of_fp32(trained, precision, int8_kind):
    model, _, idx, targets = trained
    fp32 = perplexity(model, idx, targets)
    int8 = perplexity(prepare_for_inference(copy.deepcopy(model), precision, "int8"), idx, targets)
    assert fp32 < 4  # the model did learn the verses (a uniform guess is ~28)
    assert abs(int8 / fp32 - 1) < 0.02


@pytest.mark.parametrize("precision, quantize, tolerance", [
    (torch.float32, None, 1e-6), (torch.bfloat16, None, 0.06), (torch.float16, None, 0.01),
    (torch.float32, "int8", 0.08), (torch.bfloat16, "int8", 0.08),
])
def test_inference_models_stay_close_to_fp32(trained, precision, quantize, tolerance, int8_kind):
    """The largest logit error, as a fraction of the logits' spread."""
    model, _, idx, _ = trained
    fast = prepare_for_inference(copy.deepcopy(model), precision, quantize)
    reference = logits_of(model, idx[:4])
    assert (logits_of(fast, idx[:4]) - reference).abs().max() <= tolerance * reference.std()
    assert next(fast.transformer.ln_f.parameters()).dtype == precision


def test_int8_replaces_every_linear_with_weight_only_int8(trained, int8_kind):
    model, *_ = trained
    int8 = prepare_for_inference(copy.deepcopy(model), torch.float32, "int8")
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    assert len(names) == 4 * 2 + 1
    assert all(isinstance(int8.get_submodule(n), int8_kind) for n in names)
    assert int8.transformer.h[0].mlp.c_fc.weight.dtype == torch.int8


def test_int8_output_head_and_embedding_share_one_quantized_matrix(trained, int8_kind):
    model, *_ = trained
    int8 = prepare_for_inference(copy.deepcopy(model), torch.float32, "int8")
    assert isinstance(int8.lm_head, int8_kind) and isinstance(int8.transformer.wte, Int8Embedding)
    assert int8.transformer.wte.weight.data_ptr() == int8.lm_head.weight.data_ptr()
    idx = torch.tensor([[0, 3, 5]])
    head = int8.lm_head
    scales = head.scale.view(head.out_features, -1).float()  # one per row, or one per block of 32 in a row
    expected = (head.weight.float().view(*scales.shape, -1) * scales[..., None]).view(head.weight.shape)[idx]
    assert torch.equal(int8.transformer.wte(idx), expected)


def test_layers_the_int8_kernel_cannot_take_stay_in_float(int8_kind):
    """The kernels need in_features divisible by 16 (PyTorch's) or 32 (native): with n_embd 40, only mlp.c_proj
    (160 inputs) qualifies."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=1, n_head=4, n_embd=40)).eval()
    int8 = prepare_for_inference(copy.deepcopy(model), torch.float32, "int8")
    block = int8.transformer.h[0]
    assert isinstance(block.mlp.c_proj, int8_kind)
    assert isinstance(block.attn.c_attn, torch.nn.Linear) and isinstance(int8.lm_head, torch.nn.Linear)
    idx = torch.randint(0, 50, (2, 9))
    assert torch.allclose(logits_of(int8, idx), logits_of(model, idx), atol=0.05)


@pytest.fixture(params=["native", "onednn"])
def float_kind(request, monkeypatch):
    """Runs a test with fp32 and bf16 layers in the native kernel, and again in oneDNN's packed layout (what a CPU
    without AVX-512 or the kernel gets); yields the Linear type in use for a dtype."""
    if request.param == "onednn":
        monkeypatch.setattr(kernels, "dense_available", lambda dtype: False)
    elif not kernels.dense_available(torch.bfloat16):
        pytest.skip("rapgpt's native bf16 kernel does not run here")
    if not can_pack(torch.bfloat16):
        pytest.skip("oneDNN bf16 not available on this CPU")
    return lambda dtype: DenseLinear if kernels.dense_available(dtype) else PackedLinear


def test_float_linears_take_the_fastest_kernel(trained, float_kind):
    model, *_ = trained
    for dtype in (torch.float32, torch.bfloat16):
        fast = prepare_for_inference(copy.deepcopy(model), dtype)
        kind = float_kind(dtype)
        assert isinstance(fast.transformer.h[1].attn.c_proj, kind) and isinstance(fast.lm_head, kind)
        reference = logits_of(model, idx := torch.tensor([[1, 4, 2, 7]]))
        assert (logits_of(fast, idx) - reference).abs().max() <= 0.06 * reference.std()


def test_memory_shrinks_with_precision_and_int8(trained, float_kind):
    model, *_ = trained
    fp32 = model_nbytes(model)
    assert fp32 == 4 * model.num_params()
    int8 = model_nbytes(prepare_for_inference(copy.deepcopy(model), torch.float32, "int8"))
    for dtype in (torch.float32, torch.bfloat16):
        # A prepacked output head is a second copy of the tied embedding; the native kernel reads the embedding.
        head = model.lm_head.weight.numel() if float_kind(dtype) is PackedLinear else 0
        prepared = model_nbytes(prepare_for_inference(copy.deepcopy(model), dtype))
        assert prepared == dtype.itemsize * (model.num_params() + head)
    assert int8 < 0.4 * fp32


def test_cache_memory_matches_the_formula_and_the_allocated_tensors():
    config = GPTConfig(vocab_size=100, block_size=1024, n_layer=8, n_head=8, n_embd=512)
    assert cache_nbytes(config, batch=1, dtype=torch.bfloat16) == 16 * 2**20
    with torch.device("meta"):
        model = GPT(config)
    for batch, dtype in ((1, torch.bfloat16), (3, torch.float32)):
        allocated = sum(c.nbytes for c in model.new_cache(batch, dtype=dtype, device="meta"))
        assert allocated == cache_nbytes(config, batch, dtype)


def test_load_for_inference_reads_a_run_and_reports_its_memory(tmp_path, trained, caplog, int8_kind):
    model, tok, idx, _ = trained
    save_run(tmp_path / "run", model, tok)
    with caplog.at_level("INFO", logger="rapgpt"):
        loaded, tokenizer = load_for_inference(tmp_path / "run", precision="bf16", quantize="int8")
    assert tokenizer == tok and not loaded.training
    assert "bf16, int8 weights" in caplog.text and "KiB in memory" in caplog.text
    assert torch.allclose(logits_of(loaded, idx[:2]), logits_of(model, idx[:2]), atol=0.15)


def test_sizes_are_shown_in_readable_units():
    assert [format_bytes(n) for n in (512, 8 * 1024, 16 * 2**20, 3 * 2**30)] == [
        "512 B", "8.0 KiB", "16.0 MiB", "3.0 GiB"]


def test_unknown_precision_or_quantization_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        load_for_inference(tmp_path, precision="fp8")
    with pytest.raises(ConfigError, match="unknown quantization 'int4'"):
        load_for_inference(tmp_path, quantize="int4")
