"""How every evaluation measure sees lyrics: lines, words and fixed-size chunks of lines."""

from __future__ import annotations

import re

WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*'?")
SECTION_TAG = re.compile(r"^\s*[\[(].*[\])]\s*$")  # "[Verse 1]", "(Chorus)": song structure, not lyrics


def lyric_lines(text: str) -> list[str]:
    """The non-empty lines of a lyric, stripped, without section tags."""
    return [line.strip() for line in text.splitlines() if line.strip() and not SECTION_TAG.match(line)]


def words(text: str) -> list[str]:
    """Lower-case words; apostrophes inside a word stay ("don't", "gettin'")."""
    return WORD.findall(text.lower())


def chunks(text: str, n_lines: int) -> list[str]:
    """Consecutive, non-overlapping chunks of exactly `n_lines` lyric lines (a shorter tail is dropped)."""
    lines = lyric_lines(text)
    return ["\n".join(lines[i : i + n_lines]) for i in range(0, len(lines) - n_lines + 1, n_lines)]

