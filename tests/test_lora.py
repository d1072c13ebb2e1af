import math

import pytest
import torch
from torch import nn

from rapgpt.checkpoint import load_run, save_run
from rapgpt.cli import main
from rapgpt.data.tokenizer import CharTokenizer
from rapgpt.errors import CheckpointError, ConfigError
from rapgpt.lora import (
    BLOCK_PROJECTIONS,
    LoRAConfig,
    LoRAEmbedding,
    LoRALinear,
    TiedLoRAHead,
    apply_lora,
    base_fingerprint,
    base_state,
    load_adapted_run,
    load_adapter,
    lora_layers,
    lora_scaling,
    lora_state,
    merge_lora,
    save_adapter,
    select_targets,
    trainable_parameters_report,
)
from rapgpt.model import GPT

WITH_WTE = LoRAConfig(rank=4, alpha=8.0, dropout=0.0, targets=BLOCK_PROJECTIONS + ("wte",))


def randomize_lora(model: nn.Module, std: float = 0.05) -> None:
    """Give every LoRA tensor random values, as training would, so that the update is not zero."""
    for tensor in lora_state(model).values():
        tensor.normal_(std=std)


def fresh_copy(model: GPT) -> GPT:
    copy = GPT(model.config).eval()
    copy.load_state_dict(model.state_dict())
    return copy


def tokenizer() -> CharTokenizer:
    return CharTokenizer.from_texts(["".join(chr(i) for i in range(40, 105))])  # 65 chars + 2 specials = 67


def test_adapted_logits_equal_base_logits_at_init(tiny_model):
    idx = torch.randint(0, 67, (2, 11))
    with torch.no_grad():
        expected, _ = tiny_model(idx)
        apply_lora(tiny_model, WITH_WTE)
        logits, _ = tiny_model(idx)
    assert isinstance(tiny_model.lm_head, TiedLoRAHead)
    assert torch.equal(logits, expected)


def test_apply_lora_keeps_the_models_eval_mode(tiny_model):
    apply_lora(tiny_model, LoRAConfig(dropout=0.5))
    assert not any(m.training for m in tiny_model.modules())


def test_only_lora_tensors_receive_gradients(tiny_model):
    apply_lora(tiny_model, WITH_WTE)
    randomize_lora(tiny_model)
    idx = torch.randint(0, 67, (2, 11))
    _, loss = tiny_model(idx, idx)
    loss.backward()
    with_grad = {n for n, p in tiny_model.named_parameters() if p.grad is not None}
    trainable = {n for n, p in tiny_model.named_parameters() if p.requires_grad}
    assert with_grad == trainable == set(lora_state(tiny_model))
    assert len(with_grad) == 2 * (4 * tiny_model.config.n_layer + 1)


def test_base_weights_are_bit_identical_after_optimizer_steps(tiny_model):
    tiny_model.train()
    before = {k: v.clone() for k, v in base_state(tiny_model).items()}
    apply_lora(tiny_model, LoRAConfig(rank=4, dropout=0.1, targets=BLOCK_PROJECTIONS + ("wte",)))
    lora_before = {k: v.clone() for k, v in lora_state(tiny_model).items()}
    # Every parameter is handed to AdamW with weight decay: frozen ones must still not move.
    opt = torch.optim.AdamW(tiny_model.parameters(), lr=1e-2, weight_decay=0.1)
    idx = torch.randint(0, 67, (4, 16))
    losses = []
    for _ in range(5):
        _, loss = tiny_model(idx, idx)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    after = base_state(tiny_model)
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert all(not torch.equal(v, lora_before[k]) for k, v in lora_state(tiny_model).items())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("config", [LoRAConfig(dropout=0.0), WITH_WTE], ids=["projections", "with-wte"])
def test_merged_and_unmerged_logits_agree(tiny_model, config):
    idx = torch.randint(0, 67, (3, 20))
    with torch.no_grad():
        base, _ = tiny_model(idx)
        apply_lora(tiny_model, config)
        randomize_lora(tiny_model)
        unmerged, _ = tiny_model(idx)
        merged_model = merge_lora(tiny_model)
        merged, _ = merged_model(idx)
    assert type(merged_model.lm_head) is nn.Linear
    assert merged_model.lm_head.weight is merged_model.transformer.wte.weight  # still tied
    assert not lora_layers(merged_model)
    assert all(p.requires_grad for p in merged_model.parameters())
    assert (merged - unmerged).abs().max() < 1e-5
    assert (unmerged - base).abs().max() > 1e-2  # the update does change the logits


