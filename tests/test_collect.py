"""`rapgpt collect` against a fake Genius (API and web pages) on loopback, with scripted failures."""

from __future__ import annotations

import html
import inspect
import itertools
import json
import socket
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from rapgpt.cli import main
from rapgpt.data.collect import RequestPolicy, artist_file, collect, lyrics_from_html, retry_after_seconds
from rapgpt.data.collect_config import CollectConfig
from rapgpt.errors import ConfigError, DataError, NetworkError

TOKEN = "good-token"
FAST = RequestPolicy(min_interval=0.0, timeout=0.25, retries=2, backoff=0.01, max_backoff=0.05)
# Bytes arrive faster than the read timeout, so that only the deadline for the whole request can end one.
DRIP = replace(FAST, timeout=3.0, request_timeout=1.2)


def _artist(artist_id: int, name: str) -> dict:
    slug = name.replace(" ", "-").lower()
    return {"id": artist_id, "name": name, "api_path": f"/artists/{artist_id}", "url": f"https://genius.com/artists/{slug}"}


INVENTED, GUEST, PLAIN = _artist(7, "Mc Invented"), _artist(8, "Guest Voice"), _artist(9, "Dee Plain")


def _song(song_id: int, title: str, artist: dict, **extra) -> dict:
    path = f"/{artist['name'].replace(' ', '-')}-{title.replace(' ', '-').lower()}-lyrics"
    return {"id": song_id, "title": title, "path": path, "url": f"https://genius.com{path}", "lyrics_state": "complete",
            "api_path": f"/songs/{song_id}", "primary_artist": artist, **extra}


SONGS = {
    INVENTED["id"]: [
        _song(101, "Paper Moons", INVENTED),
        _song(102, "Album Art", INVENTED),  # a non-song page
        _song(103, "Kettle Drum", INVENTED),  # instrumental according to its full record
        _song(104, "Quiet Room", INVENTED),  # its page has no lyrics container
        _song(105, "Borrowed Verse", GUEST),  # the artist is only featured
        _song(106, "Late Bus", INVENTED, lyrics_state="unreleased"),
        _song(107, "Tin Crown", INVENTED),
        _song(108, "Rain Check", INVENTED),
        _song(109, "Hum Along", INVENTED),  # its page says only that it is an instrumental
        _song(110, "Night Drive (Instrumental)", INVENTED),
    ],
    PLAIN["id"]: [_song(201 + i, f"Plain Tune {i}", PLAIN) for i in range(5)],
}
INSTRUMENTAL, WITHOUT_LYRICS = {103}, {104}
LYRICS = {
    101: "[Verse 1]\nPaper moons over cardboard towns\nI fold the night & keep it in my pocket\n\n[Hook]\nPaper, paper",
    105: "[Verse: Guest Voice]\nBorrowed a verse, gave it back with <interest>",
    107: "[Intro]\nTin crown, tin crown\nRusting on a throne of milk crates",
    108: "[Verse 1]\nRain check on the sunshine\n\"Later\" is the word I say the most",
    109: "[Instrumental]",
}
LYRICS.update({song["id"]: f"[Verse]\nplain line {song['id']}\nanother plain line" for song in SONGS[PLAIN["id"]]})
PAGE_SIZE = 3  # the fake serves at most this many songs per page, so that paging is exercised


def _page_html(song_id: int) -> str:
    """A song page shaped like genius.com's: two lyrics containers with <br/> line breaks, markup inside them, a
    header excluded from selection, and an advert between the containers."""
    if song_id in WITHOUT_LYRICS:
        return "<html><body><div class='LyricsPlaceholder'>Lyrics for this song have yet to be transcribed</div>"
    lines = [html.escape(line) for line in LYRICS[song_id].split("\n")]
    lines[-1] = f'<a href="/annotation"><span class="ReferentFragment">{lines[-1]}</span></a>'
    half = lines.index("") if "" in lines else len(lines) // 2  # Genius drops the blank line between containers
    lines = lines[:half] + lines[half + (lines[half] == ""):]
    return ("<html><head><title>x</title></head><body>"
            '<div data-lyrics-container="true" class="Lyrics__Container">'
            '<div data-exclude-from-selection="true">12 Contributors<span>Lyrics</span></div>'
            + "<br/>".join(lines[:half]) + '</div><div class="RightSidebar">You might also like</div>'
            '<div data-lyrics-container="true" class="Lyrics__Container">'
            + "<br>".join(lines[half:]) + "</div></body></html>")


