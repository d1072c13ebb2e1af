import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rapgpt.checkpoint import load_run
from rapgpt.cli import main
from rapgpt.errors import CheckpointError, ConfigError
from rapgpt.interop import export
from rapgpt.interop.hf_export import export_hf
from rapgpt.interop.hf_import import import_hf


def greedy(model, ids: list[int], steps: int, eot_id: int) -> list[int]:
    """rapgpt's side: append the argmax of the model's forward, stopping after end-of-text as transformers does."""
    idx = torch.tensor([ids])
    for _ in range(steps):
        logits, _ = model(idx, last_only=True)
        next_id = logits[0, -1].argmax().view(1, 1)
        idx = torch.cat([idx, next_id], dim=1)
        if next_id.item() == eot_id:
            break
    return idx[0].tolist()


@pytest.mark.parametrize("kind, bias", [("gpt2", True), ("char", True), ("char", False), ("bpe", True)])
def test_exported_model_gives_rapgpt_logits_and_greedy_continuation(tmp_path, make_run, make_tokenizer, kind, bias):
    tokenizer = make_tokenizer(kind)
    model = make_run(tmp_path / "run", tokenizer, bias=bias)
    out = export_hf(tmp_path / "run", tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    hf.eval()
    prompt = tokenizer.encode("Mic check, one two")
    assert AutoTokenizer.from_pretrained(out, local_files_only=True)("Mic check, one two")["input_ids"] == prompt
    idx = torch.randint(0, tokenizer.vocab_size, (3, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (hf(idx).logits - model(idx)[0]).abs().max() < 1e-4
        ours = greedy(model, prompt, 24, tokenizer.eot_id)
        theirs = hf.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                             do_sample=False, max_new_tokens=24, pad_token_id=tokenizer.eot_id)
    assert theirs[0].tolist() == ours and len(ours) > len(prompt) + 1


def test_gpt2_export_imports_back_bit_identical(tmp_path, make_run, make_tokenizer):
    model = make_run(tmp_path / "run", make_tokenizer("gpt2"))
    back, _, _ = load_run(import_hf(export_hf(tmp_path / "run", tmp_path / "hf"), tmp_path / "back"))
    for (name, a), b in zip(model.state_dict().items(), back.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_export_directory_holds_what_transformers_and_readers_need(tmp_path, make_run, make_tokenizer):
    make_run(tmp_path / "run", make_tokenizer("gpt2"))
    out = export(tmp_path / "run", tmp_path / "hf", "hf")
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "config.json", "merges.txt", "model.safetensors", "tokenizer_config.json", "vocab.json"
    ]
    with pytest.raises(ConfigError, match="unknown export format 'onnx'"):
        export(tmp_path / "run", tmp_path / "other", "onnx")


def test_existing_output_is_kept_unless_forced(tmp_path, make_run, make_tokenizer):
    make_run(tmp_path / "run", make_tokenizer("char"))
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="already exists .*--force"):
        export_hf(tmp_path / "run", tmp_path / "hf")
    assert (tmp_path / "hf" / "config.json").read_text() == "{}"
    export_hf(tmp_path / "run", tmp_path / "hf", force=True)
    assert (tmp_path / "hf" / "tokenizer.json").is_file() and (tmp_path / "hf" / "config.json").read_text() != "{}"


def test_failed_export_leaves_no_directory(tmp_path, make_run, make_tokenizer):
    make_run(tmp_path / "run", make_tokenizer("char"))
    (tmp_path / "run" / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(CheckpointError, match="truncated"):
        export_hf(tmp_path / "run", tmp_path / "hf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_cli_exports_and_reports_errors_in_one_line(tmp_path, make_run, make_tokenizer, capsys):
    make_run(tmp_path / "run", make_tokenizer("char"))
    assert main(["export", str(tmp_path / "run"), "--format", "hf", "--out", str(tmp_path / "hf")]) == 0
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "hf", local_files_only=True).config.vocab_size > 2
    capsys.readouterr()
    assert main(["export", str(tmp_path / "nowhere"), "--out", str(tmp_path / "hf2")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run directory not found" in err


def test_export_over_its_own_run_is_refused_even_when_forced(tmp_path, make_run, make_tokenizer):
    make_run(tmp_path / "run", make_tokenizer("char"))
    with pytest.raises(CheckpointError, match="choose another output directory"):
        export_hf(tmp_path / "run", tmp_path / "run", force=True)
    assert load_run(tmp_path / "run")[0].config.n_layer == 2
