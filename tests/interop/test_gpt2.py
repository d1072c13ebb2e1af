import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from rapgpt.errors import CheckpointError
from rapgpt.interop.gpt2 import (
    adaptable_modules,
    from_hf_state,
    from_peft_key,
    gpt_config,
    hf_config,
    shortest_targets,
    swap_conv1d,
    to_hf_state,
    to_peft_key,
)
from rapgpt.model import GPT, GPTConfig

CONFIG = GPTConfig(vocab_size=70, block_size=24, n_layer=2, n_head=4, n_embd=32, dropout=0.1)


def test_hf_config_is_read_back_as_the_same_config_by_rapgpt_and_transformers():
    hf = hf_config(CONFIG, eot_id=0)
    assert gpt_config(hf, "test") == CONFIG
    theirs = GPT2Config(**hf)
    assert (theirs.n_layer, theirs.n_head, theirs.n_embd, theirs.n_positions, theirs.vocab_size) == (2, 4, 32, 24, 70)
    assert theirs.eos_token_id == theirs.bos_token_id == 0 and theirs.tie_word_embeddings


def test_absent_config_fields_take_transformers_defaults():
    ours, theirs = gpt_config({"model_type": "gpt2"}, "test"), GPT2Config()
    assert (ours.vocab_size, ours.block_size, ours.n_layer, ours.n_head, ours.n_embd, ours.dropout) == (
        theirs.vocab_size, theirs.n_positions, theirs.n_layer, theirs.n_head, theirs.n_embd, theirs.resid_pdrop
    )


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}, "GPT-2 language models only"),
        ({"architectures": ["GPT2ForSequenceClassification"]}, "GPT-2 language models only"),
        ({"activation_function": "gelu"}, "activation_function='gelu'"),
        ({"layer_norm_epsilon": 1e-6}, "layer_norm_epsilon"),
        ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx"),
        ({"scale_attn_weights": False}, "scale_attn_weights"),
        ({"n_inner": 100}, "n_inner=100"),
        ({"n_head": 5}, "divisible"),
    ],
)
def test_unsupported_configs_are_refused_by_name(change, message):
    with pytest.raises(CheckpointError, match=message):
        gpt_config({**hf_config(CONFIG, eot_id=0), **change}, "test")


def test_tanh_gelu_variants_and_explicit_mlp_width_are_accepted():
    for act in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        assert gpt_config({**hf_config(CONFIG, 0), "activation_function": act, "n_inner": 128}, "test") == CONFIG


def test_swap_conv1d_transposes_exactly_the_conv1d_weights_and_undoes_itself():
    state = GPT(CONFIG).state_dict()
    swapped = swap_conv1d(state)
    for name, tensor in state.items():
        is_conv = name.split(".")[-2] in ("c_attn", "c_proj", "c_fc") and name.endswith("weight")
        assert torch.equal(swapped[name], tensor.t() if is_conv else tensor), name
    assert all(torch.equal(a, state[k]) for k, a in swap_conv1d(swapped).items())


@pytest.mark.parametrize("bias", [True, False])
def test_exported_state_has_transformers_names_and_shapes(bias):
    ours = to_hf_state(GPT(GPTConfig(**{**CONFIG.to_dict(), "bias": bias})))
    theirs = GPT2LMHeadModel(GPT2Config(**hf_config(CONFIG, eot_id=0))).state_dict()
    theirs.pop("lm_head.weight")  # tied: stored once, as the token embedding
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    if not bias:
        assert all(not v.any() for k, v in ours.items() if k.endswith("bias"))


def test_state_round_trips_through_the_hf_layout_exactly(randomize):
    model = randomize(GPT(CONFIG))
    back = from_hf_state(to_hf_state(model), CONFIG, tied=True, source="test")
    for name, tensor in model.state_dict().items():
        if name != "lm_head.weight":
            assert torch.equal(back[name], tensor), name


def test_bare_gpt2model_keys_and_mask_buffers_are_read(randomize):
    """OpenAI's `gpt2` checkpoint is saved from GPT2Model: no "transformer." prefix, causal-mask buffers stored."""
    model = randomize(GPT(CONFIG))
    hf = {k.removeprefix("transformer."): v for k, v in to_hf_state(model).items()}
    hf["h.0.attn.bias"] = torch.ones(1, 1, 24, 24).tril()
    hf["h.1.attn.masked_bias"] = torch.tensor(-1e4)
    back = from_hf_state(hf, CONFIG, tied=True, source="test")
    assert torch.equal(back["transformer.h.1.mlp.c_fc.weight"], model.transformer.h[1].mlp.c_fc.weight)


def test_head_equal_to_the_embedding_is_accepted_and_a_different_one_refused(randomize):
    state = to_hf_state(randomize(GPT(CONFIG)))
    from_hf_state({**state, "lm_head.weight": state["transformer.wte.weight"].clone()}, CONFIG, False, "test")
    untied = {**state, "lm_head.weight": state["transformer.wte.weight"] + 1}
    with pytest.raises(CheckpointError, match="differs from its token embedding"):
        from_hf_state(untied, CONFIG, tied=False, source="test")
    with pytest.raises(CheckpointError, match="no lm_head.weight"):
        from_hf_state(state, CONFIG, tied=False, source="test")


def test_missing_unexpected_and_misshapen_tensors_are_refused():
    state = to_hf_state(GPT(CONFIG))
    with pytest.raises(CheckpointError, match=r"missing \['transformer.h.1.ln_2.bias'\]"):
        from_hf_state({k: v for k, v in state.items() if k != "transformer.h.1.ln_2.bias"}, CONFIG, True, "test")
    with pytest.raises(CheckpointError, match="unexpected"):
        from_hf_state({**state, "transformer.h.2.ln_1.weight": torch.ones(32)}, CONFIG, True, "test")
    with pytest.raises(CheckpointError, match=r"c_fc.weight has shape \(128, 32\)"):
        bad = {**state, "transformer.h.0.mlp.c_fc.weight": state["transformer.h.0.mlp.c_fc.weight"].t()}
        from_hf_state(bad, CONFIG, True, "test")


def test_shortest_targets_select_exactly_the_adapted_layers():
    modules = adaptable_modules(CONFIG)
    proj = [f"transformer.h.{i}.{m}.c_proj" for i in range(2) for m in ("attn", "mlp")]
    assert shortest_targets(proj + ["transformer.wte"], modules) == ["c_proj", "wte"]
    assert shortest_targets(proj[::2], modules) == ["attn.c_proj"]
    assert shortest_targets(["transformer.h.1.mlp.c_fc"], modules) == ["h.1.mlp.c_fc"]


@pytest.mark.parametrize("name, embedding, key", [
    ("transformer.h.0.attn.c_attn.lora_A", False, "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"),
    ("transformer.h.1.mlp.c_proj.lora_B", False, "base_model.model.transformer.h.1.mlp.c_proj.lora_B.weight"),
    ("transformer.wte.lora_A", True, "base_model.model.transformer.wte.lora_embedding_A"),
])
def test_peft_keys_map_both_ways(name, embedding, key):
    assert to_peft_key(name, embedding) == key
    assert from_peft_key(key) == (name, embedding)
    assert from_peft_key(key.replace("lora_", "lora_magnitude_")) is None
