import pytest

from rapgpt.rhyme import (
    PERFECT,
    SLANT,
    line_rhyme,
    matching_vowels,
    perfect_rhyme,
    pronunciation,
    rhymes,
    same_word,
)


@pytest.mark.parametrize(
    ("a", "b"),
    [("night", "light"), ("day", "away"), ("later", "greater"), ("money", "honey"), ("gettin'", "bettin'"),
     ("flow", "go"), ("nothin'", "stuffing"), ("brain", "chain")],
)
def test_perfect_rhymes_share_their_sounds_from_the_stressed_vowel(a, b):
    assert perfect_rhyme(a, b) and rhymes(a, b)


@pytest.mark.parametrize(("a", "b"), [("cash", "bad"), ("time", "mine"), ("home", "zone"), ("gettin'", "fetish")])
def test_slant_rhymes_share_the_vowels_but_not_the_consonants(a, b):
    assert rhymes(a, b) and not perfect_rhyme(a, b)


@pytest.mark.parametrize(("a", "b"), [("night", "day"), ("money", "time"), ("cat", "dog"), ("later", "water")])
def test_words_with_other_vowels_do_not_rhyme(a, b):
    assert not rhymes(a, b)


@pytest.mark.parametrize(("a", "b"), [("night", "night"), ("gettin'", "getting"), ("'cause", "cause")])
def test_a_word_never_rhymes_with_itself_however_spelt(a, b):
    assert same_word(a, b)
    assert not rhymes(a, b) and not perfect_rhyme(a, b)
    assert line_rhyme(["i", "keep", a], ["you", "keep", b]) == 0.0


def test_slang_spellings_sound_like_their_dictionary_words():
    assert pronunciation("gettin'") == pronunciation("getting") == pronunciation("gettin")
    assert pronunciation("skrrt").vowels == ()  # no vowel: rhymes with nothing
    assert not rhymes("skrrt", "skrrt") and not rhymes("skrrt", "hurt")


def test_multi_syllable_rhymes_match_vowels_across_word_boundaries():
    # holding = HH OW1 L D IH0 NG (IH merged to IY), "the" is a schwa, light and night are AY.
    assert matching_vowels(["we", "holding", "the", "light"], ["so", "folding", "the", "night"]) == 3
    assert matching_vowels(["day"], ["night"]) == 0


def test_line_rhyme_ranks_perfect_over_slant_and_longer_over_shorter():
    assert line_rhyme(["the", "night"], ["the", "light"]) == PERFECT
    assert line_rhyme(["cash"], ["bad"]) == SLANT
    assert line_rhyme(["holding", "the", "light"], ["folding", "the", "night"]) > line_rhyme(["light"], ["night"])
    assert line_rhyme(["the", "night"], ["the", "day"]) == 0.0
    assert line_rhyme([], ["day"]) == 0.0


def test_line_ends_are_marked_only_when_a_rhyme_is_near():
    from rapgpt.rhyme import end_rhyme_marks

    text = "I walk at NIGHT\nso far away\n\nwe hold the light\none two\nthree four\nfive six\nseven eight\nfight"
    marked = [(text[m.start : m.end], m.group) for m in end_rhyme_marks(text, near=4)]
    assert marked == [("NIGHT", 0), ("light", 0)]  # "fight" is 6 lines after "light"; "away" rhymes with nothing
    # Six lines (blank ones aside) reach from "light" to "fight", and from "away" to "eight".
    wide = [(text[m.start : m.end], m.group) for m in end_rhyme_marks(text, near=6)]
    assert wide == [("NIGHT", 0), ("away", 1), ("light", 0), ("eight", 1), ("fight", 0)]
