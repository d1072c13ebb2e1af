"""Readers: every corpus format people actually have, turned into one stream of `Song` records.

Each reader is a generator over one file (or one folder of one-song files), so memory holds one file's songs at
most. A record that cannot be used (no lyrics, not an object) is skipped and counted in `skips` by reason; a file
that cannot be used at all (missing, binary, not UTF-8, not lyrics, without the named columns) raises a
`DataError` that names the file and the fix.

Formats (`--format`):
    folder    a folder of .txt files, one song per file; the artist is the first sub-folder's name and the title
              the file name, or a first line `# Title`
    txt       one .txt file of many songs, separated by two or more blank lines or by `separator`
    quoted    one file of songs as double-quoted CSV-style chunks, one column and no header
    spotify   the Spotify Million Song Dataset CSV (`artist,song,link,text`)
    csv       any CSV with a header; the columns are guessed or named by `Fields`
    genius    JSON written by lyricsgenius' `Artist.save_lyrics()`: {"name", "songs": [{"title", "lyrics"}]}
    json      a JSON list of {"artist", "title", "lyrics"} objects (or fields named by `Fields`)
    jsonl     the same objects, one per line
    auto      by extension, then by content
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rapgpt.errors import DataError

FORMATS = ("auto", "folder", "txt", "quoted", "spotify", "csv", "genius", "json", "jsonl")
SPOTIFY_COLUMNS = ["artist", "song", "link", "text"]
# Field names tried, in order, when the user names none.
TEXT_FIELDS = ("lyrics", "text", "lyric")
ARTIST_FIELDS = ("artist", "artist_name", "singer")
TITLE_FIELDS = ("title", "song", "song_title", "track")
SNIFF_BYTES = 1 << 16
# A first chunk that is a quoted, multi-line field ending its line: the `quoted` format.
QUOTED_START = re.compile(r'\A\s*"(?:[^"]|"")*\n(?:[^"]|"")*"\r?\n')

csv.field_size_limit(sys.maxsize)


@dataclass(frozen=True, slots=True)
class Song:
    artist: str
    title: str
    lyrics: str
    source: str  # the file (and record) it came from, for messages


@dataclass(frozen=True)
class Fields:
    """Which record fields hold the lyrics, artist and title; None means "guess from the usual names"."""

    text: str | None = None
    artist: str | None = None
    title: str | None = None


def read_sources(
    sources: Iterable[str | Path],
    format: str = "auto",
    fields: Fields = Fields(),
    separator: str | None = None,
    skips: Counter | None = None,
) -> Iterator[Song]:
    """Every song of every source, in order. Skipped records are counted in `skips` ("reason" -> count).

    The paths and the format are checked at once, before any song is read, so that a typo fails fast.
    """
    if format not in FORMATS:
        raise DataError(f"unknown format {format!r}: choose one of {', '.join(FORMATS)}")
    paths = [Path(s) for s in sources]
    for path in paths:
        if not path.exists():
            raise DataError(f"source not found: {path} (check the path)")
    return _read_all(paths, format, fields, separator, Counter() if skips is None else skips)


def _read_all(paths: list[Path], format: str, fields: Fields, separator: str | None, skips: Counter) -> Iterator[Song]:
    for path in paths:
        before = Counter(skips)
        found = False
        for song in _read_path(path, format, fields, separator, skips):
            found = True
            yield song
        if not found:
            skipped = ", ".join(f"{n} {reason}" for reason, n in (skips - before).items()) or "it is empty"
            raise DataError(f"{path} holds no songs ({skipped}): check the path, --format and the field options")


def _read_path(path: Path, format: str, fields: Fields, separator: str | None, skips: Counter) -> Iterator[Song]:
    if path.is_dir():
        yield from read_folder(path, format, fields, separator, skips)
        return
    format = detect_format(path) if format == "auto" else format
    if format == "folder":
        raise DataError(f"{path} is a file, not a folder: drop `--format folder` or give the folder")
    yield from READERS[format](path, fields, separator, skips)


def detect_format(path: Path) -> str:
    """The format of one file, from its extension and, for .txt and unknown extensions, its first bytes."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with _open(path) as f:
            header = next(iter(_checked_rows(csv.reader(f), path)), [])
        return "spotify" if [h.strip() for h in header] == SPOTIFY_COLUMNS else "csv"
    if suffix in (".json", ".jsonl"):
        return suffix[1:]
    head = _sniff(path)
    if suffix == ".txt":
        return "quoted" if QUOTED_START.match(head) else "txt"
    if head.lstrip()[:1] in ("{", "["):
        return "json"
    raise DataError(
        f"unknown format: cannot tell what {path} holds from its extension {suffix or '(none)'!r}; "
        f"pass --format ({', '.join(FORMATS[1:])})"
    )


