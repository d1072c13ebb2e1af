"""Collect song lyrics from Genius into one `Lyrics_<Artist>.json` file per artist, as `lyricsgenius` writes them.

Each file is `{"name": ARTIST, ..., "songs": [{"title", "lyrics", "album", "release_date", "url", ...}]}`: the
artist as the Genius API describes it, and each song's full API record plus its `artist` name and `lyrics`, which
is what `rapgpt prepare` reads.

This talks to the Genius API directly with the standard library rather than through the `lyricsgenius` package,
because collecting hundreds of songs per artist needs what that package lacks: it retries only timeouts (a 429
or a 5xx ends the whole run), it never honours Retry-After nor backs off, and it keeps an artist's songs in memory
until the end, so an interruption loses everything. Here every request goes through one client that spaces
requests (`RequestPolicy.min_interval`), gives each a total deadline (`RequestPolicy.request_timeout`) and retries
timeouts, connection errors, 429, 5xx and broken answers (a JSON body cut off, a lyrics page without its lyrics)
with exponential backoff; each artist's file is rewritten atomically every `save_every` songs, so a second run
resumes where the first stopped without refetching or duplicating a song. `urllib` suffices at one request per
half second, so collecting adds no dependency.

Per song: the artist's song list (`/artists/{id}/songs`, paged) gives the title and lyrics state, the song's API
record (`/songs/{id}`) the album, release date and instrumental flag, and its web page the lyrics, read from the
page's `data-lyrics-container` divs. Songs where the artist is only featured, non-song pages (tracklists, album
art, interviews, ...), instrumentals and songs without lyrics are skipped and counted.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, TypeVar
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode, urlsplit
from urllib.request import Request

from tqdm import tqdm

from rapgpt import __version__
from rapgpt.data.collect_config import API_ROOT, SAVE_EVERY, SORTS, TOKEN_ENV, WEB_ROOT, RequestPolicy
from rapgpt.data.deadline import DeadlineExceeded, fetch
from rapgpt.errors import ConfigError, DataError, NetworkError
from rapgpt.fileio import atomic_write_json, read_json

TOKEN_HELP = "create an API client at https://genius.com/api-clients and copy its Client Access Token"
SKIP_REASONS = ("not_primary", "non_song", "instrumental", "no_lyrics")
PER_PAGE = 50  # the largest page the Genius API serves

# Titles of pages Genius lists among an artist's songs that are not songs (the terms lyricsgenius skips).
NON_SONG_TITLE = re.compile(
    r"\b(track ?list|album art(work)?|liner notes|booklet|credits|interview|skit|setlist)\b", re.IGNORECASE
)
INSTRUMENTAL_TITLE = re.compile(r"[(\[]instrumental[)\]]", re.IGNORECASE)
NOT_IN_FILE_NAME = re.compile(r"[^\w.]")
T = TypeVar("T")


@dataclass
class ArtistSummary:
    """What one artist's collection did; `skipped` counts songs by reason (see `SKIP_REASONS`)."""

    artist: str
    path: Path
    songs: int = 0  # songs in the artist's file now
    new: int = 0
    already_saved: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float:
    """The wait a Retry-After header asks for (a number of seconds or an HTTP date); 0 when absent or unreadable."""
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class _BrokenAnswer(Exception):
    """A 200 answer whose body is not what was asked for (cut off, or another site's page): retried like a 5xx."""


def _problem(e: BaseException, timeout: float) -> str:
    reason = e.reason if isinstance(e, URLError) else e
    if isinstance(reason, DeadlineExceeded):
        return str(reason)
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g}s"
    return f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)


def _start(raw: bytes, length: int = 40) -> str:
    """The beginning of an answer, to show what came back."""
    return repr(raw[:length].decode("utf-8", errors="replace")) + ("..." if len(raw) > length else "")


def _api_response(raw: bytes) -> dict[str, Any]:
    """The `response` object of a Genius API answer."""
    try:
        payload = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _BrokenAnswer(f"HTTP 200 with a {len(raw)}-byte answer that is not JSON ({e}), starting "
                            f"{_start(raw)}") from e
    return payload.get("response", payload) if isinstance(payload, dict) else {}


