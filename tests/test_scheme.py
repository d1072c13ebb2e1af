import random

import pytest
import torch

from rapgpt.errors import ConfigError
from rapgpt.evaluate.text import lyric_lines, words
from rapgpt.generate import BatchDecoder, SamplingParams
from rapgpt.generate.decoder import Completion, Event
from rapgpt.generate.params import WritingParams
from rapgpt.generate.scheme import LineWriter, RhymeGuide, Verse, partners, write
from rapgpt.rhyme import rhymes
from tests.tiny_training import train_char_model

FAMILIES = [["night", "light", "fight", "sight"], ["day", "way", "play", "stay"], ["cold", "gold", "hold", "bold"],
            ["rain", "pain", "chain", "gain"]]
FILLER = ["we", "run", "the", "city", "my", "car"]


def song(rng: random.Random, lines: int = 24) -> str:
    """Lines ending in a word of a random rhyme family: the training text itself follows no scheme."""
    return "\n".join(" ".join([*rng.sample(FILLER, 2), rng.choice(rng.choice(FAMILIES))]) for _ in range(lines))


@pytest.fixture(scope="module")
def couplet_model():
    rng = random.Random(0)
    return train_char_model([song(rng) for _ in range(40)], steps=150, block=32)


def pair_rate(text: str, scheme: str) -> float:
    """The share of lines with a scheme partner that rhyme with it."""
    ends = [words(line)[-1] for line in lyric_lines(text) if words(line)]
    pairs = [(i, j) for i in range(len(ends)) for j in partners(scheme, i)[-1:]]
    return sum(rhymes(ends[i], ends[j]) for i, j in pairs) / max(1, len(pairs))


def test_partners_follow_each_scheme_within_a_stanza():
    assert [partners("AABB", i) for i in range(6)] == [[], [0], [], [2], [], [4]]
    assert [partners("ABAB", i) for i in range(4)] == [[], [], [0], [1]]
    assert [partners("ABCB", i) for i in range(4)] == [[], [], [], [1]]
    assert partners("AAAA", 3) == [0, 1, 2] and partners("free", 3) == []


def test_writing_settings_refuse_nonsense_naming_the_choices():
    with pytest.raises(ConfigError, match="scheme must be one of free, AABB, ABAB, ABCB, AAAA"):
        WritingParams(scheme="XYZ")
    with pytest.raises(ConfigError, match="^candidates must be"):
        WritingParams(candidates=0)
    assert WritingParams(scheme="AABB").num_candidates == 8 and WritingParams().num_candidates == 1
    assert not WritingParams().line_by_line and WritingParams(lines=4).line_by_line


def test_an_aabb_verse_rhymes_its_couplets_where_free_writing_does_not(couplet_model):
    model, tokenizer = couplet_model
    params = SamplingParams(max_new_tokens=40, temperature=1.0, seed=11)
    decoder = BatchDecoder(model, tokenizer, max_batch=32)
    rhymed = write(decoder, [""] * 8, params, WritingParams(scheme="AABB", lines=8, candidates=8))
    free = write(decoder, [""] * 8, params, WritingParams(lines=8))
    for verse in rhymed:  # with one candidate a line, a free verse may end early where the model ends the song
        assert len(lyric_lines(verse.text)) == 8 and verse.finish_reason == "length"
    # The model ends its lines in a word of a random family: a couplet rhymes by chance about a quarter of the time.
    rhymed_rate = sum(pair_rate(v.text, "AABB") for v in rhymed) / 8
    free_rate = sum(pair_rate(v.text, "AABB") for v in free) / 8
    assert rhymed_rate >= 0.6 and free_rate <= 0.4
    # The same seed writes the same verse.
    assert write(decoder, [""], params, WritingParams(scheme="AABB", lines=8))[0].text == rhymed[0].text


def test_a_prompt_line_is_answered_with_a_rhyme(couplet_model):
    model, tokenizer = couplet_model
    decoder = BatchDecoder(model, tokenizer, max_batch=8)
    for seed in range(3):
        params = SamplingParams(max_new_tokens=40, temperature=1.0, seed=seed)
        (verse,) = write(decoder, ["we run my gold\n"], params, WritingParams(scheme="AABB", lines=1))
        assert rhymes(words(verse.text)[-1], "gold"), verse.text


def test_the_rhyme_score_changes_which_candidate_is_kept(couplet_model):
    model, tokenizer = couplet_model
    decoder = BatchDecoder(model, tokenizer, max_batch=4)
    verse = Verse(-1, decoder, "we run the night\n", SamplingParams(), WritingParams(scheme="AABB", lines=1))
    likely = Completion("you run the day", [2] * 15, "stop", 1, 0, 0, logprob=-3.0)
    rhyming = Completion("you run the light", [2] * 16, "stop", 1, 0, 0, logprob=-8.0)
    assert verse.choose([likely, rhyming]).completion is rhyming
    free = Verse(-2, decoder, "we run the night\n", SamplingParams(), WritingParams(lines=1, candidates=2))
    assert free.choose([likely, rhyming]).completion is likely
    blank = Completion("", [], "stop", 1, 0, 0, logprob=-0.1)
    assert free.choose([blank, rhyming]).completion is rhyming  # a line with words beats a likelier blank one