class FakeGenius:
    """What the fake server serves and how it misbehaves; `requests` logs [time, path, status] of each request.

    Failures a path can be scripted with: "slow" (answers after `slow_seconds`), "429", "500", "truncated" (a 200
    whose body stops after 30 bytes, with a Content-Length that says so), and "drip" (the body one byte per second),
    "drip_unsized" (the same without a Content-Length), "drip_head" (the whole answer from its status line on one
    byte per second), each dripping at most `drip_bytes` bytes. Paths under /elsewhere are another web site."""

    def __init__(self) -> None:
        self.script: dict[str, list[str]] = {}  # path -> failures to answer its next requests with, in order
        self.outage_after_pages: int | None = None  # after serving this many lyrics pages, every page is a 500
        self.on_page = lambda path: None  # called as each lyrics page is served
        self.slow_seconds = 0.6
        self.drip_bytes = 8
        self.pages_served = 0
        self.requests: list[tuple[float, str, int]] = []
        self.root = ""

    @property
    def api_root(self) -> str:
        return f"{self.root}/api"

    @property
    def web_root(self) -> str:
        return f"{self.root}/web"

    def paths(self, prefix: str = "") -> list[str]:
        return [path for _, path, _ in self.requests if path.startswith(prefix)]

    def answer(self, path: str, query: dict[str, str], authorization: str | None) -> tuple[int, dict, bytes, str]:
        """Status, headers, body, and the scripted failure ("" for none) of the answer to a request."""
        failures = self.script.get(path)
        failure = failures.pop(0) if failures else ""
        if failure == "slow":
            time.sleep(self.slow_seconds)
        if failure == "429":
            return 429, {"Retry-After": "1"}, b'{"meta": {"status": 429}}', failure
        if failure == "500":
            return 500, {}, b"<html>Internal Server Error</html>", failure
        status, headers, body = self.serve(path, query, authorization)
        return status, headers, body[:30] if failure == "truncated" else body, failure

    def serve(self, path: str, query: dict[str, str], authorization: str | None) -> tuple[int, dict, bytes]:
        if path.startswith("/elsewhere/"):
            return 200, {"Content-Type": "text/html"}, b"<!DOCTYPE html><html><body>Another web site</body></html>"
        if path.startswith("/api/"):
            if authorization != f"Bearer {TOKEN}":
                return 401, {}, b'{"error": "invalid_token", "error_description": "The access token is invalid"}'
            response = self.api(path.removeprefix("/api"), query)
            if response is None:
                return 404, {}, b'{"meta": {"status": 404}}'
            return 200, {"Content-Type": "application/json"}, json.dumps({"meta": {"status": 200},
                                                                          "response": response}).encode()
        if self.outage_after_pages is not None and self.pages_served >= self.outage_after_pages:
            return 500, {}, b"<html>Down</html>"
        song = next((s for songs in SONGS.values() for s in songs if f"/web{s['path']}" == path), None)
        if song is None:
            return 404, {}, b"<html>Not found</html>"
        self.on_page(path)
        self.pages_served += 1
        return 200, {"Content-Type": "text/html; charset=utf-8"}, _page_html(song["id"]).encode()

    def api(self, path: str, query: dict[str, str]) -> dict | None:
        parts = path.strip("/").split("/")
        if parts == ["search"]:
            words = set(query["q"].casefold().split())
            return {"hits": [{"type": "song", "result": s} for songs in SONGS.values() for s in songs
                             if words & set(s["primary_artist"]["name"].casefold().split())]}
        if parts[0] == "artists" and parts[2:] == ["songs"]:
            songs = SONGS.get(int(parts[1]), [])
            if query.get("sort") == "title":
                songs = sorted(songs, key=lambda s: s["title"])
            size, page = min(int(query["per_page"]), PAGE_SIZE), int(query["page"])
            more = page * size < len(songs)
            return {"songs": songs[(page - 1) * size:page * size], "next_page": page + 1 if more else None}
        if parts[0] == "songs":
            song = next((s for songs in SONGS.values() for s in songs if s["id"] == int(parts[1])), None)
            if song is None:
                return None
            album = {"id": 900 + song["primary_artist"]["id"], "name": "Invented Album", "api_path": "/albums/900"}
            return {"song": {**song, "album": album, "release_date": f"2021-03-{song['id'] % 28 + 1:02d}",
                             "instrumental": song["id"] in INSTRUMENTAL}}
        return None


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        fake: FakeGenius = self.server.fake
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        request = [time.monotonic(), url.path, 0]  # logged on arrival, so that a slow answer is counted at once
        fake.requests.append(request)
        status, headers, body, failure = fake.answer(url.path, query, self.headers.get("Authorization"))
        request[2] = status
        if failure != "drip_unsized":
            headers = {**headers, "Content-Length": str(len(body))}
        head = "".join([f"{self.protocol_version} {status} {HTTPStatus(status).phrase}\r\n",
                        *(f"{name}: {value}\r\n" for name, value in headers.items()), "\r\n"]).encode()
        answer = head + body
        at_once = {"drip_head": 0, "drip": len(head), "drip_unsized": len(head)}.get(failure, len(answer))
        try:
            self.wfile.write(answer[:at_once])
            for i in range(at_once, min(len(answer), at_once + fake.drip_bytes)):
                time.sleep(1.0)
                self.wfile.write(answer[i:i + 1])
        except OSError:
            pass  # the client gave up waiting (the timeout failure modes)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def genius():
    fake = FakeGenius()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.fake = fake
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    fake.root = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()


