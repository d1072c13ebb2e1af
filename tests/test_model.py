import copy
import math

import pytest
import torch
from torch.nn import functional as F

from rapgpt.errors import ConfigError
from rapgpt.model import GPT, PRESETS, GPTConfig, causal_attention, gelu_tanh, preset_config


def naive_forward(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """The model's forward written out by hand with an explicit masked softmax, as the reference."""
    c = model.config
    B, T = idx.shape
    t = model.transformer
    x = t.wte(idx) + t.wpe(torch.arange(T))
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for block in t.h:
        h = F.layer_norm(x, (c.n_embd,), block.ln_1.weight, block.ln_1.bias)
        q, k, v = (h @ block.attn.c_attn.weight.T + block.attn.c_attn.bias).split(c.n_embd, dim=2)
        q, k, v = (z.view(B, T, c.n_head, c.head_dim).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(c.head_dim)
        att = att.masked_fill(~causal, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, c.n_embd)
        x = x + y @ block.attn.c_proj.weight.T + block.attn.c_proj.bias
        h = F.layer_norm(x, (c.n_embd,), block.ln_2.weight, block.ln_2.bias)
        h = h @ block.mlp.c_fc.weight.T + block.mlp.c_fc.bias
        h = 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3)))
        x = x + h @ block.mlp.c_proj.weight.T + block.mlp.c_proj.bias
    x = F.layer_norm(x, (c.n_embd,), t.ln_f.weight, t.ln_f.bias)
    return x @ t.wte.weight.T


def test_forward_matches_naive_attention_reference(tiny_model):
    idx = torch.randint(0, tiny_model.config.vocab_size, (3, 17))
    with torch.no_grad():
        logits, _ = tiny_model(idx)
        expected = naive_forward(tiny_model.double(), idx)
    assert torch.allclose(logits.double(), expected, atol=1e-5)


def test_loss_is_cross_entropy_of_logits_and_ignores_minus_one(tiny_model):
    idx = torch.randint(0, 67, (2, 9))
    targets = torch.randint(0, 67, (2, 9))
    targets[0, :4] = -1
    logits, loss = tiny_model(idx, targets)
    keep = targets.flatten() != -1
    expected = F.cross_entropy(logits.flatten(0, 1)[keep], targets.flatten()[keep])
    assert torch.allclose(loss, expected)


def test_cached_logits_match_full_recompute(tiny_model):
    idx = torch.randint(0, 67, (1, 20))
    with torch.no_grad():
        full, _ = tiny_model(idx)
        cache = tiny_model.new_cache(1)
        prefill, _ = tiny_model(idx[:, :12], cache=cache, input_pos=torch.arange(12)[None])
        steps = [prefill]
        for t in range(12, 20):
            step, _ = tiny_model(idx[:, t : t + 1], cache=cache, input_pos=torch.tensor([[t]]))
            steps.append(step)
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)


def test_rows_of_different_lengths_share_a_cache(tiny_model):
    """Right-padded rows with their own positions give each row the logits it has alone."""
    a, b = torch.randint(0, 67, (1, 10)), torch.randint(0, 67, (1, 6))
    padded = torch.cat([a, torch.cat([b, torch.zeros(1, 4, dtype=torch.long)], dim=1)])
    with torch.no_grad():
        cache = tiny_model.new_cache(2)
        logits, _ = tiny_model(padded, cache=cache, input_pos=torch.arange(10).expand(2, 10))
        alone_b, _ = tiny_model(b)
        nxt = torch.tensor([[5], [7]])
        step, _ = tiny_model(nxt, cache=cache, input_pos=torch.tensor([[10], [6]]))
        alone_b_next, _ = tiny_model(torch.cat([b, nxt[1:]], dim=1))
    assert torch.allclose(logits[1, :6], alone_b[0], atol=1e-5)
    assert torch.allclose(step[1, 0], alone_b_next[0, -1], atol=1e-5)


def test_gpt2_init_statistics():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=1000, block_size=64, n_layer=4, n_head=4, n_embd=256))
    params = dict(model.named_parameters())
    assert params["transformer.h.0.attn.c_attn.weight"].std().item() == pytest.approx(0.02, rel=0.02)
    assert params["transformer.wte.weight"].std().item() == pytest.approx(0.02, rel=0.02)
    assert params["transformer.h.0.mlp.c_proj.weight"].std().item() == pytest.approx(0.02 / math.sqrt(8), rel=0.02)
    assert params["transformer.h.0.attn.c_attn.bias"].abs().max().item() == 0.0
    assert model.lm_head.weight is model.transformer.wte.weight


def test_gpt2_preset_has_124m_parameters():
    with torch.device("meta"):
        model = GPT(preset_config("gpt2", vocab_size=50257))
    assert model.num_params() == 124_439_808


def test_presets_and_overrides():
    assert set(PRESETS) >= {"char-10m", "rap-small", "gpt2", "gpt2-medium", "gpt2-large"}
    config = preset_config("char-10m", vocab_size=100, dropout=0.0)
    assert (config.n_layer, config.n_head, config.n_embd, config.block_size, config.dropout) == (6, 6, 384, 256, 0.0)
    with pytest.raises(ConfigError, match="unknown preset"):
        preset_config("gpt5", vocab_size=10)
    with pytest.raises(ConfigError, match="divisible"):
        GPTConfig(n_embd=100, n_head=3)


