"""A minimal sampler to show what the model writes while it trains."""

from __future__ import annotations

import torch

from rapgpt.data.tokenizer import Tokenizer
from rapgpt.model import GPT


@torch.no_grad()
def sample_text(model: GPT, tokenizer: Tokenizer, length: int, temperature: float = 0.8, seed: int = 0) -> str:
    """`length` tokens sampled after an end-of-text token, with a private generator (the training RNG is left
    untouched, so sampling does not change the run)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    idx = torch.tensor([[tokenizer.eot_id]], device=device)
    for _ in range(length):
        logits, _ = model(idx[:, -model.config.block_size :], last_only=True)
        probs = torch.softmax(logits[:, -1].float() / temperature, dim=-1)
        idx = torch.cat([idx, torch.multinomial(probs, 1, generator=generator)], dim=1)
    model.train(was_training)
    return tokenizer.decode(idx[0, 1:].tolist())
