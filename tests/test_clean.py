import re
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapgpt.data.clean import (
    CleanOptions,
    clean_lyrics,
    count_words,
    normalize_unicode,
    squeeze_blank_lines,
    strip_credits,
    strip_genius_noise,
    strip_section_tags,
    strip_spaces,
    strip_urls,
)
from rapgpt.data.readers import read_sources

LINES = "Paper lantern on the harbor wall\nCopper river never stops to call"


@pytest.mark.parametrize(
    ("page", "title"),
    [
        (f"12 ContributorsHarbor Wall Lyrics\n{LINES}12Embed", "Harbor Wall"),
        (f"1 ContributorTranslationsEspañolDeutschРусскийHarbor Wall Lyrics\n{LINES}1.5KEmbed", "Harbor Wall"),
        (f"7 ContributorsTranslationsFrançaisHarbor Wall Lyrics\n{LINES}Embed", ""),
        (f"3 ContributorsMy Lyrics Lyrics\n{LINES}EmbedShare URLCopyEmbedCopy", "My Lyrics"),
    ],
)
def test_genius_header_and_trailer_are_removed(page, title):
    assert strip_genius_noise(page, title).strip() == LINES


def test_genius_header_keeps_lyrics_glued_to_it():
    assert strip_genius_noise("9 ContributorsOrbit LyricsCount it off\nOne two", "Orbit") == "Count it off\nOne two"


@pytest.mark.parametrize(
    ("page", "title"),
    [
        (f"TranslationsEspañolPortuguêsEnglishHarbor Wall Lyrics[Verse 1]\n{LINES}", "Harbor Wall"),
        (f"TranslationsFrançaisHarbor Wall Lyrics\n[Verse 1]\n{LINES}", ""),
        (f"Harbor Wall Lyrics[Verse 1]\n{LINES}", "Harbor Wall"),
        (f"Harbor Wall Lyrics[Verse 1]\n{LINES}", ""),
        (f"4 Contributors\nHarbor Wall Lyrics\n[Verse 1]\n{LINES}", "Harbor Wall"),
    ],
    ids=["menu", "menu-untitled", "title-glued", "title-glued-untitled", "count-alone"],
)
def test_genius_page_header_is_removed_without_a_contributor_count(page, title):
    assert strip_genius_noise(page, title).strip() == f"[Verse 1]\n{LINES}"


def test_genius_page_headers_are_removed_in_the_middle_of_a_file():
    first, second = "3 ContributorsFirst Lyrics[Intro]", "12 ContributorsTranslationsDeutschSecond Lyrics[Hook]"
    pages = f"{first}\n{LINES}\n\n{second}\n{LINES}"
    assert strip_genius_noise(pages) == f"[Intro]\n{LINES}\n\n[Hook]\n{LINES}"
    switched_off = clean_lyrics(pages, CleanOptions(genius_noise=False))
    assert "Second Lyrics" in switched_off and "12 Contributors" in switched_off


def test_you_might_also_like_is_removed_wherever_it_is_glued():
    page = "One line\nYou might also like\nTwo lineYou might also likeThree line\nYou might also likeFour\nFive7Embed"
    assert strip_genius_noise(page) == "One line\nTwo line\nThree line\nFour\nFive"
    assert strip_genius_noise("Six, ends on 21You might also like25Embed") == "Six, ends on 21"


def test_ticket_adverts_and_placeholder_pages_are_removed():
    assert strip_genius_noise(f"{LINES}See Comet Ames LiveGet tickets as low as $45") == LINES
    assert strip_genius_noise(f"Lyrics will be available upon release. Stay tuned!\n{LINES}") == LINES


def test_genius_noise_leaves_ordinary_lyrics_alone():
    text = "You might be right, you might like it\nEmbedded deep in my lyrics\n2 contributors on the track"
    assert strip_genius_noise(text) == text


@pytest.mark.parametrize(
    "tag",
    [
        "[Chorus]", "[Verse 1: Comet Ames & Dusty]", "[Hook x2]", "[Hook] (2X)", "[Hook][x2]", "[Hook] - repeat 2X",
        "(Chorus)", "(Hook x2)", "( VERSE 2 )", "(Chorus with singing in the background)", "Chorus:", "INTRO:",
        "Verse Two:", "Chorus 2X", "-Chorus-", "{Verse 2}", "[Hook}", "(x2)", "X2", "Verse 2: (Comet)", "]",
    ],
)  # fmt: skip
def test_section_tag_lines_are_removed(tag):
    assert strip_section_tags(f"{LINES}\n{tag}\nLast line") == f"{LINES}\nLast line"


def test_section_headers_broken_over_several_lines_are_removed_whole():
    text = (
        "[Verse 2: Comet Ames & \nDusty Furrow\n]\nPaper lantern on the harbor wall\n"
        "[Chorus: Comet Ames, \nVelvet Quarry\n & \nBoth\n]\nCopper river never stops to call\n"
        "[Bridge: Comet Ames &\nDusty Furrow]Neon orbit, velvet static hum"
    )
    assert strip_section_tags(text) == (
        "Paper lantern on the harbor wall\nCopper river never stops to call\nNeon orbit, velvet static hum"
    )
    assert "Dusty Furrow" in clean_lyrics(text, CleanOptions(section_tags=False))
    lyric = "[Comet counting down\nten nine eight]\n(Hook, the one they sing\nall night)"  # not headers: kept
    assert strip_section_tags(lyric) == lyric


