import pytest

from rapgpt.data.dataset import DatasetWriter, TokenDataset
from rapgpt.data.tokenizer import CharTokenizer
from rapgpt.errors import DataError
from rapgpt.evaluate.references import Song, build_references, dataset_songs, is_heldout
from rapgpt.evaluate.text import chunks
from tests.invented_artists import invented_songs


def test_dataset_songs_decode_each_span(tmp_path):
    texts = ["first verse here\nsecond line", "another song\nby someone else"]
    tok = CharTokenizer.from_texts(texts)
    with DatasetWriter(tmp_path / "ds", tok) as w:
        w.add_song("train", tok.encode(texts[0]), "Ada", "one")
        w.add_song("val", tok.encode(texts[1]), "Bo", "two")
        w.commit(stats={}, options={})
    songs = dataset_songs(TokenDataset(tmp_path / "ds"))
    assert songs == [Song("Ada", "one", texts[0]), Song("Bo", "two", texts[1])]


def test_chunks_are_split_by_song_and_never_shared_between_sides():
    songs = invented_songs(songs_per_artist=20)
    refs = build_references(songs, "Harbor Saint", chunk_lines=4, heldout_share=0.3)
    by_song = {c: s for s in songs for c in chunks(s.text, 4)}
    train_songs = {by_song[c].title for c in refs.target_train + refs.other_train}
    heldout_songs = {by_song[c].title for c in refs.target_heldout + refs.other_heldout}
    assert train_songs and heldout_songs and not train_songs & heldout_songs
    assert {by_song[c].artist for c in refs.target_train + refs.target_heldout} == {"Harbor Saint"}
    assert {by_song[c].artist for c in refs.other_train + refs.other_heldout} == {"Dust Prophet"}
    assert all(len(c.splitlines()) == 4 for c in refs.target_train)


def test_a_duplicated_song_lands_on_one_side():
    a = Song("X", "Night Drive (Remix)", "")
    assert is_heldout(a, 0.5) == is_heldout(Song("X", "night drive remix", ""), 0.5)


def test_unknown_artist_or_too_few_songs_are_refused():
    songs = invented_songs(songs_per_artist=3)
    with pytest.raises(DataError, match="no songs by 'Nobody'.*Dust Prophet, Harbor Saint"):
        build_references(songs, "Nobody")
    with pytest.raises(DataError, match="too few 40-line chunks"):
        build_references(songs, "Harbor Saint", chunk_lines=40)
