"""The bundled sample corpus keeps its promises: its size, its layout, voices told apart by word choice, and no
lyrics copied from real songs."""

import csv
import json
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import rapgpt

CORPUS = Path(rapgpt.__file__).parent / "sample_corpus"
TAG = re.compile(r"^\[([^\]]+)\]$")
WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


@dataclass(frozen=True)
class Song:
    artist: str
    path: Path
    lines: list[str]

    @property
    def tags(self) -> list[str]:
        return [m.group(1) for line in self.lines if (m := TAG.match(line.strip()))]

    def lyrics(self, skip: tuple[str, ...] = ()) -> list[str]:
        """The sung lines after the title: no blank lines, no section tags, none of the sections named in `skip`."""
        out, section = [], None
        for line in self.lines[2:]:
            if m := TAG.match(line.strip()):
                section = m.group(1)
            elif line.strip() and section not in skip:
                out.append(line)
        return out

    @property
    def words(self) -> int:
        return sum(len(line.split()) for line in self.lyrics())


def load_songs() -> list[Song]:
    return [Song(p.parent.name, p, p.read_text(encoding="utf-8").splitlines()) for p in sorted(CORPUS.glob("*/*.txt"))]


SONGS = load_songs()


def test_corpus_has_six_artists_66_songs_and_16000_words():
    assert len({s.artist for s in SONGS}) >= 6
    assert len(SONGS) >= 66
    assert sum(s.words for s in SONGS) >= 16_000


def test_every_artist_has_at_least_eleven_songs():
    counts = Counter(s.artist for s in SONGS)
    assert min(counts.values()) >= 11, counts


@pytest.mark.parametrize("song", SONGS, ids=lambda s: f"{s.artist}/{s.path.stem}")
def test_song_has_title_line_section_tags_repeated_chorus_and_150_to_400_words(song):
    assert re.fullmatch(r"# \S.*", song.lines[0]) and song.lines[1] == "", "first line `# Title`, then a blank line"
    tags = Counter(song.tags)
    assert tags["Chorus"] + tags["Hook"] >= 2, f"the chorus is sung at least twice: {song.tags}"
    assert 150 <= song.words <= 400


def test_titles_are_unique_within_each_artist():
    titles = Counter((s.artist, s.lines[0]) for s in SONGS)
    assert [t for t, n in titles.items() if n > 1] == []


def test_artists_md_describes_every_artist_and_says_the_text_is_original():
    text = (CORPUS / "ARTISTS.md").read_text(encoding="utf-8")
    assert "original text written for rapgpt" in text and "free to use" in text
    assert [a for a in sorted({s.artist for s in SONGS}) if f"(`{a}/`)" not in text] == []


def tfidf(counts: Counter, idf: dict[str, float]) -> dict[str, float]:
    """Sublinear tf-idf, unit length; words missing from `idf` (unseen in training) weigh nothing."""
    vec = {w: (1 + math.log(n)) * idf.get(w, 0.0) for w, n in counts.items()}
    norm = math.sqrt(sum(x * x for x in vec.values())) or 1.0
    return {w: x / norm for w, x in vec.items()}


def nearest_artist(train: list[tuple[str, Counter]], counts: Counter) -> str:
    """The artist whose centroid of tf-idf song vectors is closest in cosine to the song's."""
    df = Counter(w for _, c in train for w in c)
    idf = {w: math.log(len(train) / d) for w, d in df.items()}
    centroids: dict[str, Counter] = {}
    for artist, c in train:
        centroids.setdefault(artist, Counter()).update(tfidf(c, idf))
    query = tfidf(counts, idf)

    def cosine(centroid: Counter) -> float:
        return sum(x * centroid[w] for w, x in query.items()) / math.sqrt(sum(x * x for x in centroid.values()))

    return max(centroids, key=lambda a: cosine(centroids[a]))


def test_held_out_songs_are_attributed_to_their_artist_by_word_choice():
    # Intros and outros hold each artist's tag lines; without them the verses and choruses must still tell.
    bags = [(s.artist, Counter(WORD.findall(" ".join(s.lyrics(skip=("Intro", "Outro"))).lower()))) for s in SONGS]
    hits = sum(nearest_artist(bags[:i] + bags[i + 1 :], c) == a for i, (a, c) in enumerate(bags))
    assert hits / len(bags) >= 0.9, f"{hits}/{len(bags)} held-out songs attributed to their artist"


# Counting down is not a lyric: runs made only of these words are allowed to match.
NUMBERS = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"}


def real_lyrics(data: Path) -> Iterator[str]:
    """Every lyrics text in the real corpora, whatever the format: JSON "lyrics" fields, CSV "text", plain text."""

    def walk(obj):
        if isinstance(obj, dict):
            for key, value in obj.items():
                yield from [value] if key == "lyrics" and isinstance(value, str) else walk(value)
        elif isinstance(obj, list):
            for value in obj:
                yield from walk(value)

    for path in sorted(data.rglob("*")):
        if path.suffix == ".json":
            yield from walk(json.loads(path.read_text(encoding="utf-8")))
        elif path.suffix == ".csv":
            with open(path, newline="", encoding="utf-8") as f:
                yield from (row["text"] for row in csv.DictReader(f))
        elif path.suffix == ".txt":
            yield path.read_text(encoding="utf-8")


def ngrams(text: str, n: int) -> Iterator[tuple[str, ...]]:
    words = WORD.findall(text.lower().replace("\u2019", "'"))
    return (tuple(words[i : i + n]) for i in range(len(words) - n + 1))


@pytest.mark.slow
@pytest.mark.shared_data
def test_no_eight_word_run_of_the_corpus_appears_in_real_lyrics(shared_data):
    ours = {g for s in SONGS for g in ngrams("\n".join(s.lyrics()), 8) if not set(g) <= NUMBERS}
    copied = {g for text in real_lyrics(shared_data) for g in ngrams(text, 8) if g in ours}
    assert copied == set(), sorted(" ".join(g) for g in copied)
