import copy
import math

import pytest
import torch
from torch.nn import functional as F

from rapgpt.data.tokenizer import CharTokenizer
from rapgpt.generate import SamplingParams, generate, inference, kernels
from rapgpt.generate.fused import FusedBlock
from rapgpt.generate.inference import prepare_for_inference
from rapgpt.model import GPT, Block, GPTConfig

pytestmark = pytest.mark.skipif(not kernels.fused_available(), reason="rapgpt's fused decode step does not run here")

# head_dim 24: one full vector of 16 and a remainder of 8.
CONFIG = GPTConfig(vocab_size=50, block_size=64, n_layer=2, n_head=4, n_embd=96, dropout=0.0)
VARIANTS = {"fp32": (torch.float32, None), "bf16": (torch.bfloat16, None), "int8": (torch.float32, "int8"),
            "int8 bf16": (torch.bfloat16, "int8")}
# The batch's rows at their own positions, the last one at the end of the context.
POSITIONS = {"one row": [9], "three rows": [3, 40, CONFIG.block_size - 1]}


def inference_model(variant: str, config: GPTConfig = CONFIG) -> GPT:
    torch.manual_seed(0)
    dtype, quantize = VARIANTS[variant]
    return prepare_for_inference(GPT(config), dtype, quantize)


def filled_cache(model: GPT, rows: int, dtype: torch.dtype):
    """A cache whose every position holds keys and values already (the step must read only 0..pos of each row)."""
    cache = model.new_cache(rows)
    for layer in cache:
        layer.k.copy_(torch.randn(layer.k.shape).to(dtype))
        layer.v.copy_(torch.randn(layer.v.shape).to(dtype))
    return cache


def decode_inputs(positions: list[int], dtype: torch.dtype):
    pos = torch.tensor(positions)[:, None]
    mask = torch.arange(max(positions) + 1)[None, None, None, :] <= pos[:, None, :, None]  # as GPT.forward builds
    return torch.randn(len(positions), 1, CONFIG.n_embd).to(dtype), pos, mask


@torch.no_grad()  # the LayerNorm weights are parameters: no graph for this reference
def float64_block(block: Block, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, positions: list[int]):
    """The block's decoding step in float64 from its (fp32) weights: output, and the keys and values it stores."""
    def linear(layer, t):
        return t @ layer.weight.double().T + layer.bias.double()

    def norm(layer, t):
        return F.layer_norm(t, t.shape[-1:], layer.weight.double(), layer.bias.double(), layer.eps)

    B, C, H = x.shape[0], x.shape[-1], block.attn.n_head
    x, k, v = x.double().view(B, C), k.double().clone(), v.double().clone()
    q, new_k, new_v = linear(block.attn.c_attn, norm(block.ln_1, x)).view(B, 3, H, C // H).unbind(1)
    heads = []
    for r, p in enumerate(positions):
        k[r, :, p], v[r, :, p] = new_k[r], new_v[r]
        att = torch.softmax(torch.einsum("hd,hjd->hj", q[r], k[r, :, : p + 1]) / math.sqrt(C // H), dim=-1)
        heads.append(torch.einsum("hj,hjd->hd", att, v[r, :, : p + 1]).reshape(C))
    x = x + linear(block.attn.c_proj, torch.stack(heads))
    h = linear(block.mlp.c_fc, norm(block.ln_2, x))
    x = x + linear(block.mlp.c_proj, 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3))))
    return x.view(B, 1, C), k, v


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got.double() - expected.double()).abs().max() / expected.double().abs().max())


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_native_kernel_model_decodes_through_fused_blocks_with_the_same_state_dict(variant, monkeypatch):
    model = inference_model(variant)
    assert all(isinstance(block, FusedBlock) for block in model.transformer.h)
    monkeypatch.setattr(inference, "fuse_blocks", lambda model, dtype: None)
    assert model.state_dict().keys() == inference_model(variant).state_dict().keys()


def test_models_the_fused_step_cannot_take_keep_their_blocks(monkeypatch):
    assert not any(isinstance(b, FusedBlock) for b in prepare_for_inference(GPT(CONFIG), torch.float16).transformer.h)
    monkeypatch.setattr(kernels, "q8_isa", lambda: 0)  # as RAPGPT_KERNELS=0: no native layers, nothing to fuse
    for dtype, quantize in VARIANTS.values():
        model = prepare_for_inference(GPT(CONFIG), dtype, quantize)
        assert not any(isinstance(b, FusedBlock) for b in model.transformer.h)


@pytest.mark.parametrize("rows", list(POSITIONS))
def test_fused_step_matches_a_float64_reference_in_fp32(rows):
    positions = POSITIONS[rows]
    model = inference_model("fp32")
    block, cache = model.transformer.h[1], filled_cache(model, len(positions), torch.float32)[0]
    torch.manual_seed(1)
    x, pos, mask = decode_inputs(positions, torch.float32)
    expected, k, v = float64_block(block, x, cache.k, cache.v, positions)
    with torch.inference_mode():
        y = block(x, cache, pos, mask)
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert relative_error(y, expected) < 1e-5
    assert relative_error(cache.k, k) < 1e-6 and relative_error(cache.v, v) < 1e-6