def run(fake: FakeGenius, out, artists=("Mc Invented",), **kwargs):
    options = {"token": TOKEN, "policy": FAST, "api_root": fake.api_root, "web_root": fake.web_root, "progress": False}
    return collect(artists, out, **{**options, **kwargs})


def saved(out, name: str = "Mc Invented") -> dict:
    return json.loads(artist_file(out, name).read_text(encoding="utf-8"))


def page_path(song_id: int) -> str:
    return "/web" + next(s["path"] for songs in SONGS.values() for s in songs if s["id"] == song_id)


def test_lyrics_from_html_keeps_line_breaks_and_drops_excluded_parts():
    page = ('<div class="x">not lyrics</div><div data-lyrics-container="true"><div data-exclude-from-selection="true">'
            "Header<br/>text</div>[Verse]<br/>one &amp; <i>two</i><br><img src='a.png'><a><span>three</span></a>"
            '</div><div>advert</div><div data-lyrics-container="true">four<br/><br/>five</div>'
            '<div data-lyrics-container="true">[Chorus]<br/>six</div><div data-lyrics-container="true"></div>')
    assert lyrics_from_html(page) == "[Verse]\none & two\nthree\nfour\n\nfive\n\n[Chorus]\nsix"


def test_lyrics_from_html_is_empty_without_a_lyrics_container():
    assert lyrics_from_html("<html><body><div>This song is an instrumental</div></body></html>") == ""


def test_retry_after_seconds_reads_delays_and_http_dates():
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds("Wed, 01 May 2024 12:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Wed, 01 May 2024 11:00:00 GMT", now) == 0.0
    assert retry_after_seconds(None, now) == retry_after_seconds("soon", now) == 0.0


def test_artist_file_is_named_as_lyricsgenius_names_it(tmp_path):
    assert artist_file(tmp_path, "D.J. Made-Up $ign").name == "Lyrics_D.J.MadeUpign.json"
    assert artist_file(tmp_path, "Mc Invented") == tmp_path / "Lyrics_McInvented.json"


