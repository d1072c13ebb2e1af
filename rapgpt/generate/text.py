"""From sampled token ids to text that is safe to show while it is being produced.

A byte-level BPE token may hold part of a multi-byte character, so bytes go through an incremental UTF-8 decoder
and only whole characters come out. A stop string may span several tokens, so text that could still turn out to
be the start of one is held back until the next tokens settle it; when one completes, the text ends right
before it, wherever the token boundaries fell.
"""

from __future__ import annotations

import codecs

from rapgpt.data.tokenizer import Tokenizer


class TextStream:
    """The continuation of one sequence, fed one token at a time."""

    def __init__(self, tokenizer: Tokenizer, stop: tuple[str, ...] = ()):
        self.tokenizer = tokenizer
        self.stop = stop
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""  # decoded so far (cut before the stop string once one is found)
        self.shown = 0  # characters of `text` already handed out
        self.stopped = False

    def push(self, token: int) -> str:
        """Add a token; return the text that became safe to show (possibly empty)."""
        return self._extend(self.decoder.decode(self.tokenizer.token_bytes(token)))

    def finish(self) -> str:
        """The sequence ended: flush an incomplete character (as U+FFFD) and release any held-back text."""
        piece = self._extend(self.decoder.decode(b"", final=True))
        if self.stopped:
            return piece
        rest, self.shown = self.text[self.shown :], len(self.text)
        return piece + rest

    def _extend(self, new: str) -> str:
        if not new or self.stopped:
            return ""
        searched = len(self.text)
        self.text += new
        cut = self._find_stop(searched)
        if cut is not None:
            self.text, self.stopped = self.text[:cut], True
            safe = cut
        else:
            safe = len(self.text) - self._held_back()
        piece, self.shown = self.text[self.shown : safe], max(self.shown, safe)
        return piece

    def _find_stop(self, searched: int) -> int | None:
        """Where the text must end: before the stop string that completes first (and, of those completing at the
        same character, the longest), as if the text had arrived one character at a time. Only matches that
        include new text are looked for: older ones would have stopped the text already."""
        matches = []
        for s in self.stop:
            start = self.text.find(s, max(0, searched - len(s) + 1))
            if start != -1:
                matches.append((start + len(s), start))
        return min(matches)[1] if matches else None

    def _held_back(self) -> int:
        """Length of the longest end of the text that is the beginning of a stop string."""
        longest = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(self.text)), longest, -1):
                if self.text.endswith(s[:n]):
                    longest = n
                    break
        return longest
