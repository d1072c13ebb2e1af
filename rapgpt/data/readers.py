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
    json      {"artist", "title", "lyrics"} objects (or fields named by `Fields`): a top-level list, a single
              object, or a list of objects anywhere under keys ({"top_tracks": [...]}), found by looking or
              named by `Fields.records`; the lyrics may be a string or a list of lines
    jsonl     the same objects, one per line
    auto      by extension, then by content

Where each file's songs were found (its format, and for JSON the list that holds them) is noted in `found`.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rapgpt.errors import DataError

FORMATS = ("auto", "folder", "txt", "quoted", "spotify", "csv", "genius", "json", "jsonl")
SPOTIFY_COLUMNS = ["artist", "song", "link", "text"]
# Field names tried, in order, when the user names none.
TEXT_FIELDS = ("lyrics", "text", "lyric")
ARTIST_FIELDS = ("artist", "artist_name", "singer")
TITLE_FIELDS = ("title", "song", "song_title", "track", "name")
SNIFF_BYTES = 1 << 16
RECORDS_DEPTH = 4  # how deep under keys a JSON file's list of songs is looked for
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
    """Which record fields hold the lyrics, artist and title, and (JSON) which key holds the records, as a dotted
    path such as "data.tracks"; None means "guess from the usual names" or "look for the list"."""

    text: str | None = None
    artist: str | None = None
    title: str | None = None
    records: str | None = None


@dataclass
class ReadLog:
    """What reading noted besides the songs: skipped records by reason, and where each file's songs were found
    (file or folder -> "format: where"), for the statistics and the dry run."""

    skips: Counter = field(default_factory=Counter)
    found: dict[str, str] = field(default_factory=dict)


def read_sources(
    sources: Iterable[str | Path],
    format: str = "auto",
    fields: Fields = Fields(),
    separator: str | None = None,
    skips: Counter | None = None,
    found: dict[str, str] | None = None,
) -> Iterator[Song]:
    """Every song of every source, in order. Skipped records are counted in `skips` ("reason" -> count), and
    where each file's songs were found is noted in `found` (path -> "format: where").

    The paths and the format are checked at once, before any song is read, so that a typo fails fast.
    """
    if format not in FORMATS:
        raise DataError(f"unknown format {format!r}: choose one of {', '.join(FORMATS)}")
    paths = [Path(s) for s in sources]
    for path in paths:
        if not path.exists():
            raise DataError(f"source not found: {path} (check the path)")
    log = ReadLog(Counter() if skips is None else skips, {} if found is None else found)
    return _read_all(paths, format, fields, separator, log)


def _read_all(paths: list[Path], format: str, fields: Fields, separator: str | None, log: ReadLog) -> Iterator[Song]:
    for path in paths:
        before = Counter(log.skips)
        found = False
        for song in _read_path(path, format, fields, separator, log):
            found = True
            yield song
        if not found:
            skipped = ", ".join(f"{n} {reason}" for reason, n in (log.skips - before).items()) or "it is empty"
            raise DataError(f"{path} holds no songs ({skipped}): check the path, --format and the field options")


def _read_path(path: Path, format: str, fields: Fields, separator: str | None, log: ReadLog) -> Iterator[Song]:
    if path.is_dir():
        yield from read_folder(path, format, fields, separator, log)
        return
    format = detect_format(path) if format == "auto" else format
    if format == "folder":
        raise DataError(f"{path} is a file, not a folder: drop `--format folder` or give the folder")
    yield from READERS[format](path, fields, separator, log)


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


def read_folder(root: Path, format: str, fields: Fields, separator: str | None, log: ReadLog) -> Iterator[Song]:
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
                yield _read_song_file(path, root, log)
            else:
                yield from READERS[detected](path, fields, separator, log)
        elif format == "folder" and suffix == ".txt":
            yield _read_song_file(path, root, log)
        elif format not in ("auto", "folder"):
            yield from READERS[format](path, fields, separator, log)
        else:
            log.skips["ignored file (not .txt, .json, .jsonl or .csv)"] += 1


def _read_song_file(path: Path, root: Path, log: ReadLog) -> Song:
    log.found[str(root)] = "folder: one song per .txt file (artist: the sub-folder)"
    parts = path.relative_to(root).parts
    artist = parts[0] if len(parts) > 1 else root.resolve().name
    title, lyrics = _split_title(_read_text(path), default=path.stem)
    return Song(artist, title, lyrics, str(path))


def read_txt(path: Path, fields: Fields, separator: str | None, log: ReadLog) -> Iterator[Song]:
    """Songs separated by `separator`, or by two or more blank lines; a block's `# Title` line names it."""
    log.found[str(path)] = f"txt: songs separated by {repr(separator) if separator else '2+ blank lines'}"
    text = _read_text(path)
    blocks = text.split(separator) if separator else re.split(r"\n[ \t]*\n(?:[ \t]*\n)+", text)
    for i, block in enumerate(blocks, 1):
        if not block.strip():
            continue
        title, lyrics = _split_title(block.strip("\n"), default=f"{path.stem} #{i}")
        yield Song(path.stem, title, lyrics, f"{path}#{i}")


def read_quoted(path: Path, fields: Fields, separator: str | None, log: ReadLog) -> Iterator[Song]:
    """One song per CSV row of one column; an unquoted row split at its commas is joined back."""
    log.found[str(path)] = "quoted: one double-quoted song per chunk"
    with _open(path) as f:
        for i, row in enumerate(_checked_rows(csv.reader(f), path), 1):
            yield Song(path.stem, f"{path.stem} #{i}", ",".join(row), f"{path}#{i}")