def test_tied_head_uses_the_adapted_embedding_matrix(tiny_model):
    apply_lora(tiny_model, WITH_WTE)
    randomize_lora(tiny_model)
    wte = tiny_model.transformer.wte
    x = torch.randn(2, 5, tiny_model.config.n_embd, dtype=torch.float64)
    adapted = (wte.base.weight + wte.delta_weight()).double()
    assert torch.allclose(tiny_model.lm_head(x.float()).double(), x @ adapted.T, atol=1e-5)
    idx = torch.randint(0, 67, (2, 5))
    assert torch.allclose(wte(idx).double(), adapted[idx], atol=1e-6)


@pytest.mark.parametrize("config", [LoRAConfig(dropout=0.0), WITH_WTE], ids=["projections", "with-wte"])
def test_training_loss_is_the_cross_entropy_of_the_adapted_logits(tiny_model, config):
    """The loss that training minimises (forward with targets) is taken against the same adapted head as the
    logits that generation and evaluation read; with wte adapted, the head's update is trained too."""
    apply_lora(tiny_model, config)
    randomize_lora(tiny_model, std=0.2)
    idx, targets = torch.randint(0, 67, (2, 13)), torch.randint(0, 67, (2, 13))
    logits, _ = tiny_model(idx)
    _, loss = tiny_model(idx, targets, return_logits=False)  # as the training loop asks for it
    expected = nn.functional.cross_entropy(logits.flatten(0, 1).double(), targets.flatten())
    assert abs(loss.item() - expected.item()) < 1e-4
    loss.backward()
    wte = tiny_model.transformer.wte
    if isinstance(wte, LoRAEmbedding):  # the head's gradient reaches every row of A, not only the rows of `idx`
        unseen = sorted(set(range(67)) - set(idx.flatten().tolist()))
        assert wte.lora_A.grad[:, unseen].abs().sum() > 0


def test_layer_merge_then_unmerge_restores_the_base_weight():
    torch.manual_seed(0)
    base = nn.Linear(16, 12)
    original = base.weight.detach().clone()
    layer = LoRALinear(base, rank=4, alpha=4.0).eval()
    layer.lora_B.data.normal_()
    x = torch.randn(3, 16)
    with torch.no_grad():
        unmerged = layer(x)
        layer.merge()
        assert torch.allclose(base.weight, original + layer.delta_weight(), atol=1e-6)
        assert torch.allclose(layer(x), unmerged, atol=1e-5)
        layer.unmerge()
        assert torch.allclose(layer(x), unmerged, atol=1e-5)
    assert torch.allclose(base.weight, original, atol=1e-6)


@pytest.mark.parametrize("rslora", [True, False])
def test_scaling_is_alpha_over_sqrt_rank_with_rslora_else_alpha_over_rank(rslora):
    rank, alpha = 16, 8.0
    assert lora_scaling(alpha, rank, rslora) == (alpha / math.sqrt(rank) if rslora else alpha / rank)
    assert LoRAConfig(rank=rank, alpha=alpha, rslora=rslora).scaling == (2.0 if rslora else 0.5)
    torch.manual_seed(0)
    base = nn.Linear(10, 6).double()
    layer = LoRALinear(base, rank, alpha, rslora).eval()
    layer.lora_B.data.normal_()
    x = torch.randn(4, 10, dtype=torch.float64)
    scaling = 2.0 if rslora else 0.5
    expected = x @ base.weight.T + base.bias + scaling * (x @ layer.lora_A.T @ layer.lora_B.T)
    assert torch.allclose(layer(x), expected, atol=1e-12)