def read_folder(root: Path, format: str, fields: Fields, separator: str | None, skips: Counter) -> Iterator[Song]:
    """A folder: .txt files are one song each (artist = first sub-folder), except files in the `quoted` format;
    JSON and CSV files are read in their detected format.

    With an explicit format other than `folder`, every (non-hidden) file in the folder is read in that format.
    """
    files = sorted(p for p in root.rglob("*") if p.is_file() and not _hidden(p.relative_to(root)))
    for path in files:
        suffix = path.suffix.lower()
        if format == "auto" and suffix in (".json", ".jsonl", ".csv", ".txt"):
            detected = detect_format(path)
            if detected == "txt":
                yield _read_song_file(path, root)
            else:
                yield from READERS[detected](path, fields, separator, skips)
        elif format == "folder" and suffix == ".txt":
            yield _read_song_file(path, root)
        elif format not in ("auto", "folder"):
            yield from READERS[format](path, fields, separator, skips)
        else:
            skips["ignored file (not .txt, .json, .jsonl or .csv)"] += 1


def _read_song_file(path: Path, root: Path) -> Song:
    parts = path.relative_to(root).parts
    artist = parts[0] if len(parts) > 1 else root.resolve().name
    title, lyrics = _split_title(_read_text(path), default=path.stem)
    return Song(artist, title, lyrics, str(path))


def read_txt(path: Path, fields: Fields, separator: str | None, skips: Counter) -> Iterator[Song]:
    """Songs separated by `separator`, or by two or more blank lines; a block's `# Title` line names it."""
    text = _read_text(path)
    blocks = text.split(separator) if separator else re.split(r"\n[ \t]*\n(?:[ \t]*\n)+", text)
    for i, block in enumerate(blocks, 1):
        if not block.strip():
            continue
        title, lyrics = _split_title(block.strip("\n"), default=f"{path.stem} #{i}")
        yield Song(path.stem, title, lyrics, f"{path}#{i}")


def read_quoted(path: Path, fields: Fields, separator: str | None, skips: Counter) -> Iterator[Song]:
    """One song per CSV row of one column; an unquoted row split at its commas is joined back."""
    with _open(path) as f:
        for i, row in enumerate(_checked_rows(csv.reader(f), path), 1):
            yield Song(path.stem, f"{path.stem} #{i}", ",".join(row), f"{path}#{i}")


def read_csv(path: Path, fields: Fields, separator: str | None, skips: Counter) -> Iterator[Song]:
    with _open(path) as f:
        reader = csv.DictReader(f)
        columns = [c for c in reader.fieldnames or [] if c is not None]
        text, artist, title = _resolve_fields(path, columns, fields, "column")
        for i, row in enumerate(_checked_rows(reader, path), 1):
            yield from _record_song(row, i, path, text, artist, title, path.stem, skips)


def read_spotify(path: Path, fields: Fields, separator: str | None, skips: Counter) -> Iterator[Song]:
    return read_csv(path, Fields(fields.text or "text", fields.artist or "artist", fields.title or "song"), None, skips)


def read_genius(path: Path, fields: Fields, separator: str | None, skips: Counter) -> Iterator[Song]:
    data = _read_json(path)
    if not (isinstance(data, dict) and isinstance(data.get("songs"), list)):
        raise DataError(
            f'{path} is not lyricsgenius JSON: expected an object with a "songs" list '
            "(use --format json for a list of songs)"
        )
    yield from _genius_songs(data, path, fields, skips)


def read_json(path: Path, fields: Fields, separator: str | None, skips: Counter) -> Iterator[Song]:
    """A list of song objects, a single song object, or lyricsgenius JSON (recognised by its "songs" list)."""
    data = _read_json(path)
    if isinstance(data, dict) and isinstance(data.get("songs"), list):
        yield from _genius_songs(data, path, fields, skips)
    elif isinstance(data, dict):
        yield from _records([data], path, fields, path.stem, skips)
    elif isinstance(data, list):
        yield from _records(data, path, fields, path.stem, skips)
    else:
        raise DataError(f"{path} is JSON but not lyrics: expected a list of song objects, found {type(data).__name__}")


