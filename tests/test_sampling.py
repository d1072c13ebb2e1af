import pytest
import torch

from rapgpt.generate import kernels
from rapgpt.generate.params import SamplingParams
from rapgpt.generate.sampling import (
    TOP_P_CANDIDATES,
    TokenHistory,
    apply_penalties,
    draw,
    filter_logits,
    sample_tokens,
)

NO_SAMPLER = "rapgpt's native sampler does not build here"
needs_sampler = pytest.mark.skipif(not kernels.sampler_available(), reason=NO_SAMPLER)


@pytest.fixture(params=["native", "pytorch"])
def sampler(request, monkeypatch):
    """Each test that draws runs with the native sampler (where it builds) and with the PyTorch path."""
    if request.param == "native" and not kernels.sampler_available():
        pytest.skip(NO_SAMPLER)
    if request.param == "pytorch":
        monkeypatch.setattr(kernels, "sampler_available", lambda: False)
    return request.param


def kept(logits: torch.Tensor) -> set[int]:
    return set(torch.nonzero(torch.isfinite(logits)).flatten().tolist())


def sample_token(logits: torch.Tensor, history: TokenHistory, p: SamplingParams, generator: torch.Generator) -> int:
    """One sequence's next token, as the decoder takes it: penalties, then the filters and the draw."""
    (token,) = sample_tokens(apply_penalties(logits, history, p)[None], p, [generator])
    return token


def params(**kw) -> SamplingParams:
    """No filter unless asked for, temperature 1."""
    return SamplingParams(**{"temperature": 1.0, "top_p": None, **kw})


def naive_top_p(probs: list[float], top_p: float) -> set[int]:
    """Walk the tokens from most to least likely, taking each while the mass taken so far is below top_p."""
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    taken, mass = set(), 0.0
    for i in order:
        if mass >= top_p:
            break
        taken.add(i)
        mass += probs[i]
    return taken


def test_top_k_keeps_exactly_the_k_largest():
    logits = torch.tensor([0.5, 3.0, -1.0, 2.0, 2.5, 0.0])
    assert kept(filter_logits(logits, params(top_k=3))) == {1, 3, 4}
    assert kept(filter_logits(logits, params(top_k=1))) == {1}
    assert kept(filter_logits(logits, params(top_k=10))) == set(range(6))


@pytest.mark.parametrize("top_p, expected", [(0.4, {0}), (0.6, {0, 1}), (0.8, {0, 1, 2}), (0.95, {0, 1, 2, 3}),
                                             (1.0, {0, 1, 2, 3})])
def test_top_p_keeps_the_smallest_set_holding_the_mass(top_p, expected):
    logits = torch.tensor([0.5, 0.25, 0.15, 0.1]).log()
    assert kept(filter_logits(logits, params(top_p=top_p))) == expected


@pytest.mark.parametrize("temperature", [0.3, 1.0, 5.0])
@pytest.mark.parametrize("top_p", [0.1, 0.5, 0.9, 0.99])
def test_top_p_matches_naive_reference_beyond_the_candidate_window(temperature, top_p):
    """A flat distribution over many tokens needs more than TOP_P_CANDIDATES of them."""
    g = torch.Generator().manual_seed(int(top_p * 100 + temperature * 10))
    logits = torch.randn(4 * TOP_P_CANDIDATES, generator=g, dtype=torch.float64).float() * 0.5
    probs = torch.softmax(logits.double() / temperature, dim=-1).tolist()
    got = kept(filter_logits(logits, params(top_p=top_p, temperature=temperature)))
    assert got == naive_top_p(probs, top_p)
    if temperature >= 1 and top_p >= 0.5:
        assert len(got) > TOP_P_CANDIDATES