def test_dropout_touches_the_lora_path_only_and_only_in_training():
    torch.manual_seed(0)
    base = nn.Linear(10, 6)
    layer = LoRALinear(base, 4, 4.0, dropout=0.5)
    x = torch.randn(8, 10)
    assert torch.equal(layer(x), base(x))  # B = 0: the base path sees no dropout
    layer.lora_B.data.normal_()
    torch.manual_seed(1)
    y = layer(x)
    torch.manual_seed(1)
    dropped = nn.functional.dropout(x, 0.5, training=True)
    assert torch.allclose(y, base(x) + dropped @ layer.delta_weight().T, atol=1e-5)
    layer.eval()
    assert torch.allclose(layer(x), base(x) + x @ layer.delta_weight().T, atol=1e-5)


def test_bf16_autocast_matches_fp32_within_bf16_precision():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(64, 48).requires_grad_(False), 8, 8.0)
    layer.lora_B.data.normal_(std=0.1)
    x = torch.randn(2, 10, 64)
    expected = layer(x)
    expected.square().sum().backward()
    grads = layer.lora_A.grad.clone(), layer.lora_B.grad.clone()
    layer.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    assert y.dtype == torch.bfloat16
    y.float().square().sum().backward()
    assert torch.allclose(y.float(), expected, rtol=0.02, atol=0.05)
    for grad, reference in zip((layer.lora_A.grad, layer.lora_B.grad), grads):
        assert grad.dtype == torch.float32
        assert (grad - reference).norm() < 0.03 * reference.norm()


def test_layers_match_peft_lora_on_the_same_weights():
    peft = pytest.importorskip("peft")

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(23, 12)
            self.proj = nn.Linear(12, 9)

    torch.manual_seed(0)
    ours = Tiny()
    reference = Tiny()
    reference.load_state_dict(ours.state_dict())
    config = peft.LoraConfig(r=4, lora_alpha=6, use_rslora=True, lora_dropout=0.0, target_modules=["emb", "proj"])
    reference = peft.inject_adapter_in_model(config, reference).eval()
    emb, proj = LoRAEmbedding(ours.emb, 4, 6.0), LoRALinear(ours.proj, 4, 6.0).eval()
    # Same initialisation scheme: Linear A kaiming-uniform and B zero; Embedding A zero and B normal.
    assert torch.count_nonzero(proj.lora_B) == torch.count_nonzero(reference.proj.lora_B.default.weight) == 0
    assert torch.count_nonzero(emb.lora_A) == torch.count_nonzero(reference.emb.lora_embedding_A.default) == 0
    bound = 1 / math.sqrt(12)
    assert proj.lora_A.abs().max() <= bound and reference.proj.lora_A.default.weight.abs().max() <= bound
    assert 0.5 < emb.lora_B.std() < 1.5 and 0.5 < reference.emb.lora_embedding_B.default.std() < 1.5
    # Same outputs and merged weights once trained values are shared.
    randomize_lora(nn.ModuleList([emb, proj]), std=1.0)
    with torch.no_grad():
        reference.proj.lora_A.default.weight.copy_(proj.lora_A)
        reference.proj.lora_B.default.weight.copy_(proj.lora_B)
        reference.emb.lora_embedding_A.default.copy_(emb.lora_A)
        reference.emb.lora_embedding_B.default.copy_(emb.lora_B)
    idx = torch.randint(0, 23, (3, 7))
    x = torch.randn(3, 7, 12)
    with torch.no_grad():
        assert torch.allclose(emb(idx), reference.emb(idx), atol=1e-5)
        assert torch.allclose(proj(x), reference.proj(x), atol=1e-5)
        assert torch.allclose(emb.delta_weight(), reference.emb.get_delta_weight("default"), atol=1e-6)
        assert torch.allclose(proj.delta_weight(), reference.proj.get_delta_weight("default"), atol=1e-6)


def test_trainable_share_matches_a_hand_count(tiny_model):
    c = tiny_model.config
    base_total = tiny_model.num_params()
    apply_lora(tiny_model, WITH_WTE)
    r, C = WITH_WTE.rank, c.n_embd
    # Per block: c_attn (C -> 3C), attn.c_proj (C -> C), c_fc (C -> 4C), mlp.c_proj (4C -> C); each adds r(in + out).
    per_block = r * ((C + 3 * C) + (C + C) + (C + 4 * C) + (4 * C + C))
    lora = c.n_layer * per_block + r * (c.vocab_size + C)
    report = trainable_parameters_report(tiny_model)
    assert (report.trainable, report.total) == (lora, base_total + lora)
    assert report.share == pytest.approx(lora / (base_total + lora))
    assert f"{lora:,}" in str(report)


