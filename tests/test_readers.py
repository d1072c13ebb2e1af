import csv
import json
from collections import Counter

import pytest

from rapgpt.data.readers import Fields, detect_format, read_sources
from rapgpt.errors import DataError

VERSE = "Paper lantern on the harbor wall\nCopper river never stops to call"
OTHER = "Neon orbit, velvet static hum\nMidnight engine, here we come"


def read(*sources, **kwargs):
    skips = Counter()
    songs = list(read_sources(sources, skips=skips, **kwargs))
    return songs, skips


def test_folder_takes_artist_from_subfolder_and_title_from_header(tmp_path):
    root = tmp_path / "corpus"
    (root / "dj-comet").mkdir(parents=True)
    (root / "dj-comet" / "harbor-wall.txt").write_text(f"# Harbor Wall\n\n{VERSE}\n")
    (root / "dj-comet" / "untitled.txt").write_text(OTHER)
    (root / "loose.txt").write_text(VERSE)
    (root / "dj-comet" / "notes.md").write_text("not lyrics")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.txt").write_text("ignored")
    songs, skips = read(root)
    got = {(s.artist, s.title): s.lyrics for s in songs}
    assert got == {
        ("dj-comet", "Harbor Wall"): f"{VERSE}\n",
        ("dj-comet", "untitled"): OTHER,
        ("corpus", "loose"): VERSE,  # a file at the top level belongs to the folder's own name
    }
    assert skips == {"ignored file (not .txt, .json, .jsonl or .csv)": 1}


def test_txt_splits_songs_on_blank_line_blocks_or_a_separator(tmp_path):
    path = tmp_path / "mixtape.txt"
    path.write_text(f"# First\n{VERSE}\n\n{OTHER}\n\n\n\n{OTHER}\n")
    songs, _ = read(path)
    assert [(s.artist, s.title) for s in songs] == [("mixtape", "First"), ("mixtape", "mixtape #2")]
    assert songs[0].lyrics == f"{VERSE}\n\n{OTHER}"  # one blank line is a stanza break, not a new song
    path.write_text(f"{VERSE}\n===\n{OTHER}\n\n\n{OTHER}")
    songs, _ = read(path, separator="===")
    assert [s.lyrics.strip() for s in songs] == [VERSE, f"{OTHER}\n\n\n{OTHER}"]


def test_quoted_chunks_are_read_like_a_one_column_csv(tmp_path):
    path = tmp_path / "quoted.txt"
    path.write_text(f'"[Verse]\n{VERSE}"\n"She said ""hold on""\n{OTHER}"\nNo quotes here, just commas, fine\n')
    assert detect_format(path) == "quoted"
    songs, _ = read(path)
    assert [s.lyrics for s in songs] == [
        f"[Verse]\n{VERSE}",
        f'She said "hold on"\n{OTHER}',
        "No quotes here, just commas, fine",  # an unquoted row split at its commas is joined back
    ]
    assert {s.artist for s in songs} == {"quoted"}


def test_spotify_csv(tmp_path):
    path = tmp_path / "songs.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["artist", "song", "link", "text"])
        w.writerow(["Cobalt Saddle", "Harbor", "/c/cobalt+saddle/harbor.html", f"{VERSE}  \n"])
        w.writerow(["Cobalt Saddle", "Empty", "/c/x.html", "   "])
    assert detect_format(path) == "spotify"
    songs, skips = read(path)
    assert [(s.artist, s.title, s.lyrics) for s in songs] == [("Cobalt Saddle", "Harbor", f"{VERSE}  \n")]
    assert skips == {"record without lyrics": 1}


def test_lyricsgenius_json_takes_the_artist_from_the_file(tmp_path):
    path = tmp_path / "Lyrics_Ember.json"
    data = {
        "name": "Ember Quarry",
        "songs": [
            {"title": "Signal", "lyrics": VERSE, "artist": "Someone Featured", "album": None},
            {"title": "Blank", "lyrics": None},
        ],
    }
    path.write_text(json.dumps(data))
    for fmt in ("auto", "genius", "json"):
        songs, skips = read(path, format=fmt)
        assert [(s.artist, s.title, s.lyrics) for s in songs] == [("Ember Quarry", "Signal", VERSE)]
        assert skips == {"record without lyrics": 1}
    songs, _ = read(path, fields=Fields(artist="artist"))
    assert songs[0].artist == "Someone Featured"


