import itertools
import math

import numpy as np
import pytest
import torch

from rapgpt.data.dataset import DatasetWriter, TokenDataset
from rapgpt.data.tokenizer import CharTokenizer, GPT2Tokenizer
from rapgpt.errors import DataError
from rapgpt.evaluate.intrinsic import characters, intrinsic, token_stream, window_starts
from rapgpt.model import GPT, GPTConfig

TEXTS = ["the moon keeps score over the rooftops\n", "we ride slow, we ride low\n", "quiet streets, loud heart\n"]


@pytest.fixture
def dataset(tmp_path) -> TokenDataset:
    tok = CharTokenizer.from_texts(TEXTS)
    with DatasetWriter(tmp_path / "ds", tok) as w:
        w.add_song("train", tok.encode(TEXTS[0]), "Ada", "one")
        w.add_song("val", tok.encode(TEXTS[1]), "Ada", "two")
        w.add_song("val", tok.encode(TEXTS[2]), "Bo", "three")
        w.commit(stats={}, options={})
    return TokenDataset(tmp_path / "ds")


@torch.no_grad()
def naive(model: GPT, tokenizer, stream: np.ndarray) -> tuple[float, float, float]:
    """Loss per token, accuracy and bits per character, token by token in float64: token i is predicted from the
    tokens of its window before it, windows starting every block_size tokens."""
    model = model.double()
    T = model.config.block_size
    nll, hits = [], []
    for i in range(1, len(stream)):
        start = (i - 1) // T * T
        context = torch.tensor(stream[start:i], dtype=torch.long)[None]
        logits = model(context)[0][0, -1]
        logp = torch.log_softmax(logits, -1)
        nll.append(-float(logp[stream[i]]))
        hits.append(int(logits.argmax()) == int(stream[i]))
    text = "".join("\n" if t == tokenizer.eot_id else tokenizer.decode([int(t)]) for t in stream[1:])
    return float(np.mean(nll)), float(np.mean(hits)), sum(nll) / math.log(2) / len(text)


def test_metrics_match_a_token_by_token_float64_computation(dataset):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=dataset.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=16)).eval()
    stream = token_stream(dataset, "val")  # 50 tokens: windows of 16 predictions, the last one shorter
    r = intrinsic(model, dataset.tokenizer, stream, max_tokens=None, batch_size=2)
    loss, accuracy, bpc = naive(model, dataset.tokenizer, stream)
    assert r.tokens == len(stream) - 1
    assert r.characters == len(stream) - 1  # one character per token for a char model, eot included
    assert r.loss == pytest.approx(loss, rel=1e-5)
    assert r.perplexity == pytest.approx(math.exp(loss), rel=1e-5)
    assert r.accuracy == pytest.approx(accuracy)
    assert r.bits_per_character == pytest.approx(bpc, rel=1e-5)
    assert r.bits_per_token == pytest.approx(loss / math.log(2), rel=1e-5)


def test_capped_windows_are_spread_over_the_stream_without_overlap():
    starts = window_starts(10_000, 32, 320)
    assert len(starts) == 10 and starts[0] == 0 and starts[-1] == 10_000 - 1 - 32
    assert all(b - a >= 33 for a, b in itertools.pairwise(starts))
    assert window_starts(100, 32, None) == [0, 32, 64, 96]
    assert window_starts(1, 32, None) == []


def test_artist_stream_holds_their_songs_each_ended_by_eot(dataset):
    stream = token_stream(dataset, "val", "Bo")
    assert dataset.tokenizer.decode(stream.tolist()) == TEXTS[2] + "<|endoftext|>"
    with pytest.raises(DataError, match="no val songs by 'Nobody'"):
        token_stream(dataset, "val", "Nobody")


def test_characters_of_bpe_tokens_count_the_decoded_text():
    tok = GPT2Tokenizer()
    text = "Café au lait, s'il vous plaît — 🎤"
    ids = np.array(tok.encode(text) + [tok.eot_id] + tok.encode("ok"))
    assert characters(tok, ids) == len(text) + 1 + 2


def test_training_evaluations_score_windows_as_rapgpt_eval_does(dataset):
    from rapgpt.training.evaluate import evaluate_splits
    from rapgpt.training.runtime import Runtime

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=dataset.tokenizer.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=16))
    stream = token_stream(dataset, "val")[: 3 * 8 + 1]  # three whole windows
    windows = torch.stack([torch.from_numpy(stream[s : s + 9].astype(np.int64)) for s in (0, 8, 16)])
    cpu = Runtime(torch.device("cpu"), "fp32")
    trained = evaluate_splits(model.eval(), {"val": (windows[:, :-1], windows[:, 1:])}, 2, cpu)
    scored = intrinsic(model, dataset.tokenizer, stream, max_tokens=None)
    assert trained["val_loss"] == pytest.approx(scored.loss, rel=1e-12)
    assert trained["val_acc"] == scored.accuracy and scored.tokens == 24