def test_targets_select_by_suffix_and_refuse_norms_heads_and_nothing(tiny_model):
    assert select_targets(tiny_model, ["h.1.attn.c_attn"]) == ["transformer.h.1.attn.c_attn"]
    assert select_targets(tiny_model, ["c_proj"]) == [
        f"transformer.h.{i}.{m}.c_proj" for i in range(2) for m in ("attn", "mlp")
    ]
    assert select_targets(tiny_model, ["wte", "transformer.wte"]) == ["transformer.wte"]
    with pytest.raises(ConfigError, match="norms are never adapted"):
        select_targets(tiny_model, ["ln_f"])
    with pytest.raises(ConfigError, match="norms are never adapted"):
        apply_lora(tiny_model, LoRAConfig(targets=("h.0.*",)))
    with pytest.raises(ConfigError, match="tied to transformer.wte"):
        select_targets(tiny_model, ["lm_head"])
    with pytest.raises(ConfigError, match="a MLP"):
        select_targets(tiny_model, ["mlp"])
    with pytest.raises(ConfigError, match="matches no layer.*attn.c_attn"):
        apply_lora(tiny_model, LoRAConfig(targets=("q_proj",)))
    assert not lora_layers(tiny_model) and all(p.requires_grad for p in tiny_model.parameters())


def test_config_refuses_bad_values():
    for bad in ({"rank": 0}, {"alpha": 0.0}, {"dropout": 1.0}, {"targets": ()}):
        with pytest.raises(ConfigError):
            LoRAConfig(**bad)
    config = LoRAConfig(targets=["wte"])
    assert LoRAConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown"):
        LoRAConfig.from_dict({"rank": 4, "r": 4})


def test_fingerprint_is_the_same_for_equal_bases_and_changes_with_one_weight(tiny_model):
    other = fresh_copy(tiny_model)
    fingerprint = base_fingerprint(tiny_model)
    apply_lora(other, WITH_WTE)
    randomize_lora(other)
    assert base_fingerprint(other) == fingerprint  # LoRA tensors and wrapper names do not enter it
    with torch.no_grad():
        tiny_model.transformer.h[1].ln_2.bias[3] += 1e-3
    assert base_fingerprint(tiny_model) != fingerprint


def test_adapter_save_load_round_trips_exactly(tmp_path, tiny_model):
    base = fresh_copy(tiny_model)
    apply_lora(tiny_model, WITH_WTE)
    randomize_lora(tiny_model)
    save_adapter(tmp_path / "adapter", tiny_model, WITH_WTE, base_run="runs/base")
    load_adapter(base, tmp_path / "adapter")
    saved, loaded = lora_state(tiny_model), lora_state(base)
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)
    idx = torch.randint(0, 67, (2, 12))
    with torch.no_grad():
        assert torch.equal(base(idx)[0], tiny_model(idx)[0])
    assert not any(p.requires_grad for n, p in base.named_parameters() if n not in loaded)


def test_adapter_for_a_different_base_is_refused_and_leaves_it_untouched(tmp_path, tiny_model):
    apply_lora(tiny_model, LoRAConfig())
    save_adapter(tmp_path / "adapter", tiny_model, LoRAConfig(), base_run="runs/base")
    torch.manual_seed(1)
    other = GPT(tiny_model.config).eval()
    with pytest.raises(CheckpointError, match="different base model.*runs/base"):
        load_adapter(other, tmp_path / "adapter")
    assert not lora_layers(other)


