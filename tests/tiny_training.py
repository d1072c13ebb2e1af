"""Tiny character models trained in a test on text the test writes, for behaviour that needs a model which has
learnt something (a rhyme scheme's effect, a lexicon's words) and not only random weights."""

from __future__ import annotations

import torch

from rapgpt.data.tokenizer import CharTokenizer
from rapgpt.model import GPT, GPTConfig


def train_char_model(texts: list[str], steps: int = 150, block: int = 64, seed: int = 0,
                     tokenizer: CharTokenizer | None = None) -> tuple[GPT, CharTokenizer]:
    """A 2-layer character model fitted for `steps` AdamW steps on `texts`, each one a song after an end-of-text
    token, as in a prepared dataset."""
    tokenizer = tokenizer or CharTokenizer.from_texts(texts)
    ids = torch.tensor([i for t in texts for i in (tokenizer.eot_id, *tokenizer.encode(t))])
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=block, n_layer=2, n_head=2, n_embd=48,
                          dropout=0.0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - block - 1, (16,)).tolist()
        x = torch.stack([ids[s : s + block] for s in starts])
        y = torch.stack([ids[s + 1 : s + block + 1] for s in starts])
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), tokenizer