def test_collect_writes_lyricsgenius_format_and_counts_skipped_songs(genius, tmp_path):
    [summary] = run(genius, tmp_path)
    body = saved(tmp_path)
    assert body["name"] == "Mc Invented" and body["id"] == 7
    assert [s["id"] for s in body["songs"]] == [101, 107, 108]
    for song in body["songs"]:
        assert song["lyrics"] == LYRICS[song["id"]]
        assert song["artist"] == "Mc Invented"
        assert song["album"]["name"] == "Invented Album"
        assert song["release_date"].startswith("2021-03-")
        assert song["url"].startswith("https://genius.com/") and song["title"]
    assert (summary.path, summary.songs, summary.new, summary.already_saved) == (artist_file(tmp_path, "Mc Invented"),
                                                                                 3, 3, 0)
    assert summary.skipped == {"non_song": 1, "instrumental": 3, "no_lyrics": 2, "not_primary": 1}
    # Songs skipped by their listing are never fetched; the listing is read page by page.
    assert not {page_path(i) for i in (102, 105, 106, 110)} & set(genius.paths("/web"))
    assert genius.paths("/api/artists").count("/api/artists/7/songs") == 4


def test_include_features_keeps_songs_where_the_artist_is_featured(genius, tmp_path):
    [summary] = run(genius, tmp_path, include_features=True)
    assert [s["id"] for s in saved(tmp_path)["songs"]] == [101, 105, 107, 108]
    assert saved(tmp_path)["songs"][1]["artist"] == "Guest Voice"
    assert "not_primary" not in summary.skipped


def test_max_songs_caps_the_file_and_a_later_run_extends_it(genius, tmp_path):
    [first] = run(genius, tmp_path, max_songs=2)
    assert [s["id"] for s in saved(tmp_path)["songs"]] == [101, 107]
    assert first.new == 2 and genius.paths("/api/artists").count("/api/artists/7/songs") == 3
    [second] = run(genius, tmp_path)
    assert [s["id"] for s in saved(tmp_path)["songs"]] == [101, 107, 108]
    assert (second.new, second.already_saved, second.songs) == (1, 2, 3)
    assert genius.paths("/web").count(page_path(101)) == 1


def test_429_is_retried_after_the_retry_after_delay(genius, tmp_path):
    genius.script[page_path(101)] = ["429"]
    run(genius, tmp_path, max_songs=1)
    times = [t for t, path, _ in genius.requests if path == page_path(101)]
    statuses = [status for _, path, status in genius.requests if path == page_path(101)]
    assert statuses == [429, 200]
    assert times[1] - times[0] >= 0.95  # the fake asks for 1 s; the policy's own backoff is 0.01 s
    assert [s["id"] for s in saved(tmp_path)["songs"]] == [101]


def test_timeouts_and_server_errors_are_retried(genius, tmp_path):
    genius.script["/api/songs/107"] = ["slow"]
    genius.script[page_path(108)] = ["500", "500"]
    genius.script["/api/artists/7/songs"] = ["500"]
    [summary] = run(genius, tmp_path)
    assert [s["id"] for s in saved(tmp_path)["songs"]] == [101, 107, 108]
    assert summary.new == 3
    assert genius.paths().count("/api/songs/107") == 2
    assert [status for _, path, status in genius.requests if path == page_path(108)] == [500, 500, 200]


@pytest.mark.parametrize("path", ["/api/search", "/api/artists/7/songs", "/api/songs/107", page_path(108)])
def test_a_truncated_answer_is_retried_and_the_run_completes(genius, tmp_path, path, capsys):
    genius.script[path] = ["truncated"]
    [summary] = run(genius, tmp_path)
    assert [s["id"] for s in saved(tmp_path)["songs"]] == [101, 107, 108]
    assert [s["lyrics"] for s in saved(tmp_path)["songs"]] == [LYRICS[i] for i in (101, 107, 108)]
    assert summary.new == 3 and summary.skipped["no_lyrics"] == 2
    assert genius.paths().count(path) == 1 + (4 if path == "/api/artists/7/songs" else 1)  # the list has 4 pages
    assert f"HTTP 200 with a 30-byte {'page' if path.startswith('/web') else 'answer'}" in capsys.readouterr().err


def test_an_answer_broken_on_every_retry_ends_the_run_naming_the_url_and_what_came_back(genius, tmp_path):
    genius.script["/api/songs/107"] = ["truncated"] * 3
    with pytest.raises(NetworkError) as error:
        run(genius, tmp_path)
    message = str(error.value)
    assert message.startswith(f"{genius.api_root}/songs/107 failed 3 times, last with HTTP 200 with a 30-byte answer "
                              """that is not JSON (Unterminated string""")
    assert """'{"meta": {"status": 200}, "res'""" in message
    assert "try again later" in message and "--api-root" not in message
    assert [s["id"] for s in saved(tmp_path)["songs"]] == [101]


