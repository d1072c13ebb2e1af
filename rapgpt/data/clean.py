"""Cleaning: lyrics as scraped from the web, turned into lyrics a model should learn to write.

Each step is a small function from text to text, on by default and switchable through `CleanOptions` (on the
command line, `--no-<step>`). Line breaks are kept: they are the structure of a lyric. `clean_lyrics` runs the
steps in the order of `STEPS`; the rules were fitted on real Genius, lyricsgenius, Spotify and CSV dumps.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, fields

from rapgpt.options import setting

# --- Genius page noise -------------------------------------------------------------------------------------------
# "123 ContributorsTranslationsEspañolDeutsch<Title> Lyrics" opens a Genius page; lyrics (often a "[Verse 1]" tag)
# may follow on the same line. The translation list sits between "Translations" and the title; pages scraped whole
# start at "Translations", newer ones at "<Title> Lyrics", and a file of many pages holds one header per song.
HEADER_PREFIX = re.compile(r"[ \t]*(?P<count>\d[\d,.]*K?[ \t]*Contributors?)?[ \t]*(?P<menu>Translations)?")
TITLE_GLUED_TO_TAG = re.compile(r"[ \t]*[^\s\[\]][^\[\]\n]{0,120}? Lyrics(?=\[)")
GENIUS_TRAILER = re.compile(r"(?:\d+(?:\.\d+)?K?)?Embed(?:Share URLCopyEmbedCopy)?\s*\Z")
ALSO_LIKE = "You might also like"
TICKETS = re.compile(r"See .{1,80} LiveGet tickets as low as \$\d+")
PLACEHOLDER_HINTS = ("will be available", "transcribed", "coming soon", "this song", "no lyrics")
PLACEHOLDER = re.compile(
    r"^.*(?:lyrics will be available|(?:yet to be|not yet been) transcribed|lyrics coming soon"
    r"|lyrics (?:of|to|for) this song|no lyrics yet).*$\n?",
    re.IGNORECASE | re.MULTILINE,
)

# --- section tags --------------------------------------------------------------------------------------------------
SECTIONS = (
    r"intro|outro|verse|chorus|hook|refrain|bridge|interlude|pre-?chorus|post-?chorus|pre-?hook|breakdown|skit"
    r"|instrumental|beat switch|coda"
)
# Also ordinary words, so never followed by free text inside parentheses ("(Break it down)" is a lyric).
PLAIN_WORDS = r"break|sample|spoken|part|repeat"
NUMBER = r"(?:[ \t]*(?:\d+|one|two|three|four|five|six))?"
# "Verse 2", "Verse Two: Name", "Verse/Chorus", "Hook - Name"
LABEL = rf"(?:{SECTIONS}|{PLAIN_WORDS})\b{NUMBER}(?:(?:[ \t]*[:/]|[ \t]+-)[^\n()\[\]{{}}]{{0,40}})?"
# "(Chorus)", "( VERSE 2 )", "(Chorus with singing in the background)"
PAREN_LABEL = rf"\([ \t]*(?:(?:{SECTIONS})\b[^()\n]{{0,40}}|{LABEL})[ \t]*\??[ \t]*\)"
BRACKETED = r"[\[{][^\[\]{}\n]*[\]}]"  # "[Verse 1: Name]", "{Chorus}", and the odd "[Hook}"
COUNT = r"(?:x[ \t]*\d+|\d+[ \t]*x)\b"
# "(x2)", "[2X]", "(repeat 2x)", "(repeat)", or a bare "x2" / "repeat 2X"
REPEAT = rf"(?:[(\[{{][ \t]*(?:repeat(?:[ \t]*{COUNT})?|{COUNT})[ \t]*[)\]}}]|(?<![\w'])(?:repeat[ \t]*)?{COUNT})"
# A whole line that only names a section: "[Verse 1: Name]", "(Hook x2)", "Chorus:", "-Chorus-", "Verse 2: (Name)",
# "[Hook] - repeat 2X", "(x2)", or brackets left alone on a line.
SECTION_LINE = re.compile(
    rf"[ \t]*-?[ \t]*(?:(?:(?:{BRACKETED}[ \t]*)+|{PAREN_LABEL}|{LABEL})[ \t]*(?:\([^()\n]{{0,40}}\))?"
    rf"(?:[ \t]*-?[ \t]*{REPEAT})*|(?:{REPEAT}[ \t]*)+|[\[\](){{}}]+)[ \t]*[:-]?[ \t]*",
    re.IGNORECASE,
)
# A bracketed header broken over lines, as lyricsgenius leaves it when the performers' names were links:
# "[Verse 2: Comet Ames &\nDusty Furrow\n]". It starts with a section name; the whole of it goes.
MULTILINE_TAG = re.compile(
    rf"^[ \t]*[\[{{][ \t]*(?:{SECTIONS}|{PLAIN_WORDS})\b[^\[\]{{}}\n]*\n[^\[\]{{}}]{{0,200}}?[\]}}][ \t]*(?:\n|\Z)?",
    re.IGNORECASE | re.MULTILINE,
)
UNCLOSED_BRACKET, UNCLOSED_BRACE = re.compile(r"\[[^\]\n]*\n"), re.compile(r"\{[^}\n]*\n")  # cheap tests first
INLINE_TAG = re.compile(r"^[ \t]*\[[^\]\n]*\][ \t]*|[ \t]*\[[^\]\n]*\]")
TRAILING_REPEAT = re.compile(rf"(?:[ \t]*-?[ \t]*{REPEAT})+[ \t]*\Z", re.IGNORECASE)
REPEAT_ENDINGS = frozenset(")]0123456789xX")

# --- credits -------------------------------------------------------------------------------------------------------
CREDIT_LINE = re.compile(
    r"^[ \t]*[\[(]?[ \t]*(?:"
    r"(?:(?:music|lyrics|words)[ \t]+)?"
    r"(?:produced|written|composed|arranged|mixed|mastered|recorded|engineered|programmed|transcribed|prod\.?"
    r"|music|lyrics|words)(?:[ \t]+(?:and|&)[ \t]+\w+)?[ \t]+by\b"
    r"|(?:producers?|writers?|songwriters?|composers?|engineers?|label|copyright|lyrics|source)[ \t]*:"
    r"|©|\(c\)[ \t]*\d{4}|lyrics from\b"
    r")[^\n]{0,100}$\n?",
    re.IGNORECASE | re.MULTILINE,
)

URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
URL_LINE = re.compile(rf"^[ \t]*(?:{URL.pattern}[ \t]*)+$\n?", re.IGNORECASE | re.MULTILINE)
# Typographic quotes, dashes and the like, mapped to ASCII; zero-width characters dropped.
ASCII_PUNCT = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u00b4\u0060", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
        **dict.fromkeys("\u200b\u200c\u200d\u2060\ufeff\u00ad", None),
    }
)
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def strip_genius_noise(text: str, title: str = "") -> str:
    """Drop the page header (contributor count, translations menu, "<Title> Lyrics") wherever a line starts with
    it, "You might also like", ticket adverts, the trailing "NEmbed" and placeholder pages ("lyrics will be
    available on release")."""
    if "Lyrics" in text or "Contributor" in text:  # every header line holds one of them
        lines = (_without_page_header(line, title) if "Lyrics" in line or "Contributor" in line else line
                 for line in text.split("\n"))  # fmt: skip
        text = "\n".join(line for line in lines if line is not None)
    if "Embed" in text[-64:]:
        text = text[:-64] + GENIUS_TRAILER.sub("", text[-64:])
    if ALSO_LIKE in text:
        text = re.sub(rf"^{ALSO_LIKE}$\n?", "", text, flags=re.MULTILINE)
        text = re.sub(rf"(?<=\S){ALSO_LIKE}(?=\S)", "\n", text).replace(ALSO_LIKE, "")
    if "LiveGet tickets" in text:
        text = TICKETS.sub("", text)
    lower = text.lower()
    if any(hint in lower for hint in PLACEHOLDER_HINTS):
        text = PLACEHOLDER.sub("", text)
    return text


def _without_page_header(line: str, title: str) -> str | None:
    """The line without a Genius page header at its start; None when the line held only a header."""
    prefix = HEADER_PREFIX.match(line)
    assert prefix is not None  # every part of the prefix is optional
    marker = f"{title} Lyrics" if title and f"{title} Lyrics" in line else " Lyrics"
    cut = line.find(marker, prefix.end())
    if prefix["count"] and cut < 0:  # "12 Contributors" and no title: the whole line is header
        return None
    if (prefix["count"] or prefix["menu"]) and cut >= 0:  # "12 ContributorsTranslationsEspañol<Title> Lyrics"
        return line[cut + len(marker) :] or None
    if title and line.lstrip(" \t").startswith(f"{title} Lyrics"):
        return line.lstrip(" \t")[len(title) + len(" Lyrics") :] or None
    glued = TITLE_GLUED_TO_TAG.match(line)  # "<Title> Lyrics[Verse 1]", the title unknown
    return line[glued.end() :] if glued else line


def strip_section_tags(text: str) -> str:
    """Drop section labels ("[Chorus]", "[Verse 1: Name]", "(Hook x2)", "Chorus:", and labels broken over several
    lines) and repeat marks ("(x2)")."""
    if ("[" in text and UNCLOSED_BRACKET.search(text)) or ("{" in text and UNCLOSED_BRACE.search(text)):
        text = MULTILINE_TAG.sub("", text)
    lines = []
    for line in text.split("\n"):
        if not line:
            lines.append(line)
            continue
        if SECTION_LINE.fullmatch(line):
            continue
        kept = INLINE_TAG.sub("", line) if "[" in line else line
        if kept.rstrip(" \t")[-1:] in REPEAT_ENDINGS:
            kept = TRAILING_REPEAT.sub("", kept)
        if kept == line or (kept.strip() and not SECTION_LINE.fullmatch(kept)):  # drop what only held labels
            lines.append(kept)
    return "\n".join(lines)


def strip_credits(text: str) -> str:
    """Drop credit and metadata lines: "Produced by ...", "Written by: ...", "Lyrics from: ...", "(c) 1999"."""
    return CREDIT_LINE.sub("", text)


def strip_urls(text: str) -> str:
    """Drop URLs, and the lines that held nothing else."""
    if "://" not in text and "www." not in text.lower():
        return text
    return URL.sub("", URL_LINE.sub("", text))


def normalize_unicode(text: str) -> str:
    """NFKC (full-width letters, ligatures, odd spaces become plain ones), typographic quotes and dashes to ASCII,
    invisible and control characters removed."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).translate(ASCII_PUNCT)
    return CONTROL.sub("", text.replace("\t", " "))


def strip_spaces(text: str) -> str:
    """Trim spaces and tabs at both ends of every line and squeeze runs of them inside it."""
    if "  " in text or "\t" in text:
        text = re.sub(r"[ \t]{2,}", " ", text)
    return "\n".join(line.strip(" \t") for line in text.split("\n"))


def squeeze_blank_lines(text: str) -> str:
    """At most one blank line between stanzas, none at either end."""
    return re.sub(r"\n(?:[ \t]*\n)+", "\n\n", text).strip("\n")


def _option(help: str) -> bool:
    return setting(True, help)


@dataclass(frozen=True)
class CleanOptions:
    """Which cleaning steps run (all by default) and which songs are kept."""

    genius_noise: bool = _option("remove Genius page noise: contributors header, 'You might also like', 'NEmbed'")
    section_tags: bool = _option("remove section tags such as [Chorus], [Verse 1: Name], (x2)")
    credits: bool = _option("remove credit and metadata lines such as 'Produced by ...'")
    urls: bool = _option("remove URLs")
    unicode: bool = _option("normalise unicode (NFKC) and turn typographic quotes and dashes into ASCII")
    spaces: bool = _option("trim spaces at line ends and squeeze repeated spaces")
    blank_lines: bool = _option("squeeze repeated blank lines into one")
    dedupe: bool = _option("drop songs whose normalised text repeats an earlier song's")
    near_dedupe: bool = _option("drop near-duplicate songs (word 5-gram MinHash Jaccard >= near_threshold)")
    near_threshold: float = setting(
        0.6, "word 5-gram Jaccard similarity from which a song is a near duplicate", metavar="J")
    min_words: int = setting(30, "drop shorter songs")

    @classmethod
    def switches(cls) -> dict[str, str]:
        """The on/off steps and their help texts, for the command line's `--no-<step>` flags."""
        return {f.name: f.metadata["help"] for f in fields(cls) if f.type in (bool, "bool")}


# The text steps in the order they run, after the genius noise (its header rule reads the raw page). Each step may
# reveal the next one's target ("[Chorus] Produced by X" is a credit line once the tag is gone), never an earlier
# one's, so that cleaning clean lyrics changes nothing.
STEPS: list[tuple[str, Callable[[str], str]]] = [
    ("unicode", normalize_unicode),
    ("urls", strip_urls),
    ("section_tags", strip_section_tags),
    ("credits", strip_credits),
    ("spaces", strip_spaces),
    ("blank_lines", squeeze_blank_lines),
]


def clean_lyrics(text: str, options: CleanOptions = CleanOptions(), title: str = "") -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if options.genius_noise:
        text = strip_genius_noise(text, title)
    for name, step in STEPS:
        if getattr(options, name):
            text = step(text)
    return text


def count_words(text: str) -> int:
    return len(text.split())
