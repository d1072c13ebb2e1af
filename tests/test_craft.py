import random

import pytest

from rapgpt.evaluate.craft import (
    craft,
    distinct_n,
    end_rhyme_rate,
    pronunciation,
    repetition_rate,
    rhyme_density,
)

VERSE = """got a pocket full of rhymes and a rocket full of time
every line is a sign that the grind is in its prime
I be holding the mic like I'm folding the night
with a golden delight and the flow is so tight
came a long way from the strong days and the wrong plays
now the song stays in the long haze of the hallways
"""


def test_rhyme_density_is_the_longest_vowel_match_per_word():
    # later = EY ER, greater = EY ER: a two-vowel rhyme for the second word, the first has no predecessor.
    assert rhyme_density("later greater") == 2.0
    # A single matching vowel does not count, and a word does not rhyme with itself.
    assert rhyme_density("cat hat") == 0.0
    assert rhyme_density("later later") == 0.0
    # "cold" (OW) "story" (AA IY) "holy" (OW IY): holy ends with IY like story (1 vowel: not counted),
    # and OW IY can't be matched further back in story (AA): so 0; "gory" rhymes with "story" on AA IY = 2.
    assert rhyme_density("story holy gory") == pytest.approx((0 + 2) / 2)


def test_rhyming_verse_is_denser_than_its_words_shuffled():
    words = VERSE.split()
    shuffled = []
    for seed in range(10):
        order = random.Random(seed).sample(words, len(words))
        shuffled.append(rhyme_density("\n".join(" ".join(order[i : i + 10]) for i in range(0, len(order), 10))))
    assert rhyme_density(VERSE) > 1.5 * max(shuffled)


def test_repeated_lines_do_not_rhyme_with_themselves():
    assert rhyme_density("the river is wide\nthe river is wide\nthe river is wide") == rhyme_density(
        "the river is wide"
    )


def test_end_rhyme_rate_counts_lines_rhyming_with_one_of_the_two_before():
    text = "walking through the night\nholding on to the light\nsleeping through the day\nfloating far away"
    # light~night: yes; day vs light/night: no; away~day: yes.
    assert end_rhyme_rate(text) == pytest.approx(2 / 3)
    assert end_rhyme_rate("one line only") == 0.0


def test_distinct_n_and_repetition_on_hand_counts():
    tokens = ["a", "b", "a", "b", "c"]
    assert distinct_n(tokens, 1) == pytest.approx(3 / 5)
    assert distinct_n(tokens, 2) == pytest.approx(3 / 4)  # ab, ba, ab, bc
    assert repetition_rate("hold on\nlet go\nhold on\nHold on!") == pytest.approx(2 / 4)


def test_words_unknown_to_cmudict_are_read_from_their_spelling():
    assert pronunciation("later").vowels == ("EY", "ER")
    assert pronunciation("blorptastic").vowels == ("AA", "AE", "IY")  # o, a, i (IH merged with IY)
    assert pronunciation("shawty").vowels == ("AA", "IY")  # "aw" read as AO, merged with AA; a final y is IY
    assert pronunciation("skrrt").syllables == 0
    assert pronunciation("gettin") == pronunciation("getting")  # a dropped g is spelled out before the fallback


def test_craft_counts_words_and_syllables_per_line():
    c = craft("about the money\nyes")  # about = AH0 B AW1 T: the schwa is a syllable, not a rhyme vowel
    assert c.words_per_line == pytest.approx((3 + 1) / 2)
    assert c.syllables_per_line == pytest.approx((2 + 1 + 2 + 1) / 2)
    assert pronunciation("about").vowels == ("AW",)