@pytest.mark.parametrize("root", ["api_root", "web_root"])
def test_a_root_that_is_wrong_from_the_first_answer_is_named(genius, tmp_path, root):
    with pytest.raises(NetworkError, match=rf"failed 3 times, last with HTTP 200 with .*'<!DOCTYPE html><html><body>"
                                           rf"Another.*: is --{root.replace('_', '-')} right\? It is "
                                           rf"{genius.root}/elsewhere$"):
        run(genius, tmp_path, **{root: f"{genius.root}/elsewhere"})


@pytest.mark.parametrize(("failure", "path"), [("drip_head", "/api/songs/107"), ("drip", page_path(101)),
                                               ("drip_unsized", page_path(107))])
def test_a_server_dripping_its_answer_is_abandoned_at_the_deadline_and_retried(genius, tmp_path, failure, path,
                                                                              capsys):
    genius.script[path] = [failure]
    run(genius, tmp_path, policy=DRIP)
    assert [s["lyrics"] for s in saved(tmp_path)["songs"]] == [LYRICS[i] for i in (101, 107, 108)]
    first, second = [t for t, p, _ in genius.requests if p == path]
    # Not earlier than the deadline, and well before the fake would have dripped its `drip_bytes` bytes.
    assert DRIP.request_timeout <= second - first < DRIP.request_timeout + 1.3
    assert "no complete answer within 1.2s" in capsys.readouterr().err


def test_without_retries_a_dripping_server_ends_the_run_after_one_request_timeout(genius, tmp_path, capsys):
    genius.script[page_path(101)] = ["drip"]
    argv = ["collect", "--artist", "Mc Invented", "--out", str(tmp_path), "--token", TOKEN, "--min-interval", "0",
            "--request-timeout", "1.2", "--retries", "0", "--api-root", genius.api_root, "--web-root", genius.web_root]
    start = time.monotonic()
    assert main(argv) == 2
    assert time.monotonic() - start < 1.2 + 1.3
    error = capsys.readouterr().err.split("\n")[-2]  # after the progress bar, one line
    assert error.startswith(f"rapgpt collect: error: {genius.web_root}")
    assert "-lyrics failed 1 time, last with no complete answer within 1.2s: check the network connection" in error


def test_a_run_cut_short_keeps_its_songs_and_the_next_run_completes_without_duplicates(genius, tmp_path):
    genius.outage_after_pages = 1  # the web site fails for good after one lyrics page
    with pytest.raises(NetworkError, match="failed 3 times, last with HTTP 500.*try again later.*same command again"):
        run(genius, tmp_path)
    first = saved(tmp_path)["songs"]
    assert [s["id"] for s in first] == [101]
    genius.outage_after_pages = None
    [summary] = run(genius, tmp_path)
    songs = saved(tmp_path)["songs"]
    assert [s["id"] for s in songs] == [101, 107, 108]
    assert songs[0] == first[0]
    assert (summary.already_saved, summary.new) == (1, 2)
    assert genius.paths("/web").count(page_path(101)) == 1


def test_artist_file_is_rewritten_every_save_every_songs(genius, tmp_path):
    on_disk = []
    path = artist_file(tmp_path, "Dee Plain")
    genius.on_page = lambda _: on_disk.append(len(saved(tmp_path, "Dee Plain")["songs"]) if path.exists() else 0)
    run(genius, tmp_path, artists=("dee plain",), save_every=2)
    assert on_disk == [0, 0, 2, 2, 4]
    assert len(saved(tmp_path, "Dee Plain")["songs"]) == 5
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_requests_are_spaced_by_the_minimum_interval(genius, tmp_path):
    policy = RequestPolicy(min_interval=0.1, timeout=1.0, retries=0)
    run(genius, tmp_path, artists=("Dee Plain",), max_songs=1, policy=policy)
    times = [t for t, _, _ in genius.requests]
    assert len(times) == 4  # search, song list, song record, lyrics page
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.08


