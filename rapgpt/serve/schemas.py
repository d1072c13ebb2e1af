"""The API's request and response bodies, with the bounds every field is validated against.

`/api/generate` takes rapgpt's own names (those of `SamplingParams`) and refuses unknown fields, so a typo is
named in the 422 rather than silently ignored. `/v1/completions` follows OpenAI's completions API, ignoring the
fields it does not know as OpenAI's clients expect, and takes rapgpt's extra sampling settings (top_k, min_p,
repetition_penalty) beside them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from rapgpt.generate import SamplingParams
from rapgpt.generate.params import LEXICONS, MAX_RHYME_GUIDE, SCHEMES, WritingParams
from rapgpt.serve.config import LIMITS

MAX_PROMPT_CHARS = LIMITS.prompt_chars
MAX_NEW_TOKENS = LIMITS.max_new_tokens
MAX_STOP_STRINGS = LIMITS.stop_strings
MAX_STOP_CHARS = LIMITS.stop_chars
MAX_TOP_K = LIMITS.top_k
MAX_CHOICES = LIMITS.choices
MAX_SEED = 2**63 - 1
MAX_NAME_CHARS = 128
MIN_TEMPERATURE = LIMITS.min_temperature
MIN_TOP_P = LIMITS.min_top_p
PENALTY = LIMITS.max_penalty
REPETITION = (LIMITS.min_repetition_penalty, LIMITS.max_repetition_penalty)
DEFAULTS = SamplingParams()
WRITING = WritingParams()


def _valid_unicode(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError("must be valid Unicode text (it contains a lone surrogate)") from e
    return text


def _temperature(t: float) -> float:
    if 0 < t < MIN_TEMPERATURE:
        raise ValueError(f"must be 0 (greedy) or at least {MIN_TEMPERATURE}")
    return t


Text = Annotated[str, AfterValidator(_valid_unicode)]
Prompt = Annotated[Text, StringConstraints(max_length=MAX_PROMPT_CHARS)]
StopString = Annotated[Text, StringConstraints(min_length=1, max_length=MAX_STOP_CHARS)]
Name = Annotated[Text, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED, description="makes the sampling reproducible")]
Penalty = Annotated[float, Field(ge=-PENALTY, le=PENALTY)]
Temperature = Annotated[float, Field(ge=0, le=LIMITS.max_temperature,
                                     description=f"0 = always the most likely token, else at least {MIN_TEMPERATURE}"),
                        AfterValidator(_temperature)]
TopP = Annotated[float, Field(ge=MIN_TOP_P, le=1, description="keep the most likely tokens holding this probability")]


class Usage(BaseModel):
    prompt_tokens: int = Field(description="tokens fed to the model: the prompt and a start-of-song token")
    completion_tokens: int
    total_tokens: int


class WritingFields(BaseModel):
    """Writing line by line to a rhyme scheme, and keeping to real words."""

    scheme: Literal[SCHEMES] = Field(  # type: ignore[valid-type]
        WRITING.scheme, description="rhyme scheme of four-line stanzas; free: no scheme")
    lines: int | None = Field(WRITING.lines, ge=1, le=LIMITS.lines,
                              description="lines to write, one at a time (null: 16 with a scheme)")
    candidates: int | None = Field(WRITING.candidates, ge=1, le=LIMITS.candidates,
                                   description="candidate lines sampled for each line (null: 8 with a scheme)")
    rhyme_weight: float = Field(WRITING.rhyme_weight, ge=0, le=10,
                                description="what a rhyme is worth against the mean log-probability per character")
    rhyme_guide: float = Field(WRITING.rhyme_guide, ge=0, le=MAX_RHYME_GUIDE,
                               description="how much a rhyme raises the logits of ending a candidate line there")
    lexicon: Literal[LEXICONS] | None = Field(  # type: ignore[valid-type]
        WRITING.lexicon, description="corpus: only words of the training text; off: any; null: the "
                                     "server's default")

    def writing(self) -> WritingParams:
        return WritingParams(scheme=self.scheme, lines=self.lines, candidates=self.candidates,
                             rhyme_weight=self.rhyme_weight, rhyme_guide=self.rhyme_guide, lexicon=self.lexicon)


class GenerateRequest(WritingFields):
    """Continue a prompt (an empty prompt starts a song from scratch)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: Prompt = ""
    max_new_tokens: int = Field(DEFAULTS.max_new_tokens, ge=1, le=MAX_NEW_TOKENS, description="token budget")
    temperature: Temperature = DEFAULTS.temperature
    top_k: int | None = Field(DEFAULTS.top_k, ge=1, le=MAX_TOP_K, description="keep the k most likely tokens")
    top_p: TopP | None = DEFAULTS.top_p
    min_p: float | None = Field(DEFAULTS.min_p, ge=0, le=1,
                                description="keep tokens at least min_p times as likely as the most likely one")
    repetition_penalty: float = Field(DEFAULTS.repetition_penalty, ge=REPETITION[0], le=REPETITION[1],
                                      description="1 = off")
    frequency_penalty: Penalty = DEFAULTS.frequency_penalty
    presence_penalty: Penalty = DEFAULTS.presence_penalty
    stop: list[StopString] = Field(default_factory=list, max_length=MAX_STOP_STRINGS,
                                   description="the text ends before the first of these strings")
    seed: Seed | None = None
    adapter: Name | None = Field(None, description="a fine-tuned model's name from /v1/models; null = the base")
    stream: bool = Field(False, description="answer with Server-Sent Events: `text` pieces, then `done`")

    def sampling(self) -> SamplingParams:
        return SamplingParams(
            max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
            min_p=self.min_p, repetition_penalty=self.repetition_penalty, frequency_penalty=self.frequency_penalty,
            presence_penalty=self.presence_penalty, stop=tuple(self.stop), seed=self.seed,
        )


class RhymesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    text: Annotated[Text, StringConstraints(max_length=4 * MAX_PROMPT_CHARS)]


class RhymeMarkOut(BaseModel):
    start: int = Field(description="the word's first character in the text, counted in code points")
    end: int = Field(description="one past its last character")
    group: int = Field(description="shared by the words that rhyme together, numbered in order of appearance")


class RhymesResponse(BaseModel):
    marks: list[RhymeMarkOut] = Field(description="line ends that rhyme with a line end near them")


class Timings(BaseModel):
    queued: float = Field(description="seconds waiting for a place in the batch")
    first_token: float | None = Field(description="seconds from arrival to the first token")
    total: float = Field(description="seconds from arrival to the end")
    tokens_per_second: float = Field(description="completion tokens per second of generation, queueing excluded")


class GenerateResponse(BaseModel):
    id: str
    model: str = Field(description="the model that wrote the text")
    adapter: str | None
    text: str = Field(description="the continuation, without the prompt")
    finish_reason: Literal["stop", "length", "eot", "time_limit", "cancelled"] = Field(
        description="stop: a stop string; length: the token budget; eot: the model ended the song; time_limit: "
                    "the server's per-request time limit")
    seed: int = Field(description="the seed that reproduces this text")
    usage: Usage
    timings: Timings


class StreamOptions(BaseModel):
    model_config = ConfigDict(strict=True)

    include_usage: bool = False


class CompletionRequest(WritingFields):
    """OpenAI's completion request. `model` is an id from /v1/models."""

    model_config = ConfigDict(extra="ignore", strict=True)

    model: Name
    prompt: Prompt | Annotated[list[Prompt], Field(min_length=1, max_length=MAX_CHOICES)] = Field(
        "", description=f"a prompt, or a list of up to {MAX_CHOICES} prompts")
    max_tokens: int | None = Field(16, ge=1, le=MAX_NEW_TOKENS)
    temperature: Temperature | None = 1.0
    top_p: TopP | None = 1.0
    n: int | None = Field(1, ge=1, le=MAX_CHOICES)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    stop: StopString | Annotated[list[StopString], Field(max_length=MAX_STOP_STRINGS)] | None = None
    seed: Seed | None = None
    presence_penalty: Penalty | None = 0.0
    frequency_penalty: Penalty | None = 0.0
    echo: bool | None = Field(False, description="put the prompt before the completion")
    best_of: int | None = Field(None, ge=1, le=1, description="not supported beyond 1")
    logprobs: int | None = Field(None, ge=0, le=0, description="not supported")
    logit_bias: dict[str, float] | None = Field(None, max_length=0, description="not supported")
    suffix: None = Field(None, description="not supported")
    user: str | None = Field(None, max_length=256)
    # rapgpt's own sampling settings, beside the writing ones (OpenAI's clients send them through `extra_body`)
    top_k: int | None = Field(None, ge=1, le=MAX_TOP_K)
    min_p: float | None = Field(None, ge=0, le=1)
    repetition_penalty: float | None = Field(None, ge=REPETITION[0], le=REPETITION[1])

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def sampling(self) -> SamplingParams:
        return SamplingParams(
            max_new_tokens=self.max_tokens or 16,
            temperature=1.0 if self.temperature is None else self.temperature,
            top_k=self.top_k, top_p=self.top_p, min_p=self.min_p,
            repetition_penalty=self.repetition_penalty or 1.0,
            frequency_penalty=self.frequency_penalty or 0.0, presence_penalty=self.presence_penalty or 0.0,
            stop=self.stops(), seed=self.seed,
        )


class CompletionChoice(BaseModel):
    text: str
    index: int
    logprobs: None = None
    finish_reason: Literal["stop", "length"] | None


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "rapgpt"
    parent: str | None = Field(description="the base model a fine-tuned model adapts; null for the base model")
    context_length: int
    tokenizer: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Health(BaseModel):
    status: Literal["ok", "loading", "failed", "stopped"]
    models: list[str] = []
    error: str | None = None


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """Errors carry OpenAI's `error` object (which OpenAI's clients read) and FastAPI's `detail`."""

    error: ErrorInfo
    detail: str | list[dict]
