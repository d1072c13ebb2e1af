import json

import peft
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from rapgpt.cli import main
from rapgpt.errors import CheckpointError
from rapgpt.interop import export
from rapgpt.interop.peft_import import import_peft
from rapgpt.lora import BLOCK_PROJECTIONS, load_adapted_run, lora_state


def logits(model, vocab_size: int) -> torch.Tensor:
    idx = torch.randint(0, vocab_size, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(idx)
    return out.logits if hasattr(out, "logits") else out[0]


@pytest.mark.parametrize("targets", [BLOCK_PROJECTIONS, BLOCK_PROJECTIONS + ("wte",)])
def test_exported_adapter_imports_back_bit_identical(tmp_path, make_adapter, targets):
    model = make_adapter(tmp_path, targets)
    out = import_peft(export(tmp_path / "adapter", tmp_path / "peft", "peft"), tmp_path / "base", tmp_path / "back")
    back, _, config = load_adapted_run(None, out)
    original = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["adapter"]["layers"] == original["layers"]  # the targets may be spelt more briefly
    assert {**config["adapter"]["lora"], "targets": None} == {**original["lora"], "targets": None}
    ours, theirs = lora_state(model), lora_state(back)
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_adapter_trained_with_peft_gives_peft_logits_in_rapgpt(tmp_path, make_run, make_tokenizer):
    tokenizer = make_tokenizer("char")
    make_run(tmp_path / "base", tokenizer)
    hf = AutoModelForCausalLM.from_pretrained(export(tmp_path / "base", tmp_path / "hf"), local_files_only=True)
    config = peft.LoraConfig(r=3, lora_alpha=5, lora_dropout=0.1, target_modules=["c_attn", "mlp.c_proj"],
                             fan_in_fan_out=True, task_type="CAUSAL_LM")
    trained = peft.get_peft_model(hf, config)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in trained.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)  # as if trained: B is no longer zero
    trained.save_pretrained(tmp_path / "peft")
    out = import_peft(tmp_path / "peft", tmp_path / "base", tmp_path / "adapter")
    ours, _, run_config = load_adapted_run(None, out)
    lora = run_config["adapter"]["lora"]
    assert (lora["rank"], lora["alpha"], lora["rslora"], lora["targets"]) == (3, 5.0, False, ["c_attn", "mlp.c_proj"])
    theirs = trained.eval()
    assert (logits(theirs, tokenizer.vocab_size) - logits(ours, tokenizer.vocab_size)).abs().max() < 1e-4


@pytest.mark.parametrize("change, message", [
    ({"use_dora": True}, "use_dora=True is not supported"),
    ({"bias": "lora_only"}, "bias='lora_only' is not supported"),
    ({"peft_type": "IA3"}, "not a PEFT LoRA adapter config"),
])
def test_adapters_rapgpt_cannot_compute_are_refused(tmp_path, make_adapter, change, message):
    make_adapter(tmp_path, BLOCK_PROJECTIONS)
    out = export(tmp_path / "adapter", tmp_path / "peft", "peft")
    config = json.loads((out / "adapter_config.json").read_text())
    (out / "adapter_config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(CheckpointError, match=message):
        import_peft(out, tmp_path / "base", tmp_path / "back")
    assert not (tmp_path / "back").exists()


@pytest.mark.parametrize("edit, message", [
    (lambda s: {**s, "base_model.model.transformer.h.0.attn.c_attn.lora_magnitude_vector": torch.ones(3)},
     "not a LoRA tensor of a GPT-2 layer"),
    (lambda s: {**s, "base_model.model.lm_head.lora_A.weight": torch.ones(4, 32),
                "base_model.model.lm_head.lora_B.weight": torch.ones(s["base_model.model.transformer.wte"
                                                                          ".lora_embedding_A"].shape[1], 4)},
     "adapts lm_head apart from the token embedding"),
    (lambda s: {k: v[:, :-1] if k.endswith("c_fc.lora_A.weight") else v for k, v in s.items()}, "has shape"),
])
def test_foreign_or_misshapen_tensors_are_refused(tmp_path, make_adapter, edit, message):
    make_adapter(tmp_path, BLOCK_PROJECTIONS + ("wte",))
    out = export(tmp_path / "adapter", tmp_path / "peft", "peft")
    state = {k: v.contiguous() for k, v in edit(load_file(out / "adapter_model.safetensors")).items()}
    save_file(state, out / "adapter_model.safetensors")
    with pytest.raises(CheckpointError, match=message):
        import_peft(out, tmp_path / "base", tmp_path / "back")


def test_cli_imports_a_peft_adapter(tmp_path, make_adapter, capsys):
    make_adapter(tmp_path, BLOCK_PROJECTIONS)
    export(tmp_path / "adapter", tmp_path / "peft", "peft")
    args = ["import-peft", str(tmp_path / "peft"), "--base", str(tmp_path / "base"), "--out", str(tmp_path / "back")]
    assert main(args) == 0 and (tmp_path / "back" / "adapter.safetensors").is_file()
    capsys.readouterr()
    assert main(["import-peft", str(tmp_path / "adapter"), "--base", str(tmp_path / "base"), "--out",
                 str(tmp_path / "x")]) == 2
    assert "not a PEFT LoRA adapter config" in capsys.readouterr().err
