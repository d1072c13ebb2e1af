import logging
from dataclasses import replace

import pytest
import torch

from rapgpt.data.tokenizer import CharTokenizer, GPT2Tokenizer
from rapgpt.errors import TokenizerError
from rapgpt.generate import BatchDecoder, SamplingParams, generate, stream
from rapgpt.generate import decoder as decoder_module
from rapgpt.generate.decoder import SLIDE_KEEP
from rapgpt.model import GPT, GPTConfig

CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ \n.,'!?-01234"
GREEDY = SamplingParams(temperature=0, max_new_tokens=12)


@pytest.fixture
def tok() -> CharTokenizer:
    return CharTokenizer(list(CHARS))


@pytest.fixture
def model(tok, tiny_config) -> GPT:
    assert tiny_config.vocab_size == tok.vocab_size
    torch.manual_seed(0)
    return GPT(tiny_config).eval()


def naive_greedy(model: GPT, ids: list[int], n: int) -> list[int]:
    """Greedy decoding by recomputing the whole context at every step, without a cache. Past the context, the
    window jumps to its latest SLIDE_KEEP tokens and grows from there, as the decoder's cache does."""
    block, keep = model.config.block_size, int(model.config.block_size * SLIDE_KEEP)
    window = list(ids[-block:])
    out = []
    with torch.no_grad():
        for _ in range(n):
            logits, _ = model(torch.tensor([window]))
            token = int(logits[0, -1].argmax())
            if token == 0:
                break
            out.append(token)
            window.append(token)
            if len(window) > block:
                window = window[-keep:]
    return out


def test_cached_logits_match_full_recompute_at_every_step_including_after_the_window_slides(model, tok, monkeypatch):
    """Every step's logits equal a cache-free forward over the tokens the cache holds; past the context, the
    cache is refilled from the latest SLIDE_KEEP of them."""
    seen = []

    def record(rows, params, generators):
        (logits,) = rows
        seen.append(logits.clone())
        return [int(logits[1:].argmax()) + 1]  # greedy, never end-of-text, so the window slides several times

    monkeypatch.setattr(decoder_module, "sample_tokens", record)
    block = model.config.block_size
    (completion,) = generate(model, tok, ["Hi there"], SamplingParams(max_new_tokens=3 * block))
    assert completion.completion_tokens == 3 * block
    keep = int(block * SLIDE_KEEP)
    window = [tok.eot_id, *tok.encode("Hi there")]
    with torch.no_grad():
        for step, token in enumerate(completion.tokens):
            full, _ = model(torch.tensor([window]))
            assert torch.allclose(seen[step], full[0, -1], atol=1e-5, rtol=0), f"step {step}"
            window.append(token)
            if len(window) > block:
                window = window[-keep:]


def test_batched_greedy_gives_each_prompt_the_tokens_it_gets_alone(model, tok):
    prompts = ["Hello", "", "a much longer prompt, with more", "yo"]
    batched = generate(model, tok, prompts, GREEDY)
    for prompt, completion in zip(prompts, batched, strict=True):
        (alone,) = generate(model, tok, [prompt], GREEDY)
        assert completion.tokens == alone.tokens
        assert completion.tokens == naive_greedy(model, [0, *tok.encode(prompt)], GREEDY.max_new_tokens)


def test_a_seed_reproduces_a_sample_whatever_else_is_in_the_batch(model, tok):
    p = SamplingParams(temperature=1.0, max_new_tokens=20, seed=123)
    (alone,) = generate(model, tok, ["yo"], p)
    decoder = BatchDecoder(model, tok, max_batch=3)
    decoder.add("something else entirely", SamplingParams(temperature=1.0, seed=5))
    events = decoder.step() + decoder.step()  # the seeded request joins a batch already running
    target = decoder.add("yo", p)
    decoder.add("and another", SamplingParams(temperature=1.5))
    while decoder.has_work:
        events += decoder.step()
    (again,) = [e.completion for e in events if e.seq_id == target and e.completion]
    assert again.tokens == alone.tokens and again.text == alone.text and again.seed == 123
    assert len(set(alone.tokens)) > 3


