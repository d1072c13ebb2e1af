"""The settings of generation, validated on creation: of one request (`SamplingParams`), of the model that runs
the requests (`InferenceConfig`), of `rapgpt generate` (`GenerateConfig`) and of writing line by line to a rhyme
scheme with real words (`WritingParams`).

Kept free of torch so that the command line can show the defaults without loading it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from rapgpt.errors import ConfigError
from rapgpt.options import setting
from rapgpt.precision import INFERENCE_CHOICES, Precision

QUANTIZATIONS = ("int8",)


def unescape(text: str) -> str:
    r"""Read \n, \t and \\ typed on a command line as a line break, a tab and a backslash."""
    return re.sub(r"\\([nt\\])", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}[m.group(1)], text)


@dataclass(frozen=True)
class SamplingParams:
    """How to sample a continuation. The defaults suit lyrics: varied, yet without the incoherent tail of the
    distribution."""

    max_new_tokens: int = setting(256, "token budget of the continuation")
    temperature: float = setting(0.8, "randomness: 0 always takes the most likely token, higher is wilder",
                                 metavar="T")
    top_k: int | None = setting(None, "sample among the K most likely tokens", metavar="K")
    top_p: float | None = setting(0.95, "sample among the most likely tokens holding probability P, in (0, 1]",
                                  metavar="P")
    min_p: float | None = setting(None, "drop tokens less than P times as likely as the most likely one", metavar="P")
    repetition_penalty: float = setting(1.0, "> 1 discourages tokens already in the prompt or the continuation")
    frequency_penalty: float = setting(
        0.0, "in [-2, 2]: lowers a token's logit by X per earlier use in the continuation")
    presence_penalty: float = setting(
        0.0, "in [-2, 2]: lowers a token's logit by X once it was used in the continuation")
    stop: tuple[str, ...] = setting(
        (), "end the continuation before the first of these strings (\\n is a line break)", metavar="S",
        parse=unescape)
    seed: int | None = setting(
        None, "make the output reproducible (sample i uses S + i); random when omitted", metavar="S")

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        object.__setattr__(self, "stop", tuple(self.stop))
        _check(_is_int(self.max_new_tokens) and self.max_new_tokens >= 1, "max_new_tokens", self.max_new_tokens,
               "a positive integer")
        _check(_is_real(self.temperature) and self.temperature >= 0, "temperature", self.temperature,
               "a number >= 0 (0 = greedy; 0.7 to 1.0 suits lyrics)")
        _check(self.top_k is None or (_is_int(self.top_k) and self.top_k >= 1), "top_k", self.top_k,
               "a positive integer (None: no limit)")
        _check(self.top_p is None or (_is_real(self.top_p) and 0 < self.top_p <= 1), "top_p", self.top_p,
               "in (0, 1] (1 or None keeps every token)")
        _check(self.min_p is None or (_is_real(self.min_p) and 0 <= self.min_p <= 1), "min_p", self.min_p,
               "in [0, 1] (0 or None keeps every token)")
        _check(_is_real(self.repetition_penalty) and self.repetition_penalty > 0, "repetition_penalty",
               self.repetition_penalty, "a number > 0 (1 = off, 1.1 to 1.3 discourages repeats)")
        for name in ("frequency_penalty", "presence_penalty"):
            value = getattr(self, name)
            _check(_is_real(value) and -2 <= value <= 2, name, value, "in [-2, 2] (0 = off)")
        _check(all(isinstance(s, str) and s for s in self.stop), "stop", self.stop, "non-empty strings")
        _check(self.seed is None or (_is_int(self.seed) and 0 <= self.seed < 2**63), "seed", self.seed,
               "an integer in [0, 2**63), or None for a random one")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def check_quantize(quantize: str | None) -> None:
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ConfigError(f"unknown quantization {quantize!r}: choose {' or '.join(QUANTIZATIONS)}, or none")


@dataclass(frozen=True)
class InferenceConfig:
    """How a model runs for generation: the precision its weights are cast to, their quantization, the threads,
    and how often streamed text is written out."""

    precision: str = setting(
        "fp32", "precision of the weights and activations (bf16 halves memory and is faster on most CPUs)",
        choices=INFERENCE_CHOICES)
    quantize: str | None = setting(
        None, "int8 weights in blocks of 32 with a scale each (per-channel scales where rapgpt's native kernel does "
              "not build): about a quarter of fp32's memory, activations in --precision",
        choices=QUANTIZATIONS)
    threads: int | None = setting(
        None, "CPU threads for the model (default: the physical cores, at most 8, the fastest for decoding one "
              "sequence; OMP_NUM_THREADS if set); on a machine busy with other work, 1 is often faster")
    device: str = setting("cpu", "where the model runs: cpu, cuda, cuda:N, mps, or auto (CUDA, then MPS, then the "
                                 "CPU)")
    stream_interval: float = setting(
        0.03, "gather streamed text this long before writing it out (the first text and the end go at once): each "
              "write wakes its reader, whose work takes a core from decoding on a small machine; 0 writes every "
              "token", metavar="SECONDS")

    def __post_init__(self) -> None:
        Precision.parse(self.precision)
        check_quantize(self.quantize)
        _check(self.threads is None or (_is_int(self.threads) and self.threads >= 1), "threads", self.threads,
               "a positive integer")
        _check(_is_real(self.stream_interval) and self.stream_interval >= 0, "the stream interval",
               self.stream_interval, "0 or more seconds")


@dataclass(frozen=True)
class GenerateConfig(InferenceConfig):
    """`rapgpt generate`: how many continuations, and what it reports beside them."""

    num_samples: int = setting(1, "how many continuations to write")
    cache_info: bool = setting(False, "print the KV cache's size and its formula to stderr")

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(_is_int(self.num_samples) and self.num_samples >= 1, "num_samples", self.num_samples,
               "a positive integer")


# A scheme gives the rhyme letter of each line of a four-line stanza: lines with the same letter rhyme.
SCHEMES = ("free", "AABB", "ABAB", "ABCB", "AAAA")
LEXICONS = ("corpus", "off")
SCHEME_CANDIDATES = 8  # candidate lines per line when a scheme is set and --candidates is not
DEFAULT_LINES = 16  # lines written line by line when --lines is not given: a verse
MAX_CANDIDATES = 64
MAX_LINES = 256
MAX_RHYME_GUIDE = 20.0  # beyond, a line ends at its first rhyme whatever the model thinks


def lexicon_setting() -> str | None:
    """The `--lexicon` setting, shared by every command that writes (generate, serve, eval)."""
    return setting(None, "corpus: write only words of the model's training text; off (default: corpus where the "
                         "training data is at hand)", choices=LEXICONS)


@dataclass(frozen=True)
class WritingParams:
    """How to write beyond sampling token after token: line by line to a rhyme scheme, choosing each line among
    candidates, and keeping to real words. The defaults are today's free writing; the lexicon is on wherever the
    model's training data is at hand, unless `lexicon="off"`."""

    scheme: str = setting("free", "write line by line to a rhyme scheme of four-line stanzas, AABB, ABAB, ABCB "
                                  "or AAAA (lines with the same letter rhyme); free: no scheme", choices=SCHEMES)
    lines: int | None = setting(None, "write this many lines, one at a time (default: 16 when writing line by "
                                      "line); line by line, the token budget is each line's")
    candidates: int | None = setting(None, f"candidate lines sampled together for each line, the best kept "
                                           f"(default: {SCHEME_CANDIDATES} with a scheme, else 1)")
    rhyme_weight: float = setting(1.0, "what a perfect rhyme is worth against the mean log-probability per "
                                       "character when choosing a line")
    rhyme_guide: float = setting(3.0, "while a candidate line is written, how much a rhyme with its partner "
                                      "raises the logits of ending the line there (0: lines end on a rhyme only "
                                      "by chance)")
    lexicon: str | None = lexicon_setting()

    def __post_init__(self) -> None:
        _check(self.scheme in SCHEMES, "scheme", self.scheme, f"one of {', '.join(SCHEMES)}")
        _check(self.lines is None or (_is_int(self.lines) and 1 <= self.lines <= MAX_LINES), "lines", self.lines,
               f"an integer in [1, {MAX_LINES}], or None")
        _check(self.candidates is None or (_is_int(self.candidates) and 1 <= self.candidates <= MAX_CANDIDATES),
               "candidates", self.candidates, f"an integer in [1, {MAX_CANDIDATES}], or None")
        _check(_is_real(self.rhyme_weight) and self.rhyme_weight >= 0, "rhyme_weight", self.rhyme_weight,
               "a number >= 0")
        _check(_is_real(self.rhyme_guide) and 0 <= self.rhyme_guide <= MAX_RHYME_GUIDE, "rhyme_guide",
               self.rhyme_guide, f"a number in [0, {MAX_RHYME_GUIDE}]")
        _check(self.lexicon is None or self.lexicon in LEXICONS, "lexicon", self.lexicon,
               f"one of {', '.join(LEXICONS)}, or None")

    @property
    def line_by_line(self) -> bool:
        """Whether the text is written a line at a time (a scheme, a line count or candidates ask for it)."""
        return self.scheme != "free" or self.lines is not None or (self.candidates or 1) > 1

    @property
    def num_candidates(self) -> int:
        return self.candidates or (SCHEME_CANDIDATES if self.scheme != "free" else 1)

    @property
    def num_lines(self) -> int:
        """Lines to write, when writing line by line."""
        return self.lines or DEFAULT_LINES


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check(ok: bool, name: str, value: object, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{name} must be {expected}, got {value!r}")
