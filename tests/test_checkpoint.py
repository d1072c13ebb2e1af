import pytest
import torch

from rapgpt.checkpoint import load_run, model_from_state, model_state, save_run
from rapgpt.data.tokenizer import CharTokenizer
from rapgpt.errors import CheckpointError
from rapgpt.model import GPT, GPTConfig


def test_run_round_trips_exactly(tmp_path, tiny_model):
    tok = CharTokenizer.from_texts(["".join(chr(i) for i in range(40, 105))])
    save_run(tmp_path / "run", tiny_model, tok, step=7)
    model, tok2, config = load_run(tmp_path / "run")
    assert tok2 == tok and config["step"] == 7
    for (name, a), b in zip(tiny_model.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert model.lm_head.weight is model.transformer.wte.weight


def test_truncated_or_mismatched_weights_are_refused(tmp_path, tiny_model):
    tok = CharTokenizer.from_texts(["".join(chr(i) for i in range(40, 105))])
    run = save_run(tmp_path / "run", tiny_model, tok)
    data = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_run(run)
    other = GPT(GPTConfig(vocab_size=67, block_size=32, n_layer=1, n_head=4, n_embd=32))
    save_run(run, other, tok)
    config = (run / "config.json").read_text().replace('"n_layer": 1', '"n_layer": 2')
    (run / "config.json").write_text(config)
    with pytest.raises(CheckpointError, match="missing"):
        load_run(run)
    with pytest.raises(CheckpointError, match="not found"):
        load_run(tmp_path / "nowhere")


def test_saved_files_are_readable_by_others_like_any_file(tmp_path, tiny_model):
    import os
    import stat

    tok = CharTokenizer.from_texts(["".join(chr(i) for i in range(40, 105))])
    run = save_run(tmp_path / "run", tiny_model, tok)
    umask = os.umask(0)
    os.umask(umask)
    mode = stat.S_IMODE((run / "model.safetensors").stat().st_mode)
    assert mode == 0o666 & ~umask


def test_model_from_state_holds_the_weights_with_the_head_tied(tiny_model):
    state = model_state(tiny_model)
    model = model_from_state(tiny_model.config, state, "test")
    assert model.lm_head.weight is model.transformer.wte.weight
    assert all(p.device.type == "cpu" and p.requires_grad for p in model.parameters())
    idx = torch.randint(0, 67, (2, 9))
    assert torch.equal(model(idx)[0], tiny_model(idx)[0])
    with pytest.raises(CheckpointError, match="missing"):
        model_from_state(tiny_model.config, {k: v for k, v in state.items() if "ln_f" not in k}, "test")
