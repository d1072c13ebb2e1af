"""Real words: a lexicon of the training text's words, and the per-token mask that keeps a model writing them.

A character model spells words letter by letter and, small or briefly trained, often misspells them; a BPE model
glues pieces into words that do not exist ("respap", "actin'cause"), less often. With the lexicon on, while a word
is being written only the tokens that continue some word of the lexicon are allowed, and a word may end (a space, a
line break, punctuation, the end of the song) only where a lexicon word ends. The lexicon is a trie over the words
seen at least `MIN_COUNT` times in the text the model was trained on.

What a word is: letters and apostrophes ("don't", "gettin'", "'cause"), digits too ("50", "2pac"); a hyphen or any
other character separates words, so "hip-hop" is two lexicon words. A number of digits alone is always allowed.
Letters are matched without case, so "Yeah" is allowed where "yeah" is a word. What looks like a word in lyrics
and is not stays out of the lexicon: a lone letter other than "a", "i", "o" and "u" (spelled-out words, initials
and stutters: "D-O-P-E", "O.G."), a censored word ("f**k"), and quotation marks around a word ("'real'" is "real").
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import torch

from rapgpt.data.tokenizer import CharTokenizer, Tokenizer
from rapgpt.errors import DataError
from rapgpt.fileio import atomic_write_json, read_json

log = logging.getLogger(__name__)

MIN_COUNT = 10  # a word must appear this often in the training text: rarer ones are mostly typos and fragments
LEXICON_FILE = "lexicon.json"  # the cache, beside the run (or the adapter) it was built for
WORDS_VERSION = 2  # of `text_words`: a cache built by another version is rebuilt
LEXICON_CHOICES = ("corpus", "off")
WORD = re.compile(r"(?:[^\W_]|['’])+")
CENSORED = re.compile(r"[^\W_]*(?:\*+[^\W_]*)+")  # "f**k": not a word, nor are its pieces
# Letters standing alone in lyrics are mostly spelled-out words, abbreviations, stutters and names ("D-O-P-E",
# "O.G.", "g-g-gone", "Big L"): as lexicon words, they would let a model write "don t" or a stray "m" anywhere.
# Only these are words by themselves ("u" for "you").
LETTER_WORDS = frozenset("aiou")
QUOTE = "'’"
ROOT = 0


def is_word_char(c: str) -> bool:
    return c.isalnum() or c in "'’"


def text_words(text: str) -> list[str]:
    """The lower-case words of a text as the lexicon counts them: without lone letters (but LETTER_WORDS) and
    censored words, and without the quotation marks around a word (an apostrophe at one end only stays: "gettin'",
    "'cause")."""
    found = []
    for w in WORD.findall(CENSORED.sub(" ", text.lower())):
        bare = w.strip(QUOTE)
        quoted = len(w) > 2 and w[0] in QUOTE and w[-1] in QUOTE  # 'real', or ''you (a doubled quotation mark)
        if quoted or w[:2] in ("''", "’’") or w[-2:] in ("''", "’’"):
            w = bare
        if bare and not (len(bare) == 1 and bare.isalpha() and bare not in LETTER_WORDS):
            found.append(w)
    return found


def corpus_words(texts: Iterable[str], min_count: int = MIN_COUNT) -> list[str]:
    """The lower-case words of `texts` (`text_words`) seen at least `min_count` times, sorted."""
    counts = Counter(w for text in texts for w in text_words(text))
    return sorted(w for w, n in counts.items() if n >= min_count)


class Lexicon:
    """A trie over lower-case words: node 0 is the root, `children[n]` maps a character to the next node and
    `terminal[n]` says whether a word ends at node n."""

    def __init__(self, words: Iterable[str]):
        self.words = sorted(set(words))
        self.children: list[dict[str, int]] = [{}]
        self.terminal = [False]
        for word in self.words:
            node = ROOT
            for c in word:
                nxt = self.children[node].get(c)
                if nxt is None:
                    nxt = len(self.children)
                    self.children[node][c] = nxt
                    self.children.append({})
                    self.terminal.append(False)
                node = nxt
            self.terminal[node] = True

    def __contains__(self, word: str) -> bool:
        node: int | None = ROOT
        for c in word.lower():
            node = self.children[node].get(c)
            if node is None:
                return False
        return self.terminal[node]


# A speller's state: the trie node reached by the word being written (ROOT between words, None when the word has
# left the lexicon, as a number or a word of the prompt may), and whether the word so far is digits only.
SpellState = tuple[int | None, bool]
BETWEEN_WORDS: SpellState = (ROOT, True)


class Speller:
    """The lexicon seen through one tokenizer: the logit mask for a state, and the state after a token.

    A token is read character by character, so one speller serves character models (a character a token) and BPE
    models (a token may end one word and start the next: "ing," or " the"). A token is allowed where every word it
    finishes is a lexicon word and every word it starts or continues can still become one. Masks are built the first
    time a state needs them and kept, so a step costs a lookup per sequence."""

    def __init__(self, lexicon: Lexicon, tokenizer: Tokenizer):
        self.lexicon = lexicon
        self.vocab_size = tokenizer.vocab_size
        # The end of text is a separator (a song ends between words); a character tokenizer's unknown character is
        # never a good choice.
        self.texts = ["\n" if i == tokenizer.eot_id else text for i, text in enumerate(tokenizer.token_texts)]
        unknown = getattr(tokenizer, "unknown_id", None)
        self.by_first: dict[str, list[int]] = {}  # lower-case first character -> the tokens that start with it
        for i, text in enumerate(self.texts):
            if text and i != unknown:
                self.by_first.setdefault(text[0].lower(), []).append(i)
        self._masks: dict[SpellState, torch.Tensor | None] = {}

    def start(self, tokens: Iterable[int]) -> SpellState:
        """The state after the tokens of a prompt."""
        state = BETWEEN_WORDS
        for t in tokens:
            state = self.advance(state, t)
        return state

    def advance(self, state: SpellState, token: int) -> SpellState:
        """The state after `token`; a word outside the lexicon (in a prompt) leaves it, as far as that word goes."""
        for c in self.texts[token]:
            state = self._step(state, c, strict=False)
        return state

    def _step(self, state: SpellState, c: str, strict: bool) -> SpellState | None:
        """The state after character `c`; None when `strict` and the lexicon does not allow `c` here."""
        node, digits = state
        if not is_word_char(c):
            can_end = node is None or node == ROOT or digits or self.lexicon.terminal[node]
            return BETWEEN_WORDS if can_end or not strict else None
        if node is None and not digits:  # a word the lexicon does not know (from a prompt) goes on as it likes
            return state
        nxt = self.lexicon.children[node].get(c.lower()) if node is not None else None
        still_digits = digits and c.isdigit()
        if strict and nxt is None and not still_digits:
            return None
        return nxt, still_digits

    def allows(self, state: SpellState, token: int) -> bool:
        """Whether the lexicon allows `token` in `state`."""
        walked: SpellState | None = state
        for c in self.texts[token]:
            walked = self._step(walked, c, strict=True)
            if walked is None:
                return False
        return True

    def mask(self, state: SpellState) -> torch.Tensor | None:
        """True for the tokens allowed in `state`; None when anything goes (a word the lexicon does not know)."""
        if state not in self._masks:
            self._masks[state] = self._build(state)
        return self._masks[state]

    def _build(self, state: SpellState) -> torch.Tensor | None:
        node, digits = state
        if node is None and not digits:
            return None
        allowed = torch.zeros(self.vocab_size, dtype=torch.bool)
        if self._step(state, " ", strict=True) is not None:  # the word so far may end here
            allowed |= self.after_word_end
        for first, tokens in self.by_first.items():
            if is_word_char(first) and self._step(state, first, strict=True) is not None:
                allowed[[t for t in tokens if self.allows(state, t)]] = True
        return allowed if bool(allowed.any()) else None

    @functools.cached_property
    def after_word_end(self) -> torch.Tensor:
        """The tokens that start with a separator and are allowed after it: the same wherever a word may end, so
        built once (most of a BPE vocabulary starts with a space)."""
        allowed = torch.zeros(self.vocab_size, dtype=torch.bool)
        for first, tokens in self.by_first.items():
            if not is_word_char(first):
                allowed[[t for t in tokens if self.allows(BETWEEN_WORDS, t)]] = True
        return allowed


def apply_mask(logits: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """The logits with -inf for every token the lexicon does not allow here."""
    if allowed is None:
        return logits
    return logits.masked_fill(~allowed.to(logits.device), -math.inf)


# Building and caching a run's lexicon.


def run_dataset(run_dir: str | Path) -> Path:
    """The dataset a run (or an adapter) was trained on, as its config records it. A relative path is looked up
    from the working directory, then from the run directory and its parents (runs and data often sit side by
    side)."""
    run_dir = Path(run_dir)
    from rapgpt.training.finetune import RECORD  # an adapter directory records its data there

    record = run_dir / RECORD if (run_dir / RECORD).is_file() else run_dir / "config.json"
    data = read_json(record, "run record", DataError).get("data")
    if not isinstance(data, str):
        raise DataError(f"{record} does not record the dataset the model was trained on: pass --lexicon off")
    path = Path(data)
    for base in (Path.cwd(), run_dir, *run_dir.resolve().parents):
        candidate = path if path.is_absolute() else base / path
        if (candidate / "meta.json").is_file():
            return candidate.resolve()
    raise DataError(f"the training data of {run_dir} ({data}) is not found, so its lexicon cannot be built: run from "
                    "where it was trained, or pass --lexicon off")


def run_datasets(run_dir: str | Path) -> list[Path]:
    """Every dataset a run's weights were trained on: a run merged from an adapter (`rapgpt merge`) has its base
    run's and its adapter's."""
    merged = read_json(Path(run_dir) / "config.json", "run config", DataError).get("merged_from")
    if isinstance(merged, dict) and {"base_run", "adapter"} <= set(merged):
        return [*run_datasets(merged["base_run"]), run_dataset(merged["adapter"])]
    return [run_dataset(run_dir)]


def run_lexicon(run_dir: str | Path, adapter: str | Path | None = None, cache_dir: str | Path | None = None,
                min_count: int = MIN_COUNT) -> Lexicon:
    """The lexicon of a run's training text (and of its adapter's, with `adapter`), cached in `cache_dir`
    (default: beside the adapter, else the run) as LEXICON_FILE. A cache that cannot be written is skipped."""
    from rapgpt.data.dataset import TokenDataset
    from rapgpt.evaluate.references import dataset_songs

    datasets = run_datasets(run_dir) + ([run_dataset(adapter)] if adapter is not None else [])
    key = hashlib.sha256(f"{min_count} {WORDS_VERSION}".encode())
    for d in datasets:
        key.update(str(d).encode() + (d / "meta.json").read_bytes())
    key = key.hexdigest()[:16]
    cache = Path(cache_dir or adapter or run_dir) / LEXICON_FILE
    if cache.is_file():
        cached = read_json(cache, "lexicon cache", DataError)
        if cached.get("key") == key:
            return Lexicon(cached["words"])
    log.info("building the lexicon of %s (once; cached in %s)", ", ".join(map(str, datasets)), cache)
    songs = (s.text for d in datasets for s in dataset_songs(TokenDataset(d), "train"))
    words = corpus_words(songs, min_count)
    try:
        atomic_write_json(cache, {"key": key, "min_count": min_count, "datasets": [str(d) for d in datasets],
                                  "words": words})
    except OSError as e:
        log.warning("notice: the lexicon could not be cached in %s (%s); it is rebuilt next time", cache, e)
    return Lexicon(words)


def run_speller(run_dir: str | Path, tokenizer: Tokenizer, choice: str | None, adapter: str | Path | None = None,
                cache_dir: str | Path | None = None) -> Speller | None:
    """The speller that `--lexicon choice` asks for: "corpus" builds it (or fails saying why), "off" gives None,
    and None (the default) builds it where the model's training data is at hand, else gives None (saying so for a
    character model, which misspells the most without it)."""
    if choice == "off":
        return None
    try:
        return Speller(run_lexicon(run_dir, adapter, cache_dir), tokenizer)
    except DataError as e:
        if choice == "corpus":
            raise
        say = log.warning if isinstance(tokenizer, CharTokenizer) else log.info
        say("notice: writing without the lexicon: %s", e)
        return None
