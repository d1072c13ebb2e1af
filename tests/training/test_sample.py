import torch

from rapgpt.data.tokenizer import CharTokenizer
from rapgpt.model import GPT, GPTConfig
from rapgpt.training.sample import sample_text


def test_sample_is_reproducible_and_leaves_the_global_rng_alone():
    tokenizer = CharTokenizer.from_texts(["abc def"])
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=8, n_layer=1, n_head=1, n_embd=8))
    rng = torch.get_rng_state()
    first = sample_text(model, tokenizer, length=20, seed=1)
    assert torch.equal(torch.get_rng_state(), rng)
    assert first == sample_text(model, tokenizer, length=20, seed=1)
    assert first != sample_text(model, tokenizer, length=20, seed=2)
    assert model.training  # back in the mode it was in
