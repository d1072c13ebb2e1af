import pytest
import torch
from torch.nn import functional as F

from rapgpt.training.evaluate import OverfitMonitor, evaluate_splits
from rapgpt.training.runtime import Runtime


def test_evaluate_gives_the_mean_loss_and_accuracy_over_all_windows(tiny_model):
    torch.manual_seed(0)
    x = torch.randint(0, 67, (5, 12))
    y = torch.randint(0, 67, (5, 12))
    y[0, :3] = tiny_model(x[:1])[0][0, :3].argmax(-1)  # a few tokens predicted right
    result = evaluate_splits(tiny_model, {"val": (x, y)}, batch_size=2, runtime=Runtime(torch.device("cpu"), "fp32"))
    with torch.no_grad():
        logits, _ = tiny_model(x)
    assert result["val_loss"] == pytest.approx(F.cross_entropy(logits.flatten(0, 1), y.flatten()).item(), rel=1e-6)
    assert result["val_acc"] == pytest.approx((logits.argmax(-1) == y).float().mean().item())
    assert result["val_acc"] >= 3 / 60


def test_evaluate_leaves_the_training_mode_as_it_was(tiny_model):
    tiny_model.train()
    x = torch.zeros(1, 4, dtype=torch.long)
    evaluate_splits(tiny_model, {"train": (x, x)}, 1, Runtime(torch.device("cpu"), "fp32"))
    assert tiny_model.training


def test_overfitting_is_val_rising_for_patience_evaluations_while_train_falls():
    monitor = OverfitMonitor(patience=2)
    flags = [monitor.update(t, v) for t, v in [(3.0, 3.0), (2.5, 2.6), (2.0, 2.7), (1.5, 2.8), (1.0, 2.75)]]
    assert [best for best, _ in flags] == [True, True, False, False, False]
    assert [over for _, over in flags] == [False, False, False, True, False]
    assert monitor.best_val == 2.6


def test_val_rising_with_train_rising_is_not_overfitting():
    monitor = OverfitMonitor(patience=2)
    assert not any(monitor.update(t, v)[1] for t, v in [(2.0, 2.0), (2.1, 2.1), (2.2, 2.2)])


def test_monitor_state_round_trips():
    monitor = OverfitMonitor(patience=2)
    monitor.update(2.0, 2.0)
    monitor.update(1.5, 2.1)
    copy = OverfitMonitor(patience=2)
    copy.load_state_dict(monitor.state_dict())
    assert copy.update(1.0, 2.2) == monitor.update(1.0, 2.2) == (False, True)
