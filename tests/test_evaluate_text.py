from rapgpt.evaluate.text import chunks, lyric_lines, words


def test_lyric_lines_drop_blank_lines_and_section_tags():
    text = "[Verse 1: Somebody]\n  first line  \n\n(Chorus)\nsecond line (with a note)\n"
    assert lyric_lines(text) == ["first line", "second line (with a note)"]


def test_words_are_lower_case_and_keep_inner_and_dropped_letter_apostrophes():
    assert words("Don't STOP, we're rollin' 2 the top!") == ["don't", "stop", "we're", "rollin'", "2", "the", "top"]


def test_chunks_are_whole_and_do_not_overlap():
    text = "\n".join(f"line {i}" for i in range(7))
    assert chunks(text, 3) == ["line 0\nline 1\nline 2", "line 3\nline 4\nline 5"]
