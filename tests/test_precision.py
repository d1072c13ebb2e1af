import pytest
import torch

from rapgpt.errors import ConfigError
from rapgpt.generate.inference import prepare_for_inference
from rapgpt.model import GPT, GPTConfig
from rapgpt.precision import INFERENCE_CHOICES, TRAINING_CHOICES, Precision
from rapgpt.training.runtime import Runtime, pick_precision


def test_each_name_maps_to_its_dtype_and_training_alone_offers_auto():
    assert [Precision(n).dtype for n in INFERENCE_CHOICES] == [torch.float32, torch.bfloat16, torch.float16]
    assert ("auto", *INFERENCE_CHOICES) == TRAINING_CHOICES


def test_an_unknown_name_is_one_clear_error():
    with pytest.raises(ConfigError, match="unknown precision 'fp8': choose one of fp32, bf16, fp16"):
        Precision.parse("fp8")


def test_training_autocasts_while_its_weights_stay_fp32():
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
    with Runtime(torch.device("cpu"), "bf16").autocast():
        logits, _ = model(torch.zeros(1, 4, dtype=torch.long))
    assert logits.dtype == torch.bfloat16 and model.lm_head.weight.dtype == torch.float32
    with Runtime(torch.device("cpu"), "fp32").autocast():
        assert model(torch.zeros(1, 4, dtype=torch.long))[0].dtype == torch.float32


def test_inference_casts_the_weights_themselves():
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
    prepared = prepare_for_inference(model, Precision.BF16.dtype)
    assert prepared.transformer.wte.weight.dtype == torch.bfloat16


def test_fp16_training_needs_cuda_for_its_loss_scaling():
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        pick_precision("fp16", torch.device("cpu"))
    assert pick_precision("bf16", torch.device("cpu")) == "bf16"
