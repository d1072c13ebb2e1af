import json
import pickle

import pytest
import torch
from hf_support import assert_same_logits
from safetensors.torch import save_file
from transformers import AutoTokenizer

from rapgpt.checkpoint import load_run
from rapgpt.cli import main
from rapgpt.data.tokenizer import GPT2Tokenizer
from rapgpt.errors import CheckpointError
from rapgpt.interop.hf_import import import_hf
from rapgpt.interop.hf_tokenizer import save_hf_tokenizer


def save_config_only(hf_model, hf_dir):
    hf_model.config.save_pretrained(hf_dir)


@pytest.mark.parametrize("layout", ["safetensors", "sharded safetensors"])
def test_model_saved_by_transformers_imports_with_equal_logits(tmp_path, hf_gpt2, layout):
    hf_gpt2.save_pretrained(tmp_path / "hf", max_shard_size="2MB" if layout == "sharded safetensors" else "50GB")
    sharded = (tmp_path / "hf" / "model.safetensors.index.json").is_file()
    assert sharded == (layout == "sharded safetensors")
    config = assert_same_logits(hf_gpt2, import_hf(tmp_path / "hf", tmp_path / "run"))
    assert config["imported_from"]["format"] == "hf" and len(config["imported_from"]["files"]) == (2 if sharded else 1)


def test_pytorch_model_bin_imports_with_equal_logits(tmp_path, hf_gpt2):
    """The older layout: a torch.save'd state dict, here with the tied head stored beside the embedding."""
    save_config_only(hf_gpt2, tmp_path / "hf")
    state = hf_gpt2.state_dict()
    assert "lm_head.weight" in state
    torch.save(state, tmp_path / "hf" / "pytorch_model.bin")
    assert_same_logits(hf_gpt2, import_hf(tmp_path / "hf", tmp_path / "run"))


def test_openai_layout_without_prefix_and_with_mask_buffers_imports(tmp_path, hf_gpt2):
    save_config_only(hf_gpt2, tmp_path / "hf")
    state = {k.removeprefix("transformer."): v for k, v in hf_gpt2.state_dict().items() if k != "lm_head.weight"}
    for i in range(2):
        state[f"h.{i}.attn.bias"] = torch.ones(1, 1, 48, 48).tril()
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    torch.save(state, tmp_path / "hf" / "pytorch_model.bin")
    assert_same_logits(hf_gpt2, import_hf(tmp_path / "hf", tmp_path / "run"))


def test_half_precision_checkpoint_imports_as_float32(tmp_path, hf_gpt2):
    save_config_only(hf_gpt2, tmp_path / "hf")
    state = {k: v.to(torch.bfloat16).contiguous() for k, v in hf_gpt2.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(tmp_path / "hf" / "model.safetensors"))
    model, _, _ = load_run(import_hf(tmp_path / "hf", tmp_path / "run"))
    assert model.transformer.h[0].attn.c_attn.weight.dtype == torch.float32
    expected = state["transformer.h.0.attn.c_attn.weight"].float().t()
    assert torch.equal(model.transformer.h[0].attn.c_attn.weight, expected)


@pytest.fixture
def hf_dir(tmp_path, hf_gpt2):
    hf_gpt2.save_pretrained(tmp_path / "hf")
    return tmp_path / "hf"


def rewrite_config(hf_dir, **changes):
    config = json.loads((hf_dir / "config.json").read_text())
    (hf_dir / "config.json").write_text(json.dumps({**config, **changes}))


def rewrite_weights(hf_dir, change):
    from safetensors.torch import load_file

    state = load_file(str(hf_dir / "model.safetensors"))
    change(state)
    save_file(state, str(hf_dir / "model.safetensors"), metadata={"format": "pt"})