def test_samples_of_one_prompt_differ_and_each_reproduces_alone(model, tok):
    p = SamplingParams(temperature=1.0, max_new_tokens=15, seed=10)
    samples = generate(model, tok, ["yo"] * 3, p)
    assert len({tuple(s.tokens) for s in samples}) == 3
    assert [s.seed for s in samples] == [10, 11, 12]
    (third,) = generate(model, tok, ["yo"], SamplingParams(temperature=1.0, max_new_tokens=15, seed=12))
    assert third.tokens == samples[2].tokens


def test_penalised_and_plain_samples_drawn_together_each_reproduce_alone(model, tok):
    """Sequences with the same filters are drawn as one batch; a penalty changes only its own sequence's row."""
    plain = SamplingParams(temperature=1.0, max_new_tokens=15, seed=40)
    penalised = replace(plain, repetition_penalty=3.0, seed=41)
    decoder = BatchDecoder(model, tok, max_batch=2)
    ids = [decoder.add("yo", plain), decoder.add("yo", penalised)]
    done = {}
    while decoder.has_work:
        done.update((e.seq_id, e.completion) for e in decoder.step() if e.completion)
    for seq_id, p in zip(ids, (plain, penalised), strict=True):
        (alone,) = generate(model, tok, ["yo"], p)
        assert done[seq_id].tokens == alone.tokens
    (unpenalised,) = generate(model, tok, ["yo"], replace(penalised, repetition_penalty=1.0))
    assert unpenalised.tokens != done[ids[1]].tokens


def test_sequences_join_and_leave_a_running_batch(model, tok):
    """Two slots, four requests of different lengths: each waits for a free slot, and each still gets the
    tokens it gets alone."""
    prompts = ["one", "two two", "three three three", "4"]
    budgets = [3, 9, 5, 7]
    decoder = BatchDecoder(model, tok, max_batch=2)
    ids = [decoder.add(p, SamplingParams(temperature=0, max_new_tokens=n)) for p, n in zip(prompts, budgets)]
    done = {}
    while decoder.has_work:
        assert len(decoder.running) <= 2
        done.update((e.seq_id, e.completion) for e in decoder.step() if e.completion)
    for i, p, n in zip(ids, prompts, budgets, strict=True):
        assert done[i].tokens == naive_greedy(model, [0, *tok.encode(p)], n)


def test_a_cancelled_sequence_leaves_without_disturbing_the_others(model, tok):
    decoder = BatchDecoder(model, tok, max_batch=3)
    ids = [decoder.add(p, SamplingParams(temperature=0, max_new_tokens=10)) for p in ("ab", "cd", "ef")]
    decoder.step()
    decoder.step()
    decoder.cancel(ids[0])
    done = {}
    while decoder.has_work:
        done.update((e.seq_id, e.completion) for e in decoder.step() if e.completion)
    assert done[ids[0]].finish_reason == "cancelled" and done[ids[0]].completion_tokens == 2
    for i, p in zip(ids[1:], ("cd", "ef")):
        assert done[i].tokens == naive_greedy(model, [0, *tok.encode(p)], 10)


def test_a_stop_string_cuts_the_completion_exactly(model, tok):
    for seed in range(50):  # a seed whose free run goes the whole length, with its 8th-10th characters new there
        p = SamplingParams(temperature=1.0, max_new_tokens=30, seed=seed)
        (free,) = generate(model, tok, ["Hello"], p)
        stop = free.text[7:10]
        if len(free.text) == 30 and free.text.find(stop) == 7:
            break
    else:
        pytest.fail("no seed among 50 gave a full-length sample")
    (stopped,) = generate(model, tok, ["Hello"], replace(p, stop=(stop,)))
    assert stopped.text == free.text[:7] and stopped.finish_reason == "stop"
    assert stopped.completion_tokens == 10  # it ran until the stop string was complete


def test_the_token_budget_ends_a_sequence_with_finish_reason_length(model, tok):
    (c,) = generate(model, tok, ["Hello"], SamplingParams(temperature=0, max_new_tokens=7))
    assert c.finish_reason == "length" and c.completion_tokens == 7 and tok.decode(c.tokens) == c.text