def test_a_perfect_rhyme_is_kept_over_a_likelier_slant_one_and_the_same_word_never_counts(couplet_model):
    model, tokenizer = couplet_model
    decoder = BatchDecoder(model, tokenizer, max_batch=4)
    verse = Verse(-1, decoder, "we run the night\n", SamplingParams(), WritingParams(scheme="AABB", lines=1))
    slant = Completion("my car can ride", [2] * 15, "stop", 1, 0, 0, logprob=-15 * 1.0)  # AY+D against AY+T
    perfect = Completion("my car is light", [2] * 15, "stop", 1, 0, 0, logprob=-15 * 1.2)
    same = Completion("my car in the night", [2] * 19, "stop", 1, 0, 0, logprob=-19 * 0.5)
    none = Completion("my car is cold", [2] * 14, "stop", 1, 0, 0, logprob=-14 * 0.6)
    assert verse.choose([slant, perfect]).completion is perfect
    # A slant rhyme beats likelier lines that do not rhyme, the partner's own word among them.
    assert verse.choose([slant, same, none]).completion is slant


def test_the_rhyme_guide_raises_the_line_break_more_for_a_perfect_rhyme_than_a_slant_one():
    from rapgpt.data.tokenizer import CharTokenizer

    tokenizer = CharTokenizer.from_texts(["we run the night light ride car\n"])
    guide = RhymeGuide(tokenizer, "", [["we", "run", "the", "night"]], strength=2.0)
    newline = tokenizer.encode("\n")[0]
    raised = {text: float(guide(text, torch.zeros(tokenizer.vocab_size))[newline])
              for text in ("we light", "we ride", "we night", "we car", "")}
    assert raised == pytest.approx({"we light": 2.0, "we ride": 2.0 * 0.7, "we night": 0.0, "we car": 0.0, "": 0.0})
    assert float(guide("we light", torch.zeros(tokenizer.vocab_size)).abs().sum()) == 2.0  # only the line break


def test_for_a_bpe_model_the_guide_also_raises_rhyming_word_tokens_once_the_line_is_half_its_partners_length():
    from rapgpt.data.lyric_bpe import LyricBPETokenizer

    tokenizer = LyricBPETokenizer.train(["we run the night, light ride car bright\n" * 50], vocab_size=300)
    word = {w: tokenizer.encode(" " + w) for w in ("light", "ride", "night", "car", "bright")}
    assert all(len(ids) == 1 for ids in word.values())  # whole words are single tokens here
    guide = RhymeGuide(tokenizer, "", [["we", "run", "the", "night"]], strength=2.0)
    early, late = (guide(text, torch.zeros(tokenizer.vocab_size)) for text in ("we", "we run"))
    assert float(early.abs().sum()) == 0.0  # one word of the partner's four: not yet
    raised = {w: float(late[ids[0]]) for w, ids in word.items()}
    assert raised == pytest.approx({"light": 2.0, "ride": 2.0 * 0.7, "night": 0.0, "car": 0.0, "bright": 2.0})


def test_the_rhyme_guide_makes_more_candidates_end_on_a_rhyme():
    # Lines of 2 to 6 words, rhyme words anywhere in them: the model may end a line after any word.
    rng = random.Random(1)
    vocabulary = FILLER + [w for family in FAMILIES for w in family]
    texts = ["\n".join(" ".join(rng.choices(vocabulary, k=rng.randint(2, 6))) for _ in range(24)) for _ in range(40)]
    model, tokenizer = train_char_model(texts, steps=150, block=32)
    params = SamplingParams(max_new_tokens=40, temperature=1.0, seed=3)
    rates = {}
    for guide in (0.0, 6.0):
        # One candidate a line: the guide alone, not the choice among candidates, makes the couplets rhyme.
        writing = WritingParams(scheme="AABB", lines=8, candidates=1, rhyme_guide=guide)
        verses = write(BatchDecoder(model, tokenizer, max_batch=8), [""] * 6, params, writing)
        rates[guide] = sum(pair_rate(v.text, "AABB") for v in verses) / len(verses)
    assert rates[6.0] >= rates[0.0] + 0.3, rates


def test_a_user_stop_string_ends_the_verse_inside_a_line(couplet_model):
    model, tokenizer = couplet_model
    writing = WritingParams(scheme="AABB", lines=4)
    (free,) = write(BatchDecoder(model, tokenizer, 8), [""], SamplingParams(max_new_tokens=60, seed=1), writing)
    stop = " " + free.text.splitlines()[1].split()[1]  # the second word of the second line
    params = SamplingParams(max_new_tokens=60, seed=1, stop=(stop,))
    (verse,) = write(BatchDecoder(model, tokenizer, 8), [""], params, writing)
    assert verse.finish_reason == "stop" and verse.text == free.text[: free.text.index(stop)]