def test_cache_rows_are_views_that_write_into_the_batch_cache(tiny_model):
    cache = tiny_model.new_cache(3)
    slot = [c.rows(1, 2) for c in cache]
    idx = torch.randint(0, 67, (1, 5))
    with torch.no_grad():
        tiny_model(idx, cache=slot, input_pos=torch.arange(5)[None])
    for c in cache:
        assert c.k[1, :, :5].abs().sum() > 0 and c.k[[0, 2]].abs().sum() == 0 and c.k[1, :, 5:].abs().sum() == 0


def test_rows_at_different_positions_write_where_each_one_is(tiny_model):
    """A batched decoding step (rows at different positions) stores the same keys as each row alone."""
    a, b = torch.randint(0, 67, (1, 9)), torch.randint(0, 67, (1, 4))
    with torch.no_grad():
        batch = tiny_model.new_cache(2)
        for row, seq in enumerate((a, b)):
            tiny_model(seq[:, :-1], cache=[c.rows(row, row + 1) for c in batch],
                       input_pos=torch.arange(seq.size(1) - 1)[None])
        tiny_model(torch.cat([a[:, -1:], b[:, -1:]]), cache=batch, input_pos=torch.tensor([[8], [3]]))
        for row, seq in enumerate((a, b)):
            alone = tiny_model.new_cache(1)
            tiny_model(seq, cache=alone, input_pos=torch.arange(seq.size(1))[None])
            n = seq.size(1)
            for c, ref in zip(batch, alone):
                assert torch.allclose(c.k[row, :, :n], ref.k[0, :, :n], atol=1e-6)
                assert torch.allclose(c.v[row, :, :n], ref.v[0, :, :n], atol=1e-6)


def test_bf16_cached_decoding_stays_close_to_the_fp32_recompute(tiny_model):
    """The bf16 cache is read back in float32 for decoding attention: logits stay within bf16 rounding."""
    idx = torch.randint(0, 67, (1, 24))
    with torch.no_grad():
        full, _ = tiny_model(idx)
        bf16 = copy.deepcopy(tiny_model).to(torch.bfloat16)
        cache = bf16.new_cache(1)
        assert cache[0].k.dtype == torch.bfloat16
        bf16(idx[:, :8], cache=cache, input_pos=torch.arange(8)[None])
        steps = [bf16(idx[:, t : t + 1], cache=cache, input_pos=torch.tensor([[t]]))[0] for t in range(8, 24)]
    assert (torch.cat(steps, dim=1).float() - full[:, 8:]).abs().max() < 0.05 * full.std()

def naive_attention(q, k, v):
    T = q.size(-2)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    return att.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool)), float("-inf")).softmax(-1) @ v


@pytest.mark.parametrize("T", [1, 37, 256, 600])
def test_bf16_attention_and_its_gradients_match_the_float64_reference(T):
    """On CPUs, bf16 attention up to 512 tokens takes the explicit path, beyond it the fused kernel."""
    torch.manual_seed(T)
    qkv = [torch.randn(2, 3, T, 16, dtype=torch.float64) for _ in range(3)]
    grad = torch.randn(2, 3, T, 16, dtype=torch.float64)
    low = [t.bfloat16().requires_grad_(True) for t in qkv]
    exact = [t.clone().requires_grad_(True) for t in qkv]
    y_low, y_exact = causal_attention(*low, dropout=0.0), naive_attention(*exact)
    y_low.backward(grad.bfloat16())
    y_exact.backward(grad)
    assert y_low.dtype == torch.bfloat16
    assert (y_low.double() - y_exact).abs().max() < 0.03
    for a, b in zip(low, exact):
        assert (a.grad.double() - b.grad).norm() <= 0.03 * b.grad.norm()  # (q and k get none when T = 1)


def test_gelu_matches_gpt2_tanh_formula_eager_and_compiled():
    x = torch.linspace(-8, 8, 1001, dtype=torch.float64)
    formula = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    assert torch.allclose(gelu_tanh(x), formula, atol=1e-12)
    sigmoid_form = x * torch.sigmoid(math.sqrt(8 / math.pi) * (x + 0.044715 * x * x * x))  # the compiled form
    assert torch.allclose(sigmoid_form, formula, atol=1e-12)


def test_training_loss_without_logits_matches_the_loss_with_them(tiny_model):
    idx, targets = torch.randint(0, 67, (2, 9)), torch.randint(0, 67, (2, 9))
    targets[1, :3] = -1
    logits, loss = tiny_model(idx, targets)
    none, fused = tiny_model(idx, targets, return_logits=False)
    assert none is None and logits.shape == (2, 9, 67)
    assert torch.allclose(fused, loss, atol=1e-6)


def test_bf16_autocast_forward_matches_fp32_closely(tiny_model):
    idx = torch.randint(0, 67, (2, 20))
    with torch.no_grad():
        exact, _ = tiny_model(idx)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low, _ = tiny_model(idx)
    assert low.dtype == torch.bfloat16
    assert (low.float() - exact).abs().max() < 0.05 * exact.abs().max()


def test_attention_dropout_drops_weights_in_both_paths():
    torch.manual_seed(0)
    for dtype in (torch.bfloat16, torch.float32):  # the explicit path, then the fused kernel
        q, k, v = (torch.randn(1, 2, 64, 8).to(dtype) for _ in range(3))
        exact = causal_attention(q, k, v, dropout=0.0)
        dropped = causal_attention(q, k, v, dropout=0.5)
        assert torch.isfinite(dropped).all() and not torch.allclose(dropped.float(), exact.float(), atol=1e-2)
