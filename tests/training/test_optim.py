import itertools
import math

import pytest
import torch

from rapgpt.model import GPT
from rapgpt.training.config import TrainConfig
from rapgpt.training.optim import lr_at, make_optimizer, param_groups


def test_schedule_warms_up_linearly_then_decays_by_cosine_to_the_floor():
    config = TrainConfig(lr=1e-3, min_lr_ratio=0.1, warmup_steps=10)
    total = 100
    lrs = [lr_at(config, s, s / total) for s in range(total + 1)]
    for s in range(10):  # linear ramp, times the barely started cosine
        cosine = 1e-4 + 0.9e-3 * 0.5 * (1 + math.cos(math.pi * s / total))
        assert lrs[s] == pytest.approx((s + 1) / 10 * cosine)
    assert all(b < a for a, b in itertools.pairwise(lrs[9:]))  # strictly decreasing after the warmup
    assert lrs[50] == pytest.approx((1e-3 + 1e-4) / 2)  # half-way down the cosine
    assert lrs[total] == pytest.approx(1e-4)  # the floor at the end of the budget
    assert lr_at(config, 1000, 3.0) == pytest.approx(1e-4)  # and it stays there


def test_no_warmup_starts_at_the_peak():
    assert lr_at(TrainConfig(lr=3e-3, warmup_steps=0), 0, 0.0) == pytest.approx(3e-3)


def test_weight_decay_applies_to_matrices_only_and_frozen_parameters_are_left_out(tiny_model):
    tiny_model.transformer.h[0].requires_grad_(False)
    decay, no_decay = param_groups(tiny_model, 0.1)
    names = {id(p): n for n, p in tiny_model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    kept = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert "transformer.wte.weight" in decayed and "transformer.h.1.attn.c_attn.weight" in decayed
    assert {"transformer.wpe.weight", "transformer.h.1.ln_1.weight", "transformer.h.1.mlp.c_fc.bias"} <= kept
    assert not any(n.startswith("transformer.h.0.") for n in decayed | kept)
    trainable = {n for n, p in tiny_model.named_parameters() if p.requires_grad}
    assert decayed | kept == trainable and not decayed & kept


def test_optimizer_uses_the_fused_kernel_on_cpu(tiny_model):
    optimizer = make_optimizer(tiny_model, TrainConfig(), torch.device("cpu"))
    assert optimizer.defaults["fused"] is True


def test_model_without_trainable_parameters_is_refused(tiny_config):
    model = GPT(tiny_config).requires_grad_(False)
    with pytest.raises(Exception, match="no trainable parameters"):
        make_optimizer(model, TrainConfig(), torch.device("cpu"))
