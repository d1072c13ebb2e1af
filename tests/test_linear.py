import copy
import logging

import pytest
import torch

from rapgpt.generate import kernels
from rapgpt.generate import linear as linear_module
from rapgpt.generate.inference import prepare_for_inference
from rapgpt.generate.linear import (
    INT8_MM,
    Int8Linear,
    PackedLinear,
    can_pack,
    int8_matmul,
    private_op,
    quantize_per_channel,
)
from rapgpt.model import GPT, GPTConfig


def reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    y = x.double() @ weight.double().T
    return y if bias is None else y + bias.double()


def linear(n_in: int, n_out: int, bias: bool, dtype: torch.dtype) -> torch.nn.Linear:
    torch.manual_seed(n_in + n_out)
    layer = torch.nn.Linear(n_in, n_out, bias=bias).to(dtype)
    if bias:
        torch.nn.init.normal_(layer.bias)
    return layer


@pytest.mark.parametrize("dtype, rel", [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)])
@pytest.mark.parametrize("shape", [(1, 1, 64), (3, 17, 64), (5, 64)])
@pytest.mark.parametrize("bias", [True, False])
def test_packed_linear_matches_a_float64_reference(dtype, rel, shape, bias):
    if not can_pack(dtype):
        pytest.skip(f"no oneDNN {dtype} on this CPU")
    layer = linear(64, 67, bias, dtype)
    x = torch.randn(shape).to(dtype)
    y = PackedLinear(layer)(x)
    expected = reference(x, layer.weight, layer.bias)
    assert y.dtype == dtype and y.shape == expected.shape
    assert (y.double() - expected).abs().max() <= rel * expected.abs().max()


def test_per_channel_quantization_is_within_half_a_step_of_each_weight():
    w = torch.randn(48, 32) * torch.logspace(-3, 0, 48)[:, None]  # channels of very different ranges
    q, scale = quantize_per_channel(w)
    assert q.dtype == torch.int8 and scale.shape == (48,)
    step = scale.float()[:, None]
    error = (q.float() * step - w).abs()
    assert (error <= 0.5 * step + w.abs() * 2**-8).all()  # half a step, plus the bf16 rounding of the scale
    assert q.abs().amax(dim=1).min() >= 126  # each channel uses its whole int8 range


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(1, 1, 64), (2, 9, 64)])
def test_int8_linear_computes_bf16_inputs_times_dequantized_weights(dtype, shape):
    layer = linear(64, 48, True, torch.float32)
    int8 = Int8Linear.from_linear(layer, dtype)
    x = torch.randn(shape).to(dtype)
    y = int8(x)
    dequantized = int8.weight.double() * int8.scale.double()[:, None]
    expected = reference(x.to(torch.bfloat16), dequantized, layer.bias)
    assert y.dtype == dtype
    assert (y.double() - expected).abs().max() <= 1e-2 * expected.abs().max()  # bf16 output rounding


def test_private_ops_are_found_and_a_missing_one_is_logged_once(caplog):
    assert private_op(INT8_MM) is torch._weight_int8pack_mm
    assert private_op("mkldnn._linear_pointwise") is torch.ops.mkldnn._linear_pointwise
    private_op.cache_clear()
    with caplog.at_level(logging.INFO, logger="rapgpt"):
        assert private_op("mkldnn._no_such_op") is None
        assert private_op("mkldnn._no_such_op") is None
    assert [r.getMessage() for r in caplog.records if "_no_such_op" in r.getMessage()] == [
        f"notice: this PyTorch ({torch.__version__}) has no mkldnn._no_such_op: using plain PyTorch instead (slower)"
    ]


@pytest.mark.parametrize("rows", [1, 5])
def test_int8_fallback_computes_what_the_private_kernel_computes(rows):
    q, scale = quantize_per_channel(torch.randn(48, 64))
    x = torch.randn(rows, 64).to(torch.bfloat16)
    expected = torch._weight_int8pack_mm(x, q, scale)
    y = int8_matmul(x, q, scale)
    assert y.dtype == expected.dtype == torch.bfloat16
    assert (y.float() - expected.float()).abs().max() <= 2**-7 * expected.float().abs().max()  # one bf16 rounding


@pytest.mark.parametrize("dtype, quantize", [(torch.float32, None), (torch.bfloat16, None), (torch.float32, "int8")])
def test_without_the_private_ops_inference_falls_back_to_plain_pytorch_with_the_same_logits(monkeypatch, dtype,
                                                                                           quantize):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=40, block_size=16, n_layer=2, n_head=2, n_embd=32)).eval()
    idx = torch.randint(0, 40, (2, 16))
    monkeypatch.setattr(kernels, "dense_available", lambda dtype: False)  # oneDNN's layers, not the native kernel's
    monkeypatch.setattr(kernels, "q8_isa", lambda: 0)
    fast = prepare_for_inference(copy.deepcopy(model), dtype, quantize)
    assert quantize or not can_pack(dtype) or isinstance(fast.lm_head, PackedLinear)
    monkeypatch.setattr(linear_module, "private_op", lambda name: None)  # a PyTorch without any of them
    plain = prepare_for_inference(copy.deepcopy(model), dtype, quantize)
    assert not any(isinstance(m, PackedLinear) for m in plain.modules())
    with torch.no_grad():
        expected, got = fast(idx)[0].float(), plain(idx)[0].float()
    assert (got - expected).abs().max() <= (1e-5 if dtype == torch.float32 else 2e-2) * expected.abs().max()