def read_jsonl(path: Path, fields: Fields, separator: str | None, skips: Counter) -> Iterator[Song]:
    def records() -> Iterator[Any]:
        with _open(path) as f:
            for n, line in enumerate(_checked_rows(f, path), 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as e:
                        raise DataError(f"{path}, line {n} is not valid JSON ({e}): fix or remove that line") from e

    yield from _records(records(), path, fields, path.stem, skips)


def _genius_songs(data: dict[str, Any], path: Path, fields: Fields, skips: Counter) -> Iterator[Song]:
    """The artist is the one the file was collected for (its "name"), unless --artist-field names a song field."""
    artist = str(data.get("name") or path.stem)
    yield from _records(data["songs"], path, fields, artist, skips, guess_artist=False)


def _records(
    records: Iterable[Any], path: Path, fields: Fields, default_artist: str, skips: Counter, guess_artist: bool = True
) -> Iterator[Song]:
    """Song objects of a JSON file. Field names are guessed from the first object; a file where no object has
    the lyrics field is not lyrics."""
    keys: list[str] | None = None
    found = False
    for i, record in enumerate(records, 1):
        if not isinstance(record, dict):
            skips["record is not an object"] += 1
            continue
        if keys is None:
            keys = list(record)
            text, artist, title = _guess_fields(keys, fields)
            artist = artist if guess_artist or fields.artist else None
        if text not in record:
            skips["record without the lyrics field"] += 1
            continue
        found = True
        yield from _record_song(record, i, path, text, artist, title, default_artist, skips)
    if keys is not None and not found:
        _resolve_fields(path, keys, fields, "field")  # raises, naming the fields the objects do have


def _record_song(
    record: dict[str, Any],
    i: int,
    path: Path,
    text: str | None,
    artist: str | None,
    title: str | None,
    default_artist: str,
    skips: Counter,
) -> Iterator[Song]:
    lyrics = record.get(text) if text else None
    if not isinstance(lyrics, str) or not lyrics.strip():
        skips["record without lyrics"] += 1
        return
    name = record.get(artist) if artist else None
    song_title = record.get(title) if title else None
    yield Song(
        str(name).strip() if name else default_artist,
        str(song_title).strip() if song_title else f"{path.stem} #{i}",
        lyrics,
        f"{path}#{i}",
    )


def _guess_fields(names: list[str], fields: Fields) -> tuple[str | None, str | None, str | None]:
    """The named fields, or else the first of the usual names that exists."""
    return (
        fields.text or next((n for n in TEXT_FIELDS if n in names), None),
        fields.artist or next((n for n in ARTIST_FIELDS if n in names), None),
        fields.title or next((n for n in TITLE_FIELDS if n in names), None),
    )


def _resolve_fields(path: Path, names: list[str], fields: Fields, kind: str) -> tuple[str, str | None, str | None]:
    """`_guess_fields`, raising when a named field does not exist or no lyrics field can be found."""
    for wanted, option in (
        (fields.text, "--text-field"),
        (fields.artist, "--artist-field"),
        (fields.title, "--title-field"),
    ):
        if wanted is not None and wanted not in names:
            raise DataError(f"{path} has no {kind} {wanted!r} ({kind}s: {_listing(names)}): fix {option}")
    text, artist, title = _guess_fields(names, fields)
    if text is None:
        raise DataError(
            f"{path} is not lyrics: no {kind} named {' or '.join(map(repr, TEXT_FIELDS))} "
            f"({kind}s: {_listing(names)}); name the lyrics {kind} with --text-field"
        )
    return text, artist, title


def _listing(names: list[str]) -> str:
    return ", ".join(map(repr, names[:12])) + (", ..." if len(names) > 12 else "") if names else "none"


def _split_title(text: str, default: str) -> tuple[str, str]:
    """A leading `# Title` line is the song's title; otherwise the title is `default`."""
    first, _, rest = text.partition("\n")
    if first.startswith("# ") and first[2:].strip():
        return first[2:].strip(), rest.lstrip("\n")
    return default, text


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _sniff(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    if b"\x00" in head:
        raise DataError(f"{path} is a binary file, not text: remove it from the sources (or fix its extension)")
    return head.decode("utf-8", errors="ignore")


def _read_text(path: Path) -> str:
    _sniff(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig").replace("\r\n", "\n")
    except UnicodeDecodeError as e:
        raise _not_utf8(path, e) from e


def _read_json(path: Path) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON ({e}): fix the file or pass the right --format") from e


def _open(path: Path):
    _sniff(path)
    return open(path, encoding="utf-8-sig", newline="")


def _checked_rows(rows: Iterable, path: Path) -> Iterator:
    """Non-empty rows of a CSV reader (or lines of a file), turning a decoding or CSV error into a DataError that
    names the file."""
    try:
        for row in rows:
            if row:
                yield row
    except UnicodeDecodeError as e:
        raise _not_utf8(path, e) from e
    except csv.Error as e:
        raise DataError(f"{path} is not valid CSV ({e}): fix the file or pass the right --format") from e


def _not_utf8(path: Path, e: UnicodeDecodeError) -> DataError:
    return DataError(
        f"{path} is not valid UTF-8 (bad byte at offset {e.start}): re-save it as UTF-8, "
        f"e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed{path.suffix}`"
    )


READERS: dict[str, Callable[[Path, Fields, str | None, Counter], Iterator[Song]]] = {
    "txt": read_txt,
    "quoted": read_quoted,
    "spotify": read_spotify,
    "csv": read_csv,
    "genius": read_genius,
    "json": read_json,
    "jsonl": read_jsonl,
}