def test_inline_tags_and_repeat_marks_are_removed():
    assert strip_section_tags("[Comet] Count it off (x2)\nDo it [3x] again\nOutro: [Comet]\nEnd") == (
        "Count it off\nDo it again\nEnd"
    )


@pytest.mark.parametrize(
    "line",
    ["(Break it down now)", "I said it on repeat", "Hook me up, yeah", "Verse after verse I climb", "Malcolm X",
     "Intro to the outro of my life", "(Hey, hey, hey)", "Built like a 2x4"],
)  # fmt: skip
def test_section_tags_leave_lyrics_that_look_like_them(line):
    assert strip_section_tags(f"{line}\n{LINES}") == f"{line}\n{LINES}"


def test_credit_lines_are_removed_and_lyrics_kept():
    text = (
        "Produced by Comet Ames\n[Written by: Dusty & Vance]\nMusic written by A, B and C\nLyrics by Vance\n"
        "Prod. by Someone\n(c) 1999 Quarry Records\n"
        "Written in the stars above\nMixed emotions by the door\nMastered the art of the rhyme\n" + LINES
    )
    assert strip_credits(text) == (
        "Written in the stars above\nMixed emotions by the door\nMastered the art of the rhyme\n" + LINES
    )


def test_urls_are_removed_with_lines_that_held_nothing_else():
    text = f"http://spam.example/a.html https://x.example\n{LINES} www.example.com/page\nvisit Https://y.example/z now"
    assert strip_urls(text) == f"{LINES} \nvisit  now"


def test_unicode_is_normalised_to_plain_ascii_punctuation():
    text = "\u201cDon\u2019t\u201d \u2014 \uff37\ufb01re\u2026\u00a0ok\u200b\tgo\x07"
    assert normalize_unicode(text) == '"Don\'t" - Wfire... ok go'
    assert normalize_unicode("Beyonc\u0065\u0301 caf\u00e9") == "Beyonc\u00e9 caf\u00e9"  # composed, not stripped


def test_spaces_and_blank_lines_are_squeezed_but_line_breaks_kept():
    text = "  one   two  \n\tthree\t\n\n\n \n four\n\n"
    assert strip_spaces(text) == "one two\nthree\n\n\n\nfour\n\n"
    assert squeeze_blank_lines(strip_spaces(text)) == "one two\nthree\n\nfour"


def test_clean_lyrics_runs_every_step_and_each_can_be_switched_off():
    page = (
        "5 ContributorsHarbor Lyrics\n[Verse 1: Comet]\nProduced by Dusty\n\u201cPaper\u201d   lantern  \n\n\n"
        "http://spam.example\nCopper river\r\nYou might also like\n[Chorus]\nOn the wall (x2)\n3Embed"
    )
    assert clean_lyrics(page, title="Harbor") == '"Paper" lantern\n\nCopper river\nOn the wall'
    for step, noise in [
        ("genius_noise", "You might also like"),
        ("section_tags", "[Chorus]"),
        ("credits", "Produced by"),
        ("urls", "http://"),
        ("unicode", "\u201c"),
        ("spaces", "lantern  "),
        ("blank_lines", "\n\n\n"),
    ]:
        assert noise not in clean_lyrics(page, title="Harbor")
        assert noise in clean_lyrics(page, replace(CleanOptions(), **{step: False}), title="Harbor"), step


def test_clean_options_switches_are_the_boolean_steps():
    assert set(CleanOptions.switches()) == {
        "genius_noise", "section_tags", "credits", "urls", "unicode", "spaces", "blank_lines", "dedupe", "near_dedupe"
    }  # fmt: skip
    assert count_words(" one two\nthree  ") == 3


@pytest.mark.shared_data
def test_genius_page_noise_is_gone_from_a_real_lyricsgenius_corpus(shared_data):
    raw = list(read_sources([shared_data / "genius-api-rap"]))
    assert sum("You might also like" in s.lyrics for s in raw) > 500  # the noise is really there...
    cleaned = [clean_lyrics(s.lyrics, title=s.title) for s in raw]
    noise = re.compile(r"\A\d+ Contributors|You might also like|\d*Embed\Z|^\[.*\]$|^Produced by", re.MULTILINE)
    assert [c[:80] for c in cleaned if noise.search(c)] == []  # ...and gone
    assert sum(map(count_words, cleaned)) > 0.9 * sum(count_words(s.lyrics) for s in raw)  # lyrics are kept
    assert all(c == c.strip() and "\n\n\n" not in c for c in cleaned)
    assert all(c.isascii() or not re.search("[\u2018\u2019\u201c\u201d\u2014]", c) for c in cleaned)


NOISE_AND_LYRICS = st.sampled_from(
    ["[Chorus]", "(x2)", "Verse 2:", "Produced by A", "http://a.example/c", " ", "  ", "\n", "\n\n", "\u2019", "\u00a0",
     "You might also like", "Hook", "(Hook)", "[", "]", "x2", "repeat", "-", ":", "(", ")", "\t", "\u200b", "\ufb01",
     "lantern", "Orbit"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(NOISE_AND_LYRICS, max_size=25).map("".join))
def test_cleaning_clean_lyrics_changes_nothing(text):
    once = clean_lyrics(text)
    assert clean_lyrics(once) == once
