import itertools
import math

import pytest
import torch

from rapgpt.lora import apply_lora
from rapgpt.model import GPT
from rapgpt.training.config import FinetuneConfig, TrainConfig
from rapgpt.training.optim import lr_at, make_optimizer, param_groups, set_lr


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


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_embedding_lr_steps_the_token_embedding_at_its_own_rate(tiny_model, optimizer):
    config = TrainConfig(optimizer=optimizer, lr=1e-3, embedding_lr=5e-5)
    made = make_optimizer(tiny_model, config, torch.device("cpu"))
    set_lr(made, 4e-4)  # the schedule, at 40% of the peak
    lr_of = {id(p): g["lr"] for g in made.param_groups for p in g["params"]}
    assert lr_of[id(tiny_model.transformer.wte.weight)] == pytest.approx(2e-5)
    assert lr_of[id(tiny_model.transformer.wpe.weight)] == pytest.approx(4e-4)
    assert len(lr_of) == len(list(tiny_model.parameters()))  # every parameter once
    # Unset, the embedding trains at --lr in the usual groups.
    plain = make_optimizer(tiny_model, TrainConfig(optimizer="adamw"), torch.device("cpu"))
    assert len(plain.param_groups) == 2


def test_fine_tuning_puts_the_embedding_adapter_alone_at_the_embedding_lr(tiny_model):
    config = FinetuneConfig(lr=5e-3, embedding_lr=1e-4, rank=4)
    apply_lora(tiny_model, config.lora)
    made = make_optimizer(tiny_model, config, torch.device("cpu"))
    names = {id(p): n for n, p in tiny_model.named_parameters()}
    set_lr(made, 5e-3)
    by_lr = {}
    for g in made.param_groups:
        by_lr.setdefault(round(g["lr"], 12), set()).update(names[id(p)] for p in g["params"])
    assert by_lr[1e-4] == {"transformer.wte.lora_A", "transformer.wte.lora_B"}
    projections = by_lr[5e-3]  # A and B of the 4 projections of every block
    assert all("lora_" in n for n in projections) and len(projections) == 2 * 4 * tiny_model.config.n_layer


def test_optimizer_uses_the_fused_kernel_on_cpu(tiny_model):
    optimizer = make_optimizer(tiny_model, TrainConfig(optimizer="adamw"), torch.device("cpu"))
    assert optimizer.defaults["fused"] is True
    assert make_optimizer(tiny_model, TrainConfig(), torch.device("cpu")).adamw.defaults["fused"] is True  # Muon's


def test_pretraining_defaults_to_muon_and_fine_tuning_to_adamw():
    assert TrainConfig().optimizer == "muon" and FinetuneConfig().optimizer == "adamw"


def test_model_without_trainable_parameters_is_refused(tiny_config):
    model = GPT(tiny_config).requires_grad_(False)
    with pytest.raises(Exception, match="no trainable parameters"):
        make_optimizer(model, TrainConfig(), torch.device("cpu"))


def test_muon_takes_the_block_matrices_and_adamw_the_rest(tiny_model):
    optimizer = make_optimizer(tiny_model, TrainConfig(optimizer="muon", lr=1e-3, muon_lr=0.02),
                               torch.device("cpu"))
    names = {id(p): n for n, p in tiny_model.named_parameters()}
    muon = {names[id(p)] for g in optimizer.muon.param_groups for p in g["params"]}
    adamw = {names[id(p)] for g in optimizer.adamw.param_groups for p in g["params"]}
    assert muon == {n for n in names.values() if n.startswith("transformer.h.") and n.endswith(("c_attn.weight",
                    "c_proj.weight", "c_fc.weight"))}
    assert "transformer.wte.weight" in adamw and "transformer.h.0.ln_1.weight" in adamw and not muon & adamw
    assert muon | adamw == set(names.values())
    # Muon's decay per step equals AdamW's: its weight decay is scaled by lr / muon_lr.
    assert optimizer.muon.param_groups[0]["weight_decay"] == pytest.approx(0.1 * 1e-3 / 0.02)
    set_lr(optimizer, 5e-4)
    assert optimizer.muon.param_groups[0]["lr"] == pytest.approx(0.01)
    assert {g["lr"] for g in optimizer.adamw.param_groups} == {5e-4}


def test_muon_step_orthogonalizes_the_update_and_its_state_round_trips(tiny_model):
    config = TrainConfig(optimizer="muon", weight_decay=0.0)
    optimizer = make_optimizer(tiny_model, config, torch.device("cpu"))
    weight = tiny_model.transformer.h[0].mlp.c_fc.weight
    before = weight.detach().clone()
    x = torch.randint(0, tiny_model.config.vocab_size, (4, 16))
    tiny_model.train()
    _, loss = tiny_model(x, x)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    assert all(p.grad is None for p in tiny_model.parameters())
    # Newton-Schulz brings the update's singular values near 1 (Muon's quintic lands most in about [0.7, 1.2];
    # directions with almost no gradient stay smaller), scaled by lr * sqrt(max(1, rows / cols)).
    update = (before - weight.detach()) / (config.muon_lr * max(1, weight.shape[0] / weight.shape[1]) ** 0.5)
    singular = torch.linalg.svdvals(update.float())
    assert singular.max() < 1.3 and (singular > 0.5).float().mean() > 0.9
    again = make_optimizer(tiny_model, config, torch.device("cpu"))
    again.load_state_dict(optimizer.state_dict())
    buffers = [optimizer.state[p]["momentum_buffer"] for p in optimizer.muon.param_groups[0]["params"]]
    assert all(torch.equal(a, again.state[p]["momentum_buffer"]) for a, p in
               zip(buffers, again.muon.param_groups[0]["params"]))
