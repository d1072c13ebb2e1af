import numpy as np
import pytest
import torch

from rapgpt.errors import DataError
from rapgpt.training.batches import WindowSampler, eval_windows

TOKENS = np.arange(1000, dtype=np.uint16)


def test_windows_are_inputs_and_their_next_token_targets():
    ((x, y),) = WindowSampler(TOKENS, 16, 4, 1, seed=0).micro_batches(0)
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.int64
    assert torch.equal(y, x + 1)  # consecutive tokens: the target is the next one
    assert torch.equal(x[:, 1:], x[:, :-1] + 1)


def test_windows_depend_only_on_the_seed_and_the_step():
    a, b = WindowSampler(TOKENS, 16, 4, 1, seed=3), WindowSampler(TOKENS, 16, 4, 1, seed=3)
    a.micro_batches(0)  # drawing other steps first changes nothing
    assert torch.equal(a.micro_batches(5)[0][0], b.micro_batches(5)[0][0])
    assert not torch.equal(a.micro_batches(5)[0][0], a.micro_batches(6)[0][0])
    assert not torch.equal(a.micro_batches(5)[0][0], WindowSampler(TOKENS, 16, 4, 1, seed=4).micro_batches(5)[0][0])


def test_windows_reach_both_ends_and_never_past_them():
    short = np.arange(20, dtype=np.uint16)
    sampler = WindowSampler(short, 16, 8, 1, 0)
    starts = torch.cat([x[:, 0] for step in range(200) for x, _ in sampler.micro_batches(step)])
    assert set(starts.tolist()) == {0, 1, 2, 3}  # windows of 17 tokens fit at offsets 0..3


def test_global_batch_is_the_same_however_it_is_split_into_micro_batches_and_processes():
    whole = WindowSampler(TOKENS, 8, 12, 1, seed=1).micro_batches(7)[0][0]
    parts = [
        x
        for rank in range(2)
        for x, _ in WindowSampler(TOKENS, 8, 2, 3, seed=1, rank=rank, world_size=2).micro_batches(7)
    ]
    assert sorted(map(tuple, whole.tolist())) == sorted(map(tuple, torch.cat(parts).tolist()))
    accumulated = torch.cat([x for x, _ in WindowSampler(TOKENS, 8, 4, 3, seed=1).micro_batches(7)])
    assert torch.equal(accumulated, whole)  # in the same order, too


def test_tokens_per_step_counts_every_process():
    assert WindowSampler(TOKENS, 8, 2, 3, seed=1, rank=1, world_size=2).tokens_per_step == 8 * 2 * 3 * 2


def test_eval_windows_are_fixed_and_shared_out_among_processes():
    x, _ = eval_windows(TOKENS, 8, 10, seed=0, split="val")
    again, _ = eval_windows(TOKENS, 8, 10, seed=0, split="val")
    assert torch.equal(x, again) and x.shape == (10, 8)
    shares = [eval_windows(TOKENS, 8, 10, seed=0, split="val", rank=r, world_size=2)[0] for r in range(2)]
    assert sorted(map(tuple, torch.cat(shares).tolist())) == sorted(map(tuple, x.tolist()))
    assert not torch.equal(eval_windows(TOKENS, 8, 10, seed=0, split="train")[0], x)


def test_split_shorter_than_a_window_is_refused():
    with pytest.raises(DataError, match="val split has 8 tokens.*context length 8"):
        eval_windows(np.arange(8), 8, 4, 0, "val")


def test_empty_validation_split_is_refused_naming_the_fix():
    with pytest.raises(DataError, match="val split is empty.*nothing to evaluate.*--val-fraction.*--separator"):
        eval_windows(np.zeros(0, dtype=np.uint16), 8, 4, 0, "val")