# How far the fused step may be from the eager one: in float32, the order of its sums (and an input's rounding to
# int8 that falls the other way); in bf16, one rounding of the output.
TOLERANCE = {"fp32": 1e-6, "bf16": 2**-8, "int8": 1e-4, "int8 bf16": 2**-8}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("rows", list(POSITIONS))
def test_fused_step_matches_the_eager_block(variant, rows):
    """Output and the cache it writes, against the block's own PyTorch forward on a copy of the same cache."""
    positions = POSITIONS[rows]
    model = inference_model(variant)
    dtype = model.transformer.ln_f.weight.dtype
    block, cache = model.transformer.h[0], filled_cache(model, len(positions), dtype)[0]
    eager_cache = copy.deepcopy(cache)
    torch.manual_seed(2)
    x, pos, mask = decode_inputs(positions, dtype)
    with torch.inference_mode():
        y = block(x, cache, pos, mask)
        expected = Block.forward(block, x, eager_cache, pos, mask)
    assert y.dtype == dtype and y.shape == expected.shape
    assert relative_error(y, expected) < TOLERANCE[variant]
    for got, want in ((cache.k, eager_cache.k), (cache.v, eager_cache.v)):
        assert relative_error(got, want) < TOLERANCE[variant]
        untouched = torch.ones(got.shape[:3], dtype=torch.bool)
        untouched[torch.arange(len(positions)), :, torch.tensor(positions)] = False
        assert torch.equal(got[untouched], want[untouched])  # the step writes its own positions alone


def test_prefill_and_gradients_take_the_eager_path():
    model = inference_model("fp32")
    block, cache = model.transformer.h[0], filled_cache(model, 1, torch.float32)[0]
    x = torch.randn(1, 5, CONFIG.n_embd)
    pos = torch.arange(5)[None]
    mask = torch.arange(5)[None, None, None, :] <= pos[:, None, :, None]
    with torch.inference_mode():
        assert torch.equal(block(x, copy.deepcopy(cache), pos, mask), Block.forward(block, x, cache, pos, mask))
    x, pos, mask = decode_inputs([4], torch.float32)
    with torch.no_grad():
        fused = block(x, copy.deepcopy(cache), pos, mask)
    assert not torch.equal(block(x, copy.deepcopy(cache), pos, mask), fused)  # grad on: PyTorch's ops, not fused


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_a_batch_larger_than_the_kernel_takes_decodes_op_by_op(variant, monkeypatch):
    model = inference_model(variant)
    block = model.transformer.h[0]
    eager_rows = []
    eager = Block.forward
    monkeypatch.setattr(Block, "forward", lambda self, x, *rest: eager_rows.append(x.size(0)) or eager(self, x, *rest))
    for rows in (block.max_rows, block.max_rows + 1):
        x, pos, mask = decode_inputs([5] * rows, torch.float32)
        with torch.inference_mode():
            block(x, filled_cache(model, rows, torch.float32)[0], pos, mask)
    assert eager_rows == [block.max_rows + 1]


def test_fused_step_rejects_a_position_outside_the_cache():
    model = inference_model("fp32")
    block, cache = model.transformer.h[0], filled_cache(model, 1, torch.float32)[0]
    x, _, mask = decode_inputs([3], torch.float32)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="position 64 is outside the context of 64"):
        block(x, cache, torch.tensor([[CONFIG.block_size]]), mask)


TEXT = CharTokenizer(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ \n.,'!?-01234"))
PROMPTS = ["to", "the rhythm of", "a long line at the start"]


def tiny_model(config: GPTConfig) -> GPT:
    """Random weights large enough that the next token depends on the context (GPT's own init at this size
    repeats one token)."""
    torch.manual_seed(0)
    model = GPT(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model


def tokens(model: GPT, temperature: float = 0.0) -> list[list[int]]:
    """Three prompts of different lengths decoded together, past the context (the window slides)."""
    params = SamplingParams(temperature=temperature, max_new_tokens=2 * model.config.block_size, seed=5)
    return [c.tokens for c in generate(model, TEXT, PROMPTS, params)]


def test_fused_generation_is_token_for_token_the_one_with_kernels_off(monkeypatch, tiny_config):
    """fp32, greedy and seeded sampling at temperature 1 (whose draws follow every logit, not only the largest),
    against the same weights with RAPGPT_KERNELS=0's layers."""
    base = tiny_model(tiny_config)
    fused = prepare_for_inference(copy.deepcopy(base), torch.float32)
    assert isinstance(fused.transformer.h[0], FusedBlock)
    got = [tokens(fused, temperature) for temperature in (0.0, 1.0)]
    monkeypatch.setattr(kernels, "q8_isa", lambda: 0)
    unfused = prepare_for_inference(copy.deepcopy(base), torch.float32)
    assert not isinstance(unfused.transformer.h[0], FusedBlock)
    assert got == [tokens(unfused, temperature) for temperature in (0.0, 1.0)]
    assert len({t for row in got[1] for t in row}) >= 10


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_fused_sampling_draws_the_tokens_of_the_unfused_model_with_the_same_layers(monkeypatch, tiny_config,
                                                                                  variant):
    """Seeded sampling at temperature 1, as above, for every kind of weights."""
    base = tiny_model(tiny_config)
    dtype, quantize = VARIANTS[variant]
    got = tokens(prepare_for_inference(copy.deepcopy(base), dtype, quantize), temperature=1.0)
    monkeypatch.setattr(inference, "fuse_blocks", lambda model, dtype: None)
    assert got == tokens(prepare_for_inference(copy.deepcopy(base), dtype, quantize), temperature=1.0)
    assert len({t for row in got for t in row}) >= 10
