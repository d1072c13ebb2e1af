from rapgpt.data.stats import CorpusStats, format_stats


def test_statistics_add_up_per_split_and_rank_artists():
    stats = CorpusStats()
    for split, artist, words in [("train", "Ember", 100), ("train", "Ember", 50), ("train", "Quarry", 70),
                                 ("val", "Quarry", 30)]:  # fmt: skip
        stats.add(split, artist, words=words, chars=5 * words, tokens=words + 1)
    data = stats.to_json(top=1, dropped={"too short (< 30 words)": 2})
    assert data["train"] == {"songs": 3, "artists": 2, "words": 220, "chars": 1100, "tokens": 223}
    assert data["val"] == {"songs": 1, "artists": 1, "words": 30, "chars": 150, "tokens": 31}
    assert data["total"] == {"songs": 4, "artists": 2, "words": 250, "chars": 1250, "tokens": 254}
    assert data["top_artists"] == [{"artist": "Ember", "songs": 2, "words": 150}]
    table = format_stats(data)
    assert table.splitlines()[0].split() == ["songs", "artists", "words", "chars", "tokens"]
    assert table.splitlines()[3].split() == ["total", "4", "2", "250", "1,250", "254"]
    assert "Ember (2 songs, 150 words)" in table and "dropped: 2 too short (< 30 words)" in table


def test_statistics_say_where_the_songs_were_found_and_how_the_split_fell_back():
    found = {"a/x.json": "json: the list under 'top_tracks'", "a/y.json": "json: the list under 'top_tracks'",
             "b.csv": "csv: one song per row, lyrics in column 'text'"}  # fmt: skip
    data = CorpusStats().to_json(sources=found, split_fallback="a single song: cut into 4 chunks at blank lines")
    table = format_stats(data)
    assert "read: json: the list under 'top_tracks' (2 files); csv: one song per row, lyrics in column 'text'" in table
    assert "split: a single song: cut into 4 chunks at blank lines" in table