@pytest.mark.parametrize("spread, top_p", [(0.2, 0.5), (0.2, 0.95), (1.0, 0.5), (1.0, 0.95), (3.0, 0.95)])
def test_top_p_on_a_flat_vocabulary_of_gpt2_size_matches_naive_reference(spread, top_p):
    """Beyond the candidate window, the band search: flat and less flat distributions over 50257 tokens."""
    g = torch.Generator().manual_seed(int(spread * 10))
    logits = torch.randn(50257, generator=g, dtype=torch.float64).float() * spread
    probs = torch.softmax(logits, dim=-1).tolist()  # the float32 probabilities sampling sees, summed in float64
    got = kept(filter_logits(logits, params(top_p=top_p)))
    assert got == naive_top_p(probs, top_p) and len(got) > TOP_P_CANDIDATES


def test_top_p_band_search_leaves_out_tokens_that_top_k_removed():
    logits = torch.randn(2000, generator=torch.Generator().manual_seed(3)) * 0.1
    got = kept(filter_logits(logits, params(top_k=1000, top_p=0.9)))
    top = set(torch.topk(logits, 1000).indices.tolist())
    assert got < top and len(got) > TOP_P_CANDIDATES


def test_draw_never_takes_a_token_of_zero_probability(sampler):
    logits = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.5, 0.0]]).log()
    generators = [torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)]
    drawn = torch.tensor([sample_tokens(logits, params(), generators) for _ in range(200)])
    assert set(drawn[:, 0].tolist()) == {2} and set(drawn[:, 1].tolist()) == {1, 3}
    edges = torch.tensor([0.0, 0.4999, 0.5, 0.9999999])  # the variate's extremes and the one boundary
    assert draw(torch.tensor([[0.0, 0.5, 0.0, 0.5, 0.0]] * 4), edges).tolist() == [1, 1, 3, 3]


@needs_sampler
@pytest.mark.parametrize("settings", [{}, {"top_k": 40}, {"top_k": 3000, "top_p": 0.9}, {"min_p": 0.05},
                                      {"top_p": 0.5, "min_p": 0.2, "temperature": 1.3}, {"top_p": None}])
@pytest.mark.parametrize("spread", [0.3, 3.0, 8.0])
def test_native_sampler_draws_the_tokens_of_a_float64_reference(settings, spread):
    """At the same variates the native sampler takes the tokens that the PyTorch filters and draw take in float64,
    for flat rows (thousands of tokens kept) and peaked ones (a handful) of GPT-2's vocabulary size."""
    g = torch.Generator().manual_seed(int(spread * 10))
    rows = torch.randn(3, 50257, generator=g) * spread
    p = SamplingParams(**settings)
    probs = torch.softmax(rows / p.temperature, dim=-1)
    reference = torch.softmax(filter_logits(rows.double(), p), dim=-1)
    top_k, top_p, min_p = p.top_k or 0, p.top_p or 1.0, p.min_p or 0.0
    for u in torch.rand(100, 3, generator=g, dtype=torch.float64):
        native = torch.ops.rapgpt.sample_rows(probs, u, top_k, top_p, min_p)
        assert native.tolist() == draw(reference, u).tolist()


@pytest.mark.parametrize("settings", [{}, {"top_k": 40}, {"min_p": 0.05}, {"top_p": 0.5, "temperature": 1.3},
                                      {"temperature": 0}])
def test_each_row_of_a_batch_is_filtered_and_drawn_as_if_alone(settings, sampler):
    """Peaked and flat rows of GPT-2's vocabulary size together (the flat ones take the band search): a row's
    kept tokens and its draw do not depend on the other rows."""
    g = torch.Generator().manual_seed(3)
    spread = torch.tensor([4.0, 0.5, 8.0, 0.2, 3.0])[:, None]
    rows = torch.randn(5, 50257, generator=g) * spread
    p = SamplingParams(**settings)
    batch = sample_tokens(rows, p, [torch.Generator().manual_seed(i) for i in range(5)])
    alone = [sample_tokens(rows[i : i + 1], p, [torch.Generator().manual_seed(i)])[0] for i in range(5)]
    assert batch == alone
    if not p.greedy:
        filtered = filter_logits(rows, p)
        for i in range(5):
            assert torch.equal(filtered[i], filter_logits(rows[i], p))
        assert len({int(torch.isfinite(row).sum()) for row in filtered}) >= 4  # the rows kept different amounts