def read_csv(path: Path, fields: Fields, separator: str | None, log: ReadLog, kind: str = "csv") -> Iterator[Song]:
    with _open(path) as f:
        reader = csv.DictReader(f)
        columns = [c for c in reader.fieldnames or [] if c is not None]
        text, artist, title = _resolve_fields(path, columns, fields, "column")
        log.found[str(path)] = f"{kind}: one song per row, lyrics in column {text!r}"
        for i, row in enumerate(_checked_rows(reader, path), 1):
            yield from _record_song(row, i, path, text, artist, title, path.stem, log.skips)


def read_spotify(path: Path, fields: Fields, separator: str | None, log: ReadLog) -> Iterator[Song]:
    spotify = Fields(fields.text or "text", fields.artist or "artist", fields.title or "song")
    return read_csv(path, spotify, None, log, kind="spotify")


def read_genius(path: Path, fields: Fields, separator: str | None, log: ReadLog) -> Iterator[Song]:
    data = _read_json(path)
    if not _is_genius(data):
        raise DataError(
            f'{path} is not lyricsgenius JSON: expected an object with a "songs" list '
            "(use --format json for a list of songs)"
        )
    yield from _genius_songs(data, path, fields, log)


def read_json(path: Path, fields: Fields, separator: str | None, log: ReadLog) -> Iterator[Song]:
    """Song objects wherever the file keeps them (see `find_records`); lyricsgenius JSON is recognised by its
    "songs" list beside the artist's "name"."""
    data = _read_json(path)
    if fields.records is None and _is_genius(data):
        yield from _genius_songs(data, path, fields, log)
        return
    records, where = find_records(data, path, fields)
    log.found[str(path)] = f"json: {where}"
    yield from _records(records, path, fields, path.stem, log.skips)


def _is_genius(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("songs"), list)


def find_records(data: Any, path: Path, fields: Fields) -> tuple[list[Any], str]:
    """The list of song objects in a JSON document, and where it was found: under `fields.records` when named,
    else the top-level list, a single song object, or the one list of objects under keys whose objects have a
    lyrics field (or, failing that, the only list of objects, so that the field error names its fields)."""
    if fields.records is not None:
        return _named_records(data, path, fields.records), f"the list under {fields.records!r}"
    if isinstance(data, list):
        return data, "the top-level list"
    if not isinstance(data, dict):
        raise DataError(f"{path} is JSON but not lyrics: expected a list of song objects, found {type(data).__name__}")
    if _has_lyrics(data, fields):
        return [data], "a single song object"
    lists = dict(_object_lists(data, ()))
    with_lyrics = [key for key, records in lists.items() if any(_has_lyrics(r, fields) for r in records[:20])]
    if len(with_lyrics) == 1 or (not with_lyrics and len(lists) == 1):
        key = (with_lyrics or list(lists))[0]
        return lists[key], f"the list under {key!r}"
    if not lists:
        return [data], "a single object"  # not a song either: the field error names its fields
    raise DataError(
        f"{path} holds several lists of objects ({_listing(list(with_lyrics or lists))}): "
        "choose the one with the songs with --records-field KEY"
    )


def _named_records(data: Any, path: Path, records: str) -> list[Any]:
    value = data
    for key in records.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, list):
        found = _listing(list(dict(_object_lists(data, ())))) if isinstance(data, dict) else "the top-level list"
        raise DataError(f"{path} has no list under {records!r} (lists of objects: {found}): fix --records-field")
    return value


def _object_lists(data: dict[str, Any], prefix: tuple[str, ...]) -> Iterator[tuple[str, list[Any]]]:
    """(dotted key, list) for every non-empty list of objects under `data`'s keys, up to `RECORDS_DEPTH` deep."""
    for key, value in data.items():
        path = (*prefix, str(key))
        if isinstance(value, list) and value and isinstance(value[0], dict):
            yield ".".join(path), value
        elif isinstance(value, dict) and len(path) < RECORDS_DEPTH:
            yield from _object_lists(value, path)


def _has_lyrics(record: Any, fields: Fields) -> bool:
    return isinstance(record, dict) and _guess_fields(list(record), fields)[0] is not None


def read_jsonl(path: Path, fields: Fields, separator: str | None, log: ReadLog) -> Iterator[Song]:
    def records() -> Iterator[Any]:
        with _open(path) as f:
            for n, line in enumerate(_checked_rows(f, path), 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as e:
                        raise DataError(f"{path}, line {n} is not valid JSON ({e}): fix or remove that line") from e

    log.found[str(path)] = "jsonl: one song object per line"
    yield from _records(records(), path, fields, path.stem, log.skips)


def _genius_songs(data: dict[str, Any], path: Path, fields: Fields, log: ReadLog) -> Iterator[Song]:
    """The artist is the one the file was collected for (its "name"), unless --artist-field names a song field."""
    log.found[str(path)] = "genius: lyricsgenius JSON, the 'songs' list (artist: the file's 'name')"
    artist = str(data.get("name") or path.stem)
    yield from _records(data["songs"], path, fields, artist, log.skips, guess_artist=False)


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
    lyrics = _lyrics_text(record.get(text)) if text else None
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


def _lyrics_text(value: Any) -> Any:
    """Lyrics given as a list of lines (or of stanzas, each a list of lines) become one text; other values pass."""
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return "\n".join(value)
    if isinstance(value, list) and all(isinstance(s, list) and all(isinstance(x, str) for x in s) for s in value):
        return "\n\n".join("\n".join(stanza) for stanza in value)
    return value


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


READERS: dict[str, Callable[[Path, Fields, str | None, ReadLog], Iterator[Song]]] = {
    "txt": read_txt,
    "quoted": read_quoted,
    "spotify": read_spotify,
    "csv": read_csv,
    "genius": read_genius,
    "json": read_json,
    "jsonl": read_jsonl,
}