class GeniusClient:
    """GET requests to the Genius API and web pages, spaced by `policy.min_interval` and retried on failure."""

    def __init__(self, token: str, policy: RequestPolicy, api_root: str = API_ROOT, web_root: str = WEB_ROOT):
        self.token = token
        self.policy = policy
        self.api_root = api_root.rstrip("/")
        self.web_root = web_root.rstrip("/")
        self._last_request = -float("inf")
        self._answered_well: set[str] = set()  # the roots that have given a good answer in this run

    def api(self, path: str, missing_ok: bool = False, **params: Any) -> dict[str, Any] | None:
        """The `response` object of an API call; None for a 404 when `missing_ok`."""
        query = f"?{urlencode(params)}" if params else ""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        return self._get(self.api_root, path + query, headers, missing_ok, _api_response)

    def lyrics(self, path: str) -> str | None:
        """The lyrics on the genius.com song page at `path`, "" when the page says it has none; None for a 404."""
        return self._get(self.web_root, path, {"Accept": "text/html"}, True, _page_lyrics)

    def _wait_turn(self) -> None:
        wait = self._last_request + self.policy.min_interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._last_request = time.monotonic()

    def _get(self, root: str, path: str, headers: dict[str, str], missing_ok: bool,
             read: Callable[[bytes], T]) -> T | None:
        """What `read` makes of the body of the answer to GET `root + path`; `read` raises `_BrokenAnswer` for a
        body that is not what was asked for, which is retried like a 5xx."""
        policy = self.policy
        url = root + path
        headers = {"User-Agent": f"rapgpt/{__version__} (lyrics collection)", **headers}
        for attempt in range(policy.retries + 1):
            self._wait_turn()
            retry_after, answered, broken = 0.0, False, False
            try:
                answer = read(fetch(Request(url, headers=headers), policy.timeout, policy.request_timeout))
                self._answered_well.add(root)
                return answer
            except HTTPError as e:
                e.close()
                if e.code == 401:
                    raise ConfigError(f"Genius refused the API token (401 Unauthorized): to get a valid one, "
                                      f"{TOKEN_HELP}, and pass it with --token or ${TOKEN_ENV}") from e
                if e.code == 404 and missing_ok:
                    return None
                if e.code != 429 and e.code < 500:
                    raise NetworkError(f"{url} answered HTTP {e.code} {e.reason}") from e
                problem, answered = f"HTTP {e.code} {e.reason}", True
                retry_after = retry_after_seconds(e.headers.get("Retry-After"))
                if retry_after > policy.max_retry_after:
                    raise NetworkError(f"Genius asks to wait {retry_after:.0f}s ({problem}): run the same command "
                                       f"again later, it keeps the songs already saved") from e
            except _BrokenAnswer as e:
                problem, answered, broken = str(e), True, True
            except (URLError, OSError, http.client.HTTPException) as e:
                problem = _problem(e, policy.timeout)
            if attempt < policy.retries:
                delay = max(retry_after, min(policy.backoff * 2**attempt, policy.max_backoff))
                tqdm.write(
                    f"{problem} from {url}; retry {attempt + 1}/{policy.retries} in {delay:.1f}s", file=sys.stderr
                )
                time.sleep(delay)
        tries = policy.retries + 1
        failed = f"{url} failed {tries} time{'s' if tries > 1 else ''}, last with {problem}"
        if broken and root not in self._answered_well:  # wrong from the first answer on: likely not Genius at all
            option = "--api-root" if root == self.api_root else "--web-root"
            raise NetworkError(f"{failed}: is {option} right? It is {root}")
        hint = "the server keeps failing, try again later" if answered else "check the network connection"
        raise NetworkError(f"{failed}: {hint}; running the same command again keeps the songs already saved")


class _LyricsParser(HTMLParser):
    """Collects the text of each `data-lyrics-container` div: <br> becomes a newline, and elements Genius marks
    `data-exclude-from-selection` (headers, inline adverts) are left out. A page without lyrics has instead an
    element whose class starts with `LyricsPlaceholder` ("This song is an instrumental", "... yet to be
    released"), so a page with neither is not a whole song page."""

    VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.containers: list[list[str]] = []
        self.placeholder = False
        self.depth = 0  # open elements inside the current container, counting the container itself
        self.excluded_depth = 0  # open elements inside the current excluded element, counting it

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if not self.depth:
            if tag == "div" and attributes.get("data-lyrics-container") == "true":
                self.depth = 1
                self.containers.append([])
            elif any(name.startswith("LyricsPlaceholder") for name in (attributes.get("class") or "").split()):
                self.placeholder = True
            return
        if tag == "br" and not self.excluded_depth:
            self.containers[-1].append("\n")
        if tag in self.VOID:
            return
        self.depth += 1
        if self.excluded_depth or attributes.get("data-exclude-from-selection") == "true":
            self.excluded_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth and tag not in self.VOID:
            self.depth -= 1
            self.excluded_depth = max(0, self.excluded_depth - 1)

    def handle_data(self, data: str) -> None:
        if self.depth and not self.excluded_depth:
            self.containers[-1].append(data)

    def lyrics(self) -> str:
        """The containers' text joined by newlines; "" when there are none."""
        blocks = [text for text in ("".join(parts).strip("\n") for parts in self.containers) if text.strip()]
        # A container that opens a section ("[Chorus]") starts a stanza, but the page has no line break before it.
        return "".join(("\n\n" if b.startswith("[") else "\n") * (i > 0) + b for i, b in enumerate(blocks)).strip()