def test_min_p_keeps_tokens_at_least_that_fraction_of_the_most_likely():
    logits = torch.tensor([0.4, 0.21, 0.1, 0.19, 0.1]).log()
    assert kept(filter_logits(logits, params(min_p=0.5))) == {0, 1}
    assert kept(filter_logits(logits, params(min_p=0.24))) == {0, 1, 2, 3, 4}
    assert kept(filter_logits(logits, params(min_p=0.26))) == {0, 1, 3}


def test_filters_apply_top_k_then_top_p_then_min_p():
    logits = torch.tensor([0.30, 0.25, 0.20, 0.15, 0.10]).log()
    # top-k 4 renormalizes to [.333, .278, .222, .167]; top-p 0.7 then keeps 3 of them; min-p 0.7 of .333 drops
    # the third (.222 < .233).
    assert kept(filter_logits(logits, params(top_k=4, top_p=0.7))) == {0, 1, 2}
    assert kept(filter_logits(logits, params(top_k=4, top_p=0.7, min_p=0.7))) == {0, 1}


def test_temperature_divides_the_kept_logits():
    logits = torch.tensor([1.0, -2.0, 3.0])
    assert torch.allclose(filter_logits(logits, params(temperature=0.5)), logits * 2)


def test_repetition_penalty_divides_positive_and_multiplies_negative_seen_logits():
    logits = torch.tensor([2.0, -2.0, 2.0, -2.0])
    p = params(repetition_penalty=2.0)
    history = TokenHistory([0, 1], vocab_size=4, params=p)
    assert apply_penalties(logits, history, p).tolist() == [1.0, -4.0, 2.0, -2.0]


def test_frequency_and_presence_penalties_count_only_the_continuation():
    logits = torch.zeros(4)
    p = params(frequency_penalty=0.5, presence_penalty=1.0)
    history = TokenHistory([3, 3], vocab_size=4, params=p)  # the prompt does not count
    for token in (1, 1, 1, 2):
        history.add(token)
    assert apply_penalties(logits, history, p).tolist() == [0.0, -2.5, -1.5, 0.0]


def test_greedy_takes_the_argmax_after_penalties(sampler):
    logits = torch.tensor([1.0, 3.0, 2.0])
    p = SamplingParams(temperature=0, repetition_penalty=4.0)
    assert sample_token(logits, TokenHistory([], 3, p), p, torch.Generator()) == 1
    assert sample_token(logits, TokenHistory([1], 3, p), p, torch.Generator()) == 2


def test_draws_follow_the_filtered_distribution_and_never_leave_it(sampler):
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    p = params(top_p=0.9)  # keeps the first three: renormalized [0.526, 0.316, 0.158]
    g = torch.Generator().manual_seed(0)
    history = TokenHistory([], 4, p)
    counts = torch.bincount(torch.tensor([sample_token(logits, history, p, g) for _ in range(6000)]), minlength=4)
    freq = counts / counts.sum()
    expected = torch.tensor([0.5, 0.3, 0.15, 0.0]) / 0.95
    assert counts[3] == 0
    assert torch.allclose(freq, expected, atol=0.025)


def test_the_same_generator_seed_gives_the_same_draws(sampler):
    logits = torch.randn(50)
    p = SamplingParams()
    draws = [
        [sample_token(logits, TokenHistory([], 50, p), p, g) for _ in range(20)]
        for g in (torch.Generator().manual_seed(7), torch.Generator().manual_seed(7))
    ]
    assert draws[0] == draws[1] and len(set(draws[0])) > 1
