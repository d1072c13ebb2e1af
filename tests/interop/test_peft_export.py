import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from rapgpt.cli import main
from rapgpt.errors import CheckpointError, ConfigError
from rapgpt.interop import export
from rapgpt.lora import BLOCK_PROJECTIONS

WITH_WTE = BLOCK_PROJECTIONS + ("wte",)


def peft_model(tmp_path, adapter_dir):
    base = AutoModelForCausalLM.from_pretrained(export(tmp_path / "base", tmp_path / "hf"), local_files_only=True)
    return PeftModel.from_pretrained(base, adapter_dir).eval()


def max_logit_gap(a, b, vocab_size: int) -> float:
    idx = torch.randint(0, vocab_size, (3, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return (a(idx).logits - b(idx)[0]).abs().max().item()


@pytest.mark.parametrize("targets", [BLOCK_PROJECTIONS, WITH_WTE, ("h.0.attn.c_proj", "mlp.c_fc")])
def test_peft_export_gives_rapgpt_adapted_logits(tmp_path, make_adapter, targets):
    model = make_adapter(tmp_path, targets)
    out = export(tmp_path / "adapter", tmp_path / "peft", "peft")
    peft = peft_model(tmp_path, out)
    assert max_logit_gap(peft, model, model.config.vocab_size) < 1e-4
    theirs = {k.replace(".default", "") for k, _ in peft.named_parameters() if "lora_" in k}
    assert theirs == set(load_file(out / "adapter_model.safetensors"))  # nothing PEFT holds left unfilled


def test_peft_files_carry_peft_names_and_settings(tmp_path, make_adapter):
    make_adapter(tmp_path, WITH_WTE)
    out = export(tmp_path / "adapter", tmp_path / "peft", "peft")
    config = json.loads((out / "adapter_config.json").read_text())
    assert {k: config[k] for k in ("peft_type", "task_type", "r", "lora_alpha", "use_rslora", "fan_in_fan_out",
                                   "bias", "ensure_weight_tying")} == {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 6, "use_rslora": True,
        "fan_in_fan_out": True, "bias": "none", "ensure_weight_tying": True}
    assert config["target_modules"] == ["c_attn", "c_proj", "c_fc", "wte", "lm_head"]
    state = load_file(out / "adapter_model.safetensors")
    assert state["base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"].shape == (4, 32)
    assert state["base_model.model.transformer.h.1.mlp.c_proj.lora_B.weight"].shape == (32, 4)
    assert state["base_model.model.transformer.wte.lora_embedding_A"].shape[0] == 4
    assert torch.equal(state["base_model.model.lm_head.lora_A.weight"],
                       state["base_model.model.transformer.wte.lora_embedding_B"].T)


def test_without_weight_tying_peft_leaves_the_head_unadapted_until_merged(tmp_path, make_adapter):
    """What an adapted `wte` means without `ensure_weight_tying`: PEFT's unmerged head keeps the base matrix, and
    merging (which changes the shared matrix) gives rapgpt's logits again."""
    model = make_adapter(tmp_path, WITH_WTE)
    out = export(tmp_path / "adapter", tmp_path / "peft", "peft")
    config = json.loads((out / "adapter_config.json").read_text())
    config.update(target_modules=["c_attn", "c_proj", "c_fc", "wte"], ensure_weight_tying=False)
    (out / "adapter_config.json").write_text(json.dumps(config))
    state = {k: v for k, v in load_file(out / "adapter_model.safetensors").items() if "lm_head" not in k}
    save_file(state, out / "adapter_model.safetensors")
    peft = peft_model(tmp_path, out)
    assert max_logit_gap(peft, model, model.config.vocab_size) > 1e-2
    assert max_logit_gap(peft.merge_and_unload(), model, model.config.vocab_size) < 1e-4


@pytest.mark.parametrize("targets", [BLOCK_PROJECTIONS, WITH_WTE])
def test_merged_hf_export_gives_rapgpt_adapted_logits(tmp_path, make_adapter, targets):
    model = make_adapter(tmp_path, targets)
    out = export(tmp_path / "base", tmp_path / "merged", "hf", adapter=tmp_path / "adapter", merge=True)
    hf = AutoModelForCausalLM.from_pretrained(out, local_files_only=True).eval()
    assert max_logit_gap(hf, model, model.config.vocab_size) < 1e-4
    assert "LoRA adapter" in (out / "README.md").read_text()


def test_base_model_is_recorded_and_must_hold_the_base(tmp_path, make_adapter, make_run, make_tokenizer):
    make_adapter(tmp_path, BLOCK_PROJECTIONS)
    hf = export(tmp_path / "base", tmp_path / "hf", "hf")
    out = export(tmp_path / "adapter", tmp_path / "peft", "peft", base_model=str(hf))
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(hf.resolve())
    make_adapter(tmp_path / "other", BLOCK_PROJECTIONS, seed=5)
    with pytest.raises(CheckpointError, match="does not hold the weights of the adapter's base run"):
        export(tmp_path / "other" / "adapter", tmp_path / "peft2", "peft", base_model=str(hf))
    assert not (tmp_path / "peft2").exists()


def test_adapter_for_another_base_or_without_one_is_refused(tmp_path, make_adapter):
    make_adapter(tmp_path / "a", BLOCK_PROJECTIONS, record_base=False)
    make_adapter(tmp_path / "b", BLOCK_PROJECTIONS, seed=3)
    with pytest.raises(CheckpointError, match="does not record its base run"):
        export(tmp_path / "a" / "adapter", tmp_path / "peft", "peft")
    with pytest.raises(CheckpointError, match="different base model"):
        export(tmp_path / "a" / "adapter", tmp_path / "peft", "peft", base=tmp_path / "b" / "base")
    with pytest.raises(CheckpointError, match="different base model"):
        export(tmp_path / "b" / "base", tmp_path / "merged", "hf", adapter=tmp_path / "a" / "adapter", merge=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


@pytest.mark.parametrize("format, options, message", [
    ("hf", {"adapter": "adapter"}, "pass --merge .* or export the adapter itself with --format peft"),
    ("peft", {"adapter": "adapter", "merge": True}, "use --format hf with --merge"),
    ("hf", {"base": "base"}, "with --format hf, RUN is the model exported"),
    ("peft", {"adapter": "adapter", "base": "base"}, "RUN is the base when --adapter is given"),
])
def test_inconsistent_options_are_refused(tmp_path, make_adapter, format, options, message):
    make_adapter(tmp_path, BLOCK_PROJECTIONS)
    options = {k: tmp_path / v if isinstance(v, str) else v for k, v in options.items()}
    with pytest.raises(ConfigError, match=message):
        export(tmp_path / "base", tmp_path / "out", format, **options)
    assert not (tmp_path / "out").exists()


def test_cli_exports_adapter_and_merged_model(tmp_path, make_adapter, capsys):
    model = make_adapter(tmp_path, BLOCK_PROJECTIONS, record_base=False)
    base, adapter = str(tmp_path / "base"), str(tmp_path / "adapter")
    assert main(["export", base, "--adapter", adapter, "--format", "peft", "--out", str(tmp_path / "peft")]) == 0
    assert main(["export", adapter, "--base", base, "--format", "peft", "--out", str(tmp_path / "peft2")]) == 0
    assert (tmp_path / "peft" / "adapter_model.safetensors").read_bytes() == (
        tmp_path / "peft2" / "adapter_model.safetensors").read_bytes()
    assert main(["export", base, "--adapter", adapter, "--merge", "--out", str(tmp_path / "merged")]) == 0
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", local_files_only=True).eval()
    assert max_logit_gap(hf, model, model.config.vocab_size) < 1e-4
    capsys.readouterr()
    assert main(["export", base, "--adapter", adapter, "--out", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--format peft" in err