def test_several_artists_get_one_file_each_and_repeats_are_collected_once(genius, tmp_path):
    summaries = run(genius, tmp_path, artists=("Mc Invented", "Dee Plain", "MC INVENTED"))
    assert [s.artist for s in summaries] == ["Mc Invented", "Dee Plain"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Lyrics_DeePlain.json", "Lyrics_McInvented.json"]
    assert len(saved(tmp_path, "Dee Plain")["songs"]) == 5


def test_missing_token_says_where_to_get_one(genius, tmp_path, monkeypatch):
    monkeypatch.delenv("GENIUS_ACCESS_TOKEN", raising=False)
    with pytest.raises(ConfigError, match=r"no Genius API token.*genius\.com/api-clients.*GENIUS_ACCESS_TOKEN"):
        run(genius, tmp_path, token=None)
    assert genius.requests == []


def test_token_is_read_from_the_environment(genius, tmp_path, monkeypatch):
    monkeypatch.setenv("GENIUS_ACCESS_TOKEN", TOKEN)
    [summary] = run(genius, tmp_path, token=None, max_songs=1)
    assert summary.new == 1


def test_invalid_token_fails_at_once_with_401(genius, tmp_path):
    with pytest.raises(ConfigError, match=r"refused the API token \(401.*api-clients"):
        run(genius, tmp_path, token="bad-token")
    assert len(genius.requests) == 1


def test_unknown_artist_fails_before_any_song_is_collected(genius, tmp_path):
    with pytest.raises(ConfigError, match="not found on Genius: 'Mc Unknown'.*'Mc Invented'"):
        run(genius, tmp_path, artists=("Dee Plain", "Mc Unknown"))
    assert genius.paths("/web") == [] and not list(tmp_path.glob("*.json"))


def test_unreachable_server_raises_network_error_after_retries(tmp_path):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        root = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(NetworkError, match="failed 3 times, last with ConnectionRefused.*network connection"):
        collect(["Mc Invented"], tmp_path, token=TOKEN, policy=FAST, api_root=root, web_root=root, progress=False)


@pytest.mark.parametrize("content", ['{"name": "Someone Else", "id": 99, "songs": []}', '{"songs": ["text"]}',
                                     '["not", "a", "file"]', "{"])
def test_an_existing_file_that_is_not_the_artists_lyrics_is_refused_and_kept(genius, tmp_path, content):
    path = artist_file(tmp_path, "Mc Invented")
    path.write_text(content)
    with pytest.raises(DataError, match="Lyrics_McInvented.json"):
        run(genius, tmp_path)
    assert path.read_text() == content


@pytest.mark.parametrize("options", [{"max_songs": 0}, {"save_every": 0}, {"sort": "date"},
                                     {"api_root": "file:///etc"}, {"policy": RequestPolicy(retries=-1)},
                                     {"policy": RequestPolicy(request_timeout=0)}])
def test_bad_options_are_refused(genius, tmp_path, options):
    with pytest.raises(ConfigError):
        run(genius, tmp_path, **options)
    assert genius.requests == []


def test_cli_collects_prints_a_summary_and_reports_errors_on_one_line(genius, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENIUS_ACCESS_TOKEN", TOKEN)
    argv = ["collect", "--artist", "Mc Invented", "--artist", "Dee Plain", "--max-songs", "2", "--out", str(tmp_path),
            "--min-interval", "0", "--api-root", genius.api_root, "--web-root", genius.web_root]
    assert main(argv) == 0
    assert len(saved(tmp_path)["songs"]) == len(saved(tmp_path, "Dee Plain")["songs"]) == 2
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["artist", "songs", "new", "already"]
    assert table[-1].split()[:3] == ["total", "4", "4"]
    monkeypatch.delenv("GENIUS_ACCESS_TOKEN")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "rapgpt collect: error: no Genius API token" in err


def test_collect_settings_pass_every_flag_to_collect_with_the_request_ones_in_its_policy():
    config = CollectConfig(max_songs=3, sort="title", min_interval=0.0, request_timeout=9.0, retries=1)
    arguments = config.arguments()
    assert arguments["policy"] == RequestPolicy(min_interval=0.0, request_timeout=9.0, retries=1)
    assert (arguments["max_songs"], arguments["sort"], arguments["save_every"]) == (3, "title", 20)
    assert set(arguments) <= set(inspect.signature(collect).parameters)
