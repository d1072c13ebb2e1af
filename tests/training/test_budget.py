import pytest

from rapgpt.training.budget import Progress, budget_used, schedule_progress
from rapgpt.training.config import TrainConfig


def test_the_budget_reached_first_decides():
    config = TrainConfig(max_steps=100, max_tokens=10_000, max_minutes=1.0)
    assert budget_used(config, Progress(step=10, tokens=5_000, seconds=6.0), 10**6) == pytest.approx(0.5)
    assert budget_used(config, Progress(step=90, tokens=5_000, seconds=6.0), 10**6) == pytest.approx(0.9)
    assert budget_used(config, Progress(step=10, tokens=5_000, seconds=60.0), 10**6) == pytest.approx(1.0)


def test_epochs_budget_and_one_epoch_when_no_budget_is_set():
    assert budget_used(TrainConfig(max_epochs=2.0), Progress(tokens=500), 1000) == pytest.approx(0.25)
    assert budget_used(TrainConfig(), Progress(tokens=500), 1000) == pytest.approx(0.5)


def test_decay_steps_set_the_schedule_apart_from_the_budget():
    config = TrainConfig(max_steps=50, decay_steps=200)
    assert schedule_progress(config, Progress(step=50), 10**6) == pytest.approx(0.25)
    assert schedule_progress(TrainConfig(max_steps=50), Progress(step=50), 10**6) == pytest.approx(1.0)