def test_corrupt_or_missing_adapter_files_are_refused(tmp_path, tiny_model):
    base = fresh_copy(tiny_model)
    apply_lora(tiny_model, LoRAConfig())
    adapter = save_adapter(tmp_path / "adapter", tiny_model, LoRAConfig())
    weights = adapter / "adapter.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_adapter(base, adapter)
    # A config that disagrees with the tensors (rank 8 saved, rank 4 claimed) is refused, the base left plain.
    weights.write_bytes(data)
    config = (adapter / "adapter_config.json").read_text().replace('"rank": 8', '"rank": 4')
    (adapter / "adapter_config.json").write_text(config)
    with pytest.raises(CheckpointError, match="shape"):
        load_adapter(base, adapter)
    assert not lora_layers(base) and type(base.lm_head) is nn.Linear
    (adapter / "adapter_config.json").write_text("{")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_adapter(base, adapter)
    with pytest.raises(CheckpointError, match="not found"):
        load_adapter(base, tmp_path / "nowhere")


def test_loading_onto_an_adapted_model_is_refused(tmp_path, tiny_model):
    apply_lora(tiny_model, LoRAConfig())
    save_adapter(tmp_path / "adapter", tiny_model, LoRAConfig())
    with pytest.raises(ConfigError, match="already has LoRA layers"):
        load_adapter(tiny_model, tmp_path / "adapter")


def test_adapted_run_loads_merged_or_not_with_the_same_logits(tmp_path, tiny_model):
    save_run(tmp_path / "base", tiny_model, tokenizer())
    apply_lora(tiny_model, WITH_WTE)
    randomize_lora(tiny_model)
    save_adapter(tmp_path / "ft", tiny_model, WITH_WTE, base_run=tmp_path / "base")
    idx = torch.randint(0, 67, (2, 12))
    adapted, tok, config = load_adapted_run(tmp_path / "base", tmp_path / "ft")
    merged, _, _ = load_adapted_run(tmp_path / "base", tmp_path / "ft", merge=True)
    assert tok == tokenizer() and config["adapter"]["lora"] == WITH_WTE.to_dict()
    assert lora_layers(adapted) and not lora_layers(merged) and not adapted.training
    with torch.no_grad():
        expected = tiny_model(idx)[0]
        assert torch.equal(adapted(idx)[0], expected)
        assert (merged(idx)[0] - expected).abs().max() < 1e-5


def test_cached_generation_works_through_adapted_layers(tiny_model):
    apply_lora(tiny_model, WITH_WTE)
    randomize_lora(tiny_model)
    idx = torch.randint(0, 67, (1, 10))
    with torch.no_grad():
        full, _ = tiny_model(idx)
        cache = tiny_model.new_cache(1)
        steps = [tiny_model(idx[:, t : t + 1], cache=cache, input_pos=torch.tensor([[t]]))[0] for t in range(10)]
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)


def test_merge_command_writes_a_standalone_run(tmp_path, tiny_model, capsys):
    save_run(tmp_path / "base", tiny_model, tokenizer())
    apply_lora(tiny_model, WITH_WTE)
    randomize_lora(tiny_model)
    save_adapter(tmp_path / "ft", tiny_model, WITH_WTE, base_run=tmp_path / "base")
    # Without --base, the base run recorded in the adapter is used.
    assert main(["merge", "--adapter", str(tmp_path / "ft"), "--out", str(tmp_path / "merged")]) == 0
    model, tok, config = load_run(tmp_path / "merged")
    assert tok == tokenizer() and config["merged_from"]["adapter"] == str(tmp_path / "ft")
    assert config["merged_from"]["base_run"] == str(tmp_path / "base")
    idx = torch.randint(0, 67, (2, 12))
    with torch.no_grad():
        assert (model(idx)[0] - tiny_model(idx)[0]).abs().max() < 1e-5
    before = (tmp_path / "merged" / "model.safetensors").read_bytes()
    args = ["merge", "--base", str(tmp_path / "base"), "--adapter", str(tmp_path / "ft"), "--out"]
    assert main([*args, str(tmp_path / "merged")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main([*args, str(tmp_path / "base"), "--force"]) == 2
    assert "is the base directory" in capsys.readouterr().err
    assert (tmp_path / "merged" / "model.safetensors").read_bytes() == before


def test_adapter_without_a_recorded_base_needs_one_named(tmp_path, tiny_model):
    apply_lora(tiny_model, LoRAConfig())
    save_adapter(tmp_path / "ft", tiny_model, LoRAConfig())
    with pytest.raises(CheckpointError, match="does not record its base run"):
        load_adapted_run(None, tmp_path / "ft")