def _parse(html: str) -> _LyricsParser:
    parser = _LyricsParser()
    parser.feed(html)
    parser.close()
    return parser


def lyrics_from_html(html: str) -> str:
    """The lyrics on a Genius song page, its containers joined by newlines; "" when the page has none."""
    return _parse(html).lyrics()


def _page_lyrics(raw: bytes) -> str:
    """The lyrics of a song page; "" when the page says the song has none."""
    parser = _parse(raw.decode("utf-8", errors="replace"))
    if not parser.containers and not parser.placeholder:
        raise _BrokenAnswer(f"HTTP 200 with a {len(raw)}-byte page that has neither lyrics nor a note that it has "
                            f"none, starting {_start(raw)}")
    return parser.lyrics()


def artist_file(out: Path, name: str) -> Path:
    """`Lyrics_<name>.json` with the name's spaces and punctuation except dots removed, as lyricsgenius names it."""
    return out / f"Lyrics_{NOT_IN_FILE_NAME.sub('', name)}.json"


def _normalize(name: str) -> str:
    return "".join(c for c in name.casefold() if c.isalnum())


def find_artist(client: GeniusClient, name: str) -> dict[str, Any]:
    """The artist record of the search hit whose primary artist is `name` (ignoring case, spaces, punctuation)."""
    hits = (client.api("/search", q=name, per_page=20) or {}).get("hits") or []
    found: dict[int, dict[str, Any]] = {}
    for hit in hits:
        artist = (hit.get("result") or {}).get("primary_artist")
        if artist and "id" in artist and "name" in artist:
            found.setdefault(artist["id"], artist)
    for artist in found.values():
        if _normalize(artist["name"]) == _normalize(name):
            return artist
    seen = ", ".join(repr(a["name"]) for a in found.values()) or "no artists"
    raise ConfigError(f"artist not found on Genius: {name!r} (a search finds {seen}); spell the name as its "
                      f"genius.com page does")


def artist_songs(client: GeniusClient, artist_id: int, sort: str) -> Iterator[dict[str, Any]]:
    """The artist's songs as the API lists them, page by page, until a page is empty or the last."""
    page = 1
    while True:
        response = client.api(f"/artists/{artist_id}/songs", per_page=PER_PAGE, page=page, sort=sort) or {}
        songs = response.get("songs") or []
        yield from songs
        next_page = response.get("next_page")
        if not songs or not isinstance(next_page, int) or next_page <= page:
            return
        page = next_page


def _load_saved(path: Path, artist: dict[str, Any]) -> dict[str, Any]:
    """The artist's file from an earlier run, or a new one; refuses a file that is not this artist's lyrics."""
    if not path.exists():
        return {**artist, "songs": []}
    body = read_json(path, "collected lyrics file", DataError)
    songs = body.get("songs") if isinstance(body, dict) else None
    if not isinstance(songs, list) or not all(isinstance(song, dict) for song in songs):
        raise DataError(f"{path} is not a lyrics file (a JSON object with a list of 'songs'): move it away or choose "
                        f"another --out")
    if body.get("id", artist["id"]) != artist["id"]:
        raise DataError(f"{path} holds the songs of another artist (Genius id {body['id']}, {body.get('name')!r}), "
                        f"not of {artist['name']!r} (id {artist['id']}): choose another --out")
    return body


def _skip_reason(item: dict[str, Any], artist_id: int, include_features: bool) -> str | None:
    """Why a song of the list is skipped without fetching it, if it is."""
    if not include_features and (item.get("primary_artist") or {}).get("id") != artist_id:
        return "not_primary"
    title = item.get("title") or ""
    if NON_SONG_TITLE.search(title):
        return "non_song"
    if item.get("instrumental") or INSTRUMENTAL_TITLE.search(title):
        return "instrumental"
    if item.get("lyrics_state", "complete") != "complete" or not item.get("path"):
        return "no_lyrics"
    return None