class RunsCode:
    """An object whose unpickling would run code (here: create a file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda d: rewrite_weights(d, lambda s: s.pop("transformer.h.1.attn.c_proj.bias")), "missing"),
        (lambda d: rewrite_weights(d, lambda s: s.update({"transformer.h.0.attn.c_attn.weight": torch.zeros(32, 64)})),
         r"c_attn.weight has shape \(32, 64\)"),
        (lambda d: rewrite_weights(d, lambda s: s.update({"score.weight": torch.zeros(2, 32)})), "unexpected"),
        (lambda d: rewrite_weights(d, lambda s: s.update({"lm_head.weight": torch.zeros(50257, 32)})),
         "differs from its token embedding"),
        (lambda d: rewrite_config(d, model_type="llama", architectures=["LlamaForCausalLM"]), "GPT-2 language models"),
        (lambda d: rewrite_config(d, activation_function="relu"), "activation_function"),
        (lambda d: rewrite_config(d, scale_attn_by_inverse_layer_idx=True), "scale_attn_by_inverse_layer_idx"),
        (lambda d: rewrite_config(d, vocab_size=50304), "vocab_size is 50304"),
        (lambda d: (d / "config.json").unlink(), "config.json not found"),
        (lambda d: (d / "config.json").write_text("{not json"), "not valid JSON"),
        (lambda d: (d / "model.safetensors").unlink(), "no weights"),
        (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:5000]), "truncated"),
        (lambda d: (d / "vocab.json").write_text(json.dumps({"a": 0, "b": 1})), "not GPT-2's vocabulary"),
    ],
    ids=["missing key", "wrong shape", "unexpected key", "untied head", "llama", "relu", "layer-idx scaling",
         "added tokens", "no config", "bad config", "no weights", "truncated", "other vocabulary"],
)
def test_malformed_or_foreign_checkpoints_are_refused_and_nothing_is_written(tmp_path, hf_dir, spoil, message):
    spoil(hf_dir)
    with pytest.raises(CheckpointError, match=message):
        import_hf(hf_dir, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["hf"]  # no partial directory left behind


def test_pickle_holding_an_arbitrary_object_is_refused_without_running_it(tmp_path, hf_dir):
    marker = tmp_path / "code-ran"
    (hf_dir / "model.safetensors").unlink()
    torch.save({"transformer.wte.weight": RunsCode(marker)}, hf_dir / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="not a file of plain weights .*Unsupported global"):
        import_hf(hf_dir, tmp_path / "run")
    with open(hf_dir / "pytorch_model.bin", "wb") as f:  # a bare pickle, not torch's zip format
        pickle.dump(RunsCode(marker), f, protocol=2)
    with pytest.raises(CheckpointError, match="not a file of plain weights .*Unsupported global"):
        import_hf(hf_dir, tmp_path / "run")
    assert not marker.exists()


def test_pickle_of_plain_values_that_are_not_tensors_is_refused(tmp_path, hf_dir):
    (hf_dir / "model.safetensors").unlink()
    torch.save({"epoch": 3, "state_dict": {"w": torch.zeros(2)}}, hf_dir / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="mapping of tensor names to tensors"):
        import_hf(hf_dir, tmp_path / "run")


def test_missing_shard_is_named(tmp_path, hf_gpt2):
    hf_gpt2.save_pretrained(tmp_path / "hf", max_shard_size="2MB")
    shard = max((tmp_path / "hf").glob("model-*.safetensors"))
    shard.unlink()
    with pytest.raises(CheckpointError, match=f"shard {shard.name} .* is missing"):
        import_hf(tmp_path / "hf", tmp_path / "run")


def test_existing_run_is_kept_unless_forced(tmp_path, hf_dir, hf_gpt2):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="already exists"):
        import_hf(hf_dir, tmp_path / "run")
    assert (tmp_path / "run" / "notes.txt").read_text() == "keep me"
    assert_same_logits(hf_gpt2, import_hf(hf_dir, tmp_path / "run", force=True))
    assert not (tmp_path / "run" / "notes.txt").exists()


def test_cli_imports_and_reports_errors_in_one_line(tmp_path, hf_dir, hf_gpt2, capsys):
    assert main(["import-hf", str(hf_dir), "--out", str(tmp_path / "run")]) == 0
    assert_same_logits(hf_gpt2, tmp_path / "run")
    assert main(["import-hf", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run2")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkpoint directory not found" in err


def test_gpt2_tokenizer_saved_by_transformers_is_accepted_and_another_refused(tmp_path, hf_dir, hf_gpt2):
    save_hf_tokenizer(tmp_path, GPT2Tokenizer(), max_length=48)
    AutoTokenizer.from_pretrained(tmp_path, local_files_only=True).save_pretrained(hf_dir)
    assert_same_logits(hf_gpt2, import_hf(hf_dir, tmp_path / "run"))
    spec = json.loads((hf_dir / "tokenizer.json").read_text())
    spec["model"]["vocab"]["Hello"], spec["model"]["vocab"]["world"] = spec["model"]["vocab"]["world"], 15496
    (hf_dir / "tokenizer.json").write_text(json.dumps(spec))
    for name in ("vocab.json", "merges.txt"):
        (hf_dir / name).unlink(missing_ok=True)
    with pytest.raises(CheckpointError, match="not GPT-2's vocabulary"):
        import_hf(hf_dir, tmp_path / "run2")
