import pytest
import torch

from rapgpt.generate.linear import Int8Linear, PackedLinear, can_pack, quantize_per_channel


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
