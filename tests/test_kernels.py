import logging

import pytest
import torch

from rapgpt.generate import kernels
from rapgpt.generate.linear import (
    DENSE_MAX_ROWS,
    KERNEL_MAX_ROWS,
    Q8_BLOCK,
    DenseLinear,
    Q8Linear,
    dequantize,
    quantize_blocks,
)


def native_isas() -> list[int]:
    """The kernel's instruction sets that this CPU runs (none when the kernel does not build here)."""
    return list(range(1, kernels.q8_isa() + 1))


needs_kernel = pytest.mark.skipif(not kernels.q8_isa(), reason="rapgpt's native int8 kernel does not build here")


def rounded_to_int8_blocks(x: torch.Tensor) -> torch.Tensor:
    """What the kernel multiplies: each block of 32 inputs rounded to int8 steps of its own absolute max / 127."""
    blocks = x.double().view(x.shape[0], -1, Q8_BLOCK)
    step = blocks.abs().amax(dim=-1, keepdim=True) / 127
    return (torch.round(blocks / step.clamp(min=1e-300)) * step).view(x.shape)


def q8_reference(x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """The kernel's result in float64, from the dequantized weights and the int8-rounded inputs."""
    y = rounded_to_int8_blocks(x) @ dequantize(q, scale, torch.float64).T
    return y if bias is None else y + bias.double()


def test_block_quantization_is_within_half_a_step_of_each_weight():
    w = torch.randn(6, 4 * Q8_BLOCK) * torch.logspace(-2, 0, 4).repeat_interleave(Q8_BLOCK)  # blocks of far ranges
    q, scale = quantize_blocks(w)
    assert q.dtype == torch.int8 and scale.dtype == torch.float16 and scale.shape == (6, 4)
    step = scale.float().repeat_interleave(Q8_BLOCK, dim=1)
    assert ((q.float() * step - w).abs() <= 0.5 * step + w.abs() * 2**-10).all()  # + the float16 scale's rounding
    assert q.view(6, 4, Q8_BLOCK).abs().amax(dim=-1).min() >= 126  # each block uses its whole int8 range


@pytest.mark.parametrize("isa", native_isas())
@pytest.mark.parametrize("rows, n_out, n_in", [(1, 64, 96), (3, 50, 800), (5, 7, 64), (2, 9, 3 * Q8_BLOCK)])
@pytest.mark.parametrize("bias", [True, False])
def test_kernel_matches_a_float64_reference_on_int8_rounded_inputs(isa, rows, n_out, n_in, bias):
    """Odd block counts, output counts that are not a multiple of 4, several input rows: all exact to float32."""
    torch.manual_seed(rows * n_out)
    q, scale = quantize_blocks(torch.randn(n_out, n_in) * 0.05)
    x, b = torch.randn(rows, n_in), torch.randn(n_out) if bias else None
    y = torch.ops.rapgpt.q8_linear(x, q, scale, b, isa)
    expected = q8_reference(x, q, scale, b)
    assert y.dtype == torch.float32 and y.shape == (rows, n_out)
    assert (y.double() - expected).abs().max() <= 1e-5 * expected.abs().max()


@pytest.mark.parametrize("isa", native_isas())
def test_kernel_takes_bf16_inputs_and_answers_in_bf16(isa):
    torch.manual_seed(1)
    q, scale = quantize_blocks(torch.randn(40, 128) * 0.05)
    x, b = torch.randn(2, 128).bfloat16(), torch.randn(40).bfloat16()
    y = torch.ops.rapgpt.q8_linear(x, q, scale, b, isa)
    expected = q8_reference(x, q, scale, b)
    assert y.dtype == torch.bfloat16
    assert (y.double() - expected).abs().max() <= 2**-8 * expected.abs().max()  # one bf16 rounding of the output


@needs_kernel
def test_kernel_rejects_weights_it_cannot_read():
    q, scale = quantize_blocks(torch.randn(8, 64))
    with pytest.raises(RuntimeError, match="one float16 scale per block"):
        torch.ops.rapgpt.q8_linear(torch.randn(1, 64), q, scale.float(), None, kernels.q8_isa())
    with pytest.raises(RuntimeError, match="unknown instruction set"):
        torch.ops.rapgpt.q8_linear(torch.randn(1, 64), q, scale, None, 7)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rows", [1, KERNEL_MAX_ROWS + 1])
def test_q8_linear_stays_close_to_the_float_layer(dtype, rows):
    """Decoding rows go through the kernel, prefill rows through the dequantized weights: both near nn.Linear."""
    torch.manual_seed(rows)
    layer = torch.nn.Linear(256, 96)
    q8 = Q8Linear.from_linear(layer, dtype, kernels.q8_isa())
    x = torch.randn(1, rows, 256)
    y = q8(x.to(dtype))
    expected = layer(x).double()
    assert y.dtype == dtype and y.shape == expected.shape
    assert (y.double() - expected).abs().max() <= 0.02 * expected.abs().max()


@pytest.mark.parametrize("dtype, tolerance", [(torch.bfloat16, 2**-7), (torch.float32, 1e-6)])
@pytest.mark.parametrize("rows", [1, DENSE_MAX_ROWS // 2, DENSE_MAX_ROWS + 1])  # in two sequences: 2 x rows
@pytest.mark.parametrize("bias", [True, False])
def test_dense_linear_matches_a_float64_reference(dtype, tolerance, rows, bias):
    """The kernel (up to DENSE_MAX_ROWS rows) and F.linear (above) on bf16 or fp32 weights and inputs: exact but
    for the output's rounding. 67 outputs: groups of 4 rows and a remainder."""
    if not kernels.dense_available(dtype):
        pytest.skip(f"rapgpt's native {dtype} kernel does not run here")
    torch.manual_seed(rows)
    layer = torch.nn.Linear(96, 67, bias=bias).to(dtype)
    x = torch.randn(2, rows, 96).to(dtype)
    y = DenseLinear(layer)(x)
    expected = x.double() @ layer.weight.double().T + (layer.bias.double() if bias else 0)
    assert y.dtype == dtype and y.shape == expected.shape
    assert (y.double() - expected).abs().max() <= tolerance * expected.abs().max()


def test_switched_off_kernel_is_not_built_and_said_once(monkeypatch, caplog):
    monkeypatch.setenv(kernels.SWITCH, "0")
    monkeypatch.setattr(kernels, "_build", lambda: pytest.fail("built although switched off"))
    with caplog.at_level(logging.INFO, logger="rapgpt"):
        assert kernels.q8_isa.__wrapped__() == 0
    assert [r.getMessage() for r in caplog.records] == [
        "notice: RAPGPT_KERNELS=0: rapgpt's native int8 kernel is off, int8 layers use plain PyTorch"]


def test_failed_build_falls_back_with_the_compiler_error_in_the_log(monkeypatch, caplog):
    def fail() -> None:
        raise RuntimeError("Error building extension 'rapgpt_kernels'\ndecode_linear.cpp:1: error: something")

    monkeypatch.delenv(kernels.SWITCH, raising=False)
    monkeypatch.setattr(kernels, "_build", fail)
    with caplog.at_level(logging.INFO, logger="rapgpt"):
        assert kernels.q8_isa.__wrapped__() == 0
    assert "could not be built (Error building extension 'rapgpt_kernels')" in caplog.text


def test_each_cpu_and_pytorch_gets_its_own_build_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    here = kernels.build_directory()
    assert here.parent == tmp_path and here.name.startswith("rapgpt_kernels_")
    monkeypatch.setattr(torch, "__version__", "0.0.0")
    assert kernels.build_directory() != here


@pytest.mark.parametrize("edited", range(len(kernels.SOURCES) + len(kernels.HEADERS)))
def test_each_version_of_every_source_gets_its_own_build_directory(monkeypatch, tmp_path, edited):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    here = kernels.build_directory()
    files = [*kernels.SOURCES, *kernels.HEADERS]
    copy = tmp_path / files[edited].name
    copy.write_bytes(files[edited].read_bytes() + b"// an edit\n")
    files[edited] = copy
    monkeypatch.setattr(kernels, "SOURCES", tuple(files[: len(kernels.SOURCES)]))
    monkeypatch.setattr(kernels, "HEADERS", tuple(files[len(kernels.SOURCES) :]))
    assert kernels.build_directory() != here