def test_an_end_of_text_token_ends_the_sequence(tok, tiny_config):
    model = GPT(tiny_config).eval()
    with torch.no_grad():  # make end-of-text (id 0) by far the most likely next token everywhere
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(torch.nn.functional.one_hot(torch.tensor(0), tiny_config.n_embd) * 10)
        model.transformer.wte.weight[0, 0] = 10
    (c,) = generate(model, tok, ["Hello"], SamplingParams(max_new_tokens=20))
    assert c.finish_reason == "eot" and c.tokens == [] and c.text == ""


def test_stream_pieces_join_to_the_completion_and_end_with_it():
    gpt2 = GPT2Tokenizer()
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=gpt2.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=32)).eval()
    p = SamplingParams(temperature=1.0, top_p=None, max_new_tokens=40, seed=3)
    pieces = stream(model, gpt2, "Café 🎤", p)
    text = []
    while True:
        try:
            text.append(next(pieces))
        except StopIteration as end:
            completion = end.value
            break
    (expected,) = generate(model, gpt2, ["Café 🎤"], p)
    assert "".join(text) == completion.text == expected.text
    assert len(text) > 10


def test_an_empty_prompt_generates_from_the_start_token(model, tok):
    (c,) = generate(model, tok, [""], GREEDY)
    assert c.prompt_tokens == 1
    assert c.tokens == naive_greedy(model, [tok.eot_id], GREEDY.max_new_tokens)


def test_a_prompt_longer_than_the_context_is_kept_from_the_end_with_a_notice(model, tok, caplog):
    block = model.config.block_size
    prompt = "abcdefghij" * 5
    with caplog.at_level(logging.WARNING):
        (c,) = generate(model, tok, [prompt], GREEDY)
    assert "longer than the model's context" in caplog.text
    assert c.prompt_tokens == block and c.dropped_prompt_tokens == len(prompt) + 1 - block
    assert c.tokens == naive_greedy(model, tok.encode(prompt), GREEDY.max_new_tokens)


def test_characters_outside_a_char_models_vocabulary_are_rejected_naming_them(model, tok):
    with pytest.raises(TokenizerError, match="'é'"):
        generate(model, tok, ["café"], GREEDY)


def test_tokens_beyond_the_tokenizers_vocabulary_are_never_sampled(tok):
    torch.manual_seed(0)
    padded = GPT(GPTConfig(vocab_size=tok.vocab_size + 5, block_size=32, n_layer=1, n_head=2, n_embd=16)).eval()
    with torch.no_grad():
        padded.transformer.wte.weight[tok.vocab_size :] *= 50  # padding rows that would dominate the logits
    completions = generate(padded, tok, ["ab"] * 4, SamplingParams(temperature=2.0, top_p=None, seed=0))
    assert all(0 < t < tok.vocab_size for c in completions for t in c.tokens)


def test_a_context_of_two_tokens_still_slides(tok):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=2, n_layer=1, n_head=2, n_embd=16)).eval()
    (c,) = generate(model, tok, ["abc"], SamplingParams(temperature=0, max_new_tokens=9))
    assert c.tokens == naive_greedy(model, tok.encode("abc"), 9)


def test_the_decoder_keeps_its_tensors_and_random_streams_on_the_models_device_and_dtype(model, tok):
    model = model.to(torch.bfloat16)
    decoder = BatchDecoder(model, tok, max_batch=2)
    decoder.add("ab", SamplingParams(max_new_tokens=5, seed=1, repetition_penalty=1.2, frequency_penalty=0.5))
    (seq,) = decoder.waiting
    where = {seq.generator.device, seq.history.seen.device, seq.history.counts.device, decoder.cache[0].k.device}
    assert where == {model.lm_head.weight.device}
    assert decoder.cache[0].k.dtype == torch.bfloat16
    while decoder.has_work:  # and it decodes there
        events = decoder.step()
    assert events[-1].completion.finish_reason in ("length", "eot")