def test_json_list_and_jsonl_with_extra_fields(tmp_path):
    records = [
        {"artist": "Mosaic", "album": "One", "title": "Glacier", "lyrics": VERSE, "year": 2001},
        {"artist": "Mosaic", "album": "One", "title": "Meadow", "lyrics": OTHER, "year": None},
        "not an object",
    ]
    (tmp_path / "list.json").write_text(json.dumps(records))
    (tmp_path / "list.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    for name in ("list.json", "list.jsonl"):
        songs, skips = read(tmp_path / name)
        assert [(s.artist, s.title, s.lyrics) for s in songs] == [
            ("Mosaic", "Glacier", VERSE),
            ("Mosaic", "Meadow", OTHER),
        ]
        assert skips == {"record is not an object": 1}


def test_json_songs_under_a_key_are_found_and_where_is_noted(tmp_path):
    path = tmp_path / "scrape.json"
    tracks = [{"name": "Glacier", "artist": "Mosaic", "lyrics": VERSE}, {"name": "Meadow", "artist": "Mosaic"}]
    path.write_text(json.dumps({"user": {"name": "someone", "tags": [{"tag": "rap"}]}, "top_tracks": tracks}))
    found = {}
    songs = list(read_sources([path], found=found))
    assert [(s.artist, s.title, s.lyrics) for s in songs] == [("Mosaic", "Glacier", VERSE)]
    assert found == {str(path): "json: the list under 'top_tracks'"}
    path.write_text(json.dumps({"data": {"chart": {"entries": tracks}}}))  # deeper, one list of objects
    songs, _ = read(path)
    assert [s.title for s in songs] == ["Glacier"]


def test_json_with_several_lists_of_songs_asks_for_records_field(tmp_path):
    path = tmp_path / "two.json"
    path.write_text(
        json.dumps({"loved": [{"title": "A", "lyrics": VERSE}], "recent": [{"title": "B", "lyrics": OTHER}]})
    )
    with pytest.raises(DataError, match="two.json holds several lists.*'loved', 'recent'.*--records-field"):
        read(path)
    songs, _ = read(path, fields=Fields(records="recent"))
    assert [(s.title, s.lyrics) for s in songs] == [("B", OTHER)]
    with pytest.raises(DataError, match="no list under 'played'.*fix --records-field"):
        read(path, fields=Fields(records="played"))


def test_json_lyrics_given_as_a_list_of_lines_are_joined(tmp_path):
    path = tmp_path / "lines.json"
    stanzas = [VERSE.split("\n"), OTHER.split("\n")]
    path.write_text(
        json.dumps([{"title": "Lines", "lyrics": VERSE.split("\n")}, {"title": "Stanzas", "lyrics": stanzas}])
    )
    songs, skips = read(path)
    assert [(s.title, s.lyrics) for s in songs] == [("Lines", VERSE), ("Stanzas", f"{VERSE}\n\n{OTHER}")]
    assert not skips


def test_any_csv_or_json_with_named_fields(tmp_path):
    path = tmp_path / "dump.csv"
    path.write_text(f'who,name,words\nRibbon,Tunnel,"{VERSE}"\n')
    songs, _ = read(path, fields=Fields(text="words", artist="who", title="name"))
    assert [(s.artist, s.title, s.lyrics) for s in songs] == [("Ribbon", "Tunnel", VERSE)]
    path = tmp_path / "dump.json"
    path.write_text(json.dumps([{"who": "Ribbon", "words": OTHER}]))
    songs, _ = read(path, fields=Fields(text="words", artist="who"))
    assert [(s.artist, s.title, s.lyrics) for s in songs] == [("Ribbon", "dump #1", OTHER)]


def test_several_sources_are_read_in_order(tmp_path):
    (tmp_path / "a.txt").write_text(VERSE)
    (tmp_path / "b.json").write_text(json.dumps([{"artist": "B", "title": "t", "lyrics": OTHER}]))
    songs, _ = read(tmp_path / "b.json", tmp_path / "a.txt")
    assert [s.lyrics for s in songs] == [OTHER, VERSE]


def test_format_detection(tmp_path):
    cases = {
        "a.csv": ("artist,title,lyrics\nx,y,z\n", "csv"),
        "b.json": ("[]", "json"),
        "c.jsonl": ("{}", "jsonl"),
        "d.txt": (VERSE, "txt"),
        "e.txt": ('"Quoted first line"\nthen more', "txt"),  # a quoted line is not the quoted format
        "f.lyrics": ('{"songs": []}', "json"),
    }
    for name, (text, expected) in cases.items():
        (tmp_path / name).write_text(text)
        assert detect_format(tmp_path / name) == expected, name


@pytest.mark.parametrize(
    ("name", "content", "kwargs", "message"),
    [
        ("lyrics.xyz", b"plain words", {}, "unknown format.*--format"),
        ("lyrics.txt", b"x", {"format": "yaml"}, "unknown format 'yaml'"),
        (
            "lyrics.csv",
            b"artist,title,text\nA,B,C\n",
            {"fields": Fields(text="lyric")},
            "no column 'lyric'.*--text-field",
        ),
        ("lyrics.csv", b"artist,title,notes\nA,B,C\n", {}, "not lyrics: no column.*--text-field"),
        ("lyrics.txt", "caf\u00e9".encode("latin-1"), {}, "not valid UTF-8.*iconv"),
        ("lyrics.csv", b"artist,song,link,text\nA,B,C,\xff\n", {}, "not valid UTF-8"),
        ("lyrics.json", b'{"name": "A", "followers": 3}', {}, "not lyrics: no field"),
        ("lyrics.json", b"[1, 2, 3]", {}, "holds no songs.*3 record is not an object"),
        ("lyrics.json", b'"just a string"', {}, "JSON but not lyrics"),
        ("lyrics.json", b'{"songs": [', {}, "not valid JSON"),
        ("lyrics.json", b'{"artist": "A"}', {"format": "genius"}, "not lyricsgenius JSON"),
        ("lyrics.jsonl", b'{"lyrics": "a"}\n{oops\n', {}, "line 2 is not valid JSON"),
        ("lyrics.txt", b"", {}, "holds no songs"),
    ],
)
def test_bad_files_raise_an_error_naming_the_file_and_the_fix(tmp_path, name, content, kwargs, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as e:
        read(path, **kwargs)
    if "yaml" not in message:
        assert name in str(e.value)


def test_missing_path_fails_before_any_song_is_read(tmp_path):
    (tmp_path / "a.txt").write_text(VERSE)
    with pytest.raises(DataError, match="source not found: .*nowhere"):
        read_sources([tmp_path / "a.txt", tmp_path / "nowhere"])  # not even iterated


def test_binary_file_in_a_text_folder_is_refused(tmp_path):
    (tmp_path / "artist").mkdir()
    (tmp_path / "artist" / "song.txt").write_text(VERSE)
    (tmp_path / "artist" / "cover.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(DataError, match="cover.txt is a binary file"):
        read(tmp_path)


def test_empty_folder_holds_no_songs(tmp_path):
    with pytest.raises(DataError, match="holds no songs"):
        read(tmp_path)


@pytest.mark.shared_data
def test_real_corpora_read_with_their_known_counts(shared_data):
    expected = {  # songs with lyrics, artists, records skipped (counted with json/csv in ../shared/data/README.md)
        "rap-genius-35": (11_193, 35, {"record without lyrics": 565}),
        "genius-api-rap": (980, 49, {}),
        "spotify-millsong-2000": (2_000, 50, {}),
        "drake-lyrics": (288, 1, {}),
    }
    for name, (n_songs, n_artists, skipped) in expected.items():
        songs, skips = read(shared_data / name)
        assert (len(songs), len({s.artist for s in songs}), dict(skips)) == (n_songs, n_artists, skipped), name
        assert all(s.lyrics.strip() and s.title for s in songs)