def _fetch_song(client: GeniusClient, item: dict[str, Any]) -> dict[str, Any] | str:
    """The song's record as lyricsgenius saves it (API record + artist + lyrics), or why it is skipped."""
    record = (client.api(f"/songs/{item['id']}", missing_ok=True) or {}).get("song") or item
    if record.get("instrumental"):
        return "instrumental"
    lyrics = client.lyrics(record.get("path") or item["path"])
    if not lyrics:
        return "no_lyrics"
    if _normalize(lyrics) == "instrumental":
        return "instrumental"
    return {**record, "artist": (record.get("primary_artist") or {}).get("name"), "lyrics": lyrics}


def collect_artist(client: GeniusClient, artist: dict[str, Any], out: Path, max_songs: int | None = None,
                   include_features: bool = False, sort: str = SORTS[0], save_every: int = SAVE_EVERY,
                   progress: bool = True) -> ArtistSummary:
    """Add the artist's songs not yet in its file, up to `max_songs` in the file; the file is rewritten atomically
    every `save_every` new songs and when the collection ends, however it ends."""
    path = artist_file(out, artist["name"])
    body = _load_saved(path, artist)
    songs: list[dict[str, Any]] = body["songs"]
    saved_ids = {song.get("id") for song in songs}
    summary = ArtistSummary(artist["name"], path)
    unsaved = 0
    bar = tqdm(desc=artist["name"], total=max_songs, initial=len(songs), unit="song", disable=not progress)
    try:
        listing = artist_songs(client, artist["id"], sort) if max_songs is None or len(songs) < max_songs else ()
        for item in listing:
            if item.get("id") in saved_ids:
                summary.already_saved += 1
                continue
            song = _skip_reason(item, artist["id"], include_features) or _fetch_song(client, item)
            if isinstance(song, str):
                summary.skipped[song] += 1
                bar.set_postfix(skipped=sum(summary.skipped.values()))
                continue
            songs.append(song)
            saved_ids.add(item["id"])
            summary.new += 1
            unsaved += 1
            bar.update()
            if unsaved >= save_every:
                atomic_write_json(path, body)
                unsaved = 0
            if max_songs is not None and len(songs) >= max_songs:
                break
    finally:
        if unsaved:
            atomic_write_json(path, body)
        bar.close()
    summary.songs = len(songs)
    return summary


def collect(artists: Sequence[str], out: str | Path, max_songs: int | None = None, token: str | None = None, *,
            include_features: bool = False, sort: str = SORTS[0], save_every: int = SAVE_EVERY,
            policy: RequestPolicy | None = None, api_root: str = API_ROOT, web_root: str = WEB_ROOT,
            progress: bool = True) -> list[ArtistSummary]:
    """Collect each artist's lyrics from Genius into `out/Lyrics_<Artist>.json`, resuming earlier runs.

    `max_songs` caps the songs in each artist's file (songs saved by earlier runs count); `token` defaults to
    $GENIUS_ACCESS_TOKEN. All artists are looked up before any song is fetched, so a misspelt name fails at once.
    """
    token = token or os.environ.get(TOKEN_ENV, "")
    if not token.strip():
        raise ConfigError(f"no Genius API token: {TOKEN_HELP}, then pass it with --token or set ${TOKEN_ENV}")
    if not artists:
        raise ConfigError("no artist given: pass --artist NAME (repeat it for several artists)")
    if max_songs is not None and max_songs < 1:
        raise ConfigError(f"max_songs must be >= 1, got {max_songs}")
    if save_every < 1:
        raise ConfigError(f"save_every must be >= 1, got {save_every}")
    if sort not in SORTS:
        raise ConfigError(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
    for root in (api_root, web_root):
        if urlsplit(root).scheme not in ("http", "https"):
            raise ConfigError(f"not an http(s) URL: {root!r}")
    policy = policy or RequestPolicy()
    policy.validate()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out must be a directory, but {out} is a file")

    client = GeniusClient(token.strip(), policy, api_root, web_root)
    found = {artist["id"]: artist for artist in (find_artist(client, name) for name in artists)}
    out.mkdir(parents=True, exist_ok=True)
    return [collect_artist(client, artist, out, max_songs, include_features, sort, save_every, progress)
            for artist in found.values()]


def format_summary(summaries: Sequence[ArtistSummary]) -> str:
    """A table of what each artist's collection saved and skipped, with a total line."""
    columns = ("songs", "new", "already_saved", *SKIP_REASONS)
    rows = [[s.artist, *(getattr(s, c) if hasattr(s, c) else s.skipped[c] for c in columns)] for s in summaries]
    rows.append(["total", *(sum(row[i + 1] for row in rows) for i in range(len(columns)))])
    header = ["artist", *(c.replace("_", " ") for c in columns)]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [[str(cell).rjust(w) if i else str(cell).ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
             for row in [header, *rows]]
    return "\n".join("  ".join(line) for line in lines)
