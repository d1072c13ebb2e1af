"""The blind test's endpoints under /api/judge: an excerpt to judge, the answer, and the running score.

An excerpt comes from a real song or from a model's generations with even odds, and its source is told only in
the reply to the answer. The handlers are plain functions, so FastAPI runs them in its thread pool and the
database never blocks the event loop.
"""

from __future__ import annotations

import random
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from rapgpt.serve.api import ERROR_RESPONSES
from rapgpt.serve.judge import MAX_ID, REAL, JudgeStore
from rapgpt.serve.schemas import ErrorResponse

EMPTY_POOL = ("no excerpts to judge yet: add some with `rapgpt eval ... --judge-db PATH` and serve with the same "
              "--judge-db")  # fmt: skip
ERRORS = {**ERROR_RESPONSES, 404: {"model": ErrorResponse, "description": "no such excerpt or model, or an empty pool"}}


class JudgeExcerpt(BaseModel):
    id: int = Field(description="quote it in the answer")
    text: str = Field(description="a few lines, from a real song or from a model")


class JudgeAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    excerpt: int = Field(ge=1, le=MAX_ID, description="the id of the excerpt judged")
    real: bool = Field(description="true: the person takes it for a real song's lines")


class SourceTally(BaseModel):
    source: str = Field(description="'real', or the name of the model that wrote the excerpts")
    excerpts: int
    answers: int
    judged_real: int = Field(description="answers that took the excerpt for real")


class JudgeScore(BaseModel):
    answers: int = Field(description="answers from everyone so far")
    correct: int
    models: list[str] = Field(description="models with excerpts in the pool, to choose from")
    sources: list[SourceTally]


class JudgeVerdict(BaseModel):
    correct: bool
    real: bool = Field(description="whether the excerpt came from a real song")
    model: str | None = Field(description="the model that wrote it, for a generated excerpt")
    score: JudgeScore


def judge_router(store: JudgeStore, dependencies: list[Any]) -> APIRouter:
    """The /api/judge routes over `store`, guarded by `dependencies` (the API key check, when there is a key)."""
    router = APIRouter(prefix="/api/judge", dependencies=dependencies, tags=["judge"], responses=ERRORS)

    def score() -> JudgeScore:
        answers, correct = store.correct()
        tallies = [SourceTally(source=t.source, excerpts=t.excerpts, answers=t.answers, judged_real=t.judged_real)
                   for t in store.tallies()]  # fmt: skip
        return JudgeScore(answers=answers, correct=correct, models=store.sources(), sources=tallies)

    @router.get("/excerpt", response_model=JudgeExcerpt)
    def excerpt(model: str | None = None) -> JudgeExcerpt:
        """An excerpt to judge: from a real song or from `model` (any model when omitted), even odds."""
        if model is not None and model not in store.sources():
            raise HTTPException(404, f"no excerpts of a model named {model!r} in the pool")
        real = random.random() < 0.5
        found = store.pick(model, real) or store.pick(model, not real)
        if found is None:
            raise HTTPException(404, EMPTY_POOL)
        return JudgeExcerpt(id=found.id, text=found.text)

    @router.post("/answers", response_model=JudgeVerdict)
    def answer(body: JudgeAnswer) -> JudgeVerdict:
        """Record that a person took an excerpt for real or for the model's; reply with the truth and the score."""
        judged = store.answer(body.excerpt, body.real)
        if judged is None:
            raise HTTPException(404, f"no excerpt {body.excerpt} in the pool")
        real = judged.source == REAL
        return JudgeVerdict(correct=real == body.real, real=real, model=None if real else judged.source,
                            score=score())  # fmt: skip

    @router.get("/score", response_model=JudgeScore)
    def running_score() -> JudgeScore:
        """Everyone's answers so far, and per source how often its excerpts were taken for real."""
        return score()

    return router