def test_verses_and_plain_sequences_share_one_batch(couplet_model):
    model, tokenizer = couplet_model
    writer = LineWriter(BatchDecoder(model, tokenizer, max_batch=16))
    params = SamplingParams(max_new_tokens=40, seed=2)
    verse_id = writer.add("", params, WritingParams(scheme="ABAB", lines=4, candidates=4))
    plain_id = writer.add("", params)
    pieces: dict[int, list[str]] = {verse_id: [], plain_id: []}
    done = {}
    while writer.has_work:
        for event in writer.step():
            pieces[event.seq_id].append(event.text)
            if event.completion is not None:
                done[event.seq_id] = event.completion
    assert set(done) == {verse_id, plain_id} and verse_id < 0 <= plain_id
    assert "".join(pieces[verse_id]) == done[verse_id].text
    assert all(p.endswith("\n") for p in pieces[verse_id])  # streamed a whole line at a time
    assert len(lyric_lines(done[verse_id].text)) == 4


def test_the_candidates_of_a_line_share_one_prefill_of_their_prefix(couplet_model, monkeypatch):
    model, tokenizer = couplet_model
    decoder = BatchDecoder(model, tokenizer, max_batch=8)
    prefills = []
    prefill = decoder._prefill
    monkeypatch.setattr(decoder, "_prefill", lambda slot, tokens: prefills.append(len(tokens)) or prefill(slot, tokens))
    # Lines of at most 8 tokens keep within the model's context of 32: no candidate slides its window.
    (verse,) = write(decoder, ["we run\n"], SamplingParams(max_new_tokens=8, seed=0),
                     WritingParams(scheme="AABB", lines=2, candidates=8))
    assert len(prefills) == verse.text.count("\n") == 2  # one prefill per line, not one per candidate


def test_a_line_is_decided_once_most_candidates_end_and_the_stragglers_are_stopped(couplet_model):
    model, tokenizer = couplet_model
    decoder = BatchDecoder(model, tokenizer, max_batch=8)
    verse = Verse(-1, decoder, "we run the night\n", SamplingParams(seed=0), WritingParams(scheme="AABB", lines=2,
                                                                                           candidates=4))
    ids = list(verse.pending)
    lines = ["we run my light", "the city day", "my car is cold"]
    for seq_id, text in zip(ids[:2], lines, strict=False):
        assert verse.feed(Event(seq_id, text, 1, Completion(text, [1] * len(text), "stop", 1, 0, 0, -5.0))) is None
    # The third of four candidates to end at a line break decides the line (quorum 3); the fourth is stopped.
    kept = verse.feed(Event(ids[2], lines[2], 1, Completion(lines[2], [1] * 14, "stop", 1, 0, 0, -5.0)))
    assert kept is not None and kept.text == "we run my light\n"  # the rhyme with "night" wins
    assert [seq.id for seq in decoder.waiting if seq.cancelled] == [ids[3]]
    late = Completion("the straggler's run-on line", [1] * 26, "cancelled", 1, 0, 0, -1.0)
    assert verse.feed(Event(ids[3], "", None, late)) is None and ids[3] not in verse.pending


def test_stopping_stragglers_keeps_a_seeded_verse_reproducible(couplet_model):
    model, tokenizer = couplet_model
    decoder = BatchDecoder(model, tokenizer, max_batch=16)
    stopped = []
    cancel = decoder.cancel
    decoder.cancel = lambda seq_id: stopped.append(seq_id) or cancel(seq_id)
    # A high temperature makes some candidates run on past their line.
    params = SamplingParams(max_new_tokens=60, temperature=1.6, seed=5)
    writing = WritingParams(scheme="AABB", lines=6, candidates=8)
    first = write(decoder, [""], params, writing)[0]
    assert stopped  # some candidates were stopped before their line ended
    assert write(decoder, [""], params, writing)[0].text == first.text
    assert len(lyric_lines(first.text)) == 6


def test_verses_of_consecutive_seeds_share_no_candidate(couplet_model):
    """Several samples of one prompt take seeds s, s + 1, ...: their candidate lines must not overlap, or the
    samples would open with the same line."""
    model, tokenizer = couplet_model
    decoder = BatchDecoder(model, tokenizer, max_batch=16)
    writing = WritingParams(scheme="AABB", lines=4, candidates=8)
    seeds = []
    for seed in (5, 6):
        Verse(-seed, decoder, "", SamplingParams(seed=seed), writing)
        seeds.append({seq.seed for seq in decoder.waiting})
        decoder.waiting.clear()
    assert len(seeds[0]) == len(seeds[1]) == 8 and not seeds[0] & seeds[1]
