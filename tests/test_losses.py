import pytest
import torch
from torch.nn import functional as F

from rapgpt.losses import linear_cross_entropy


def reference(x, w, t):
    return F.cross_entropy(x @ w.t(), t, ignore_index=-1)


@pytest.mark.parametrize("rows", [1, 3, 100])
def test_loss_and_gradients_match_cross_entropy_of_the_logits_in_float64(rows, monkeypatch):
    monkeypatch.setattr("rapgpt.losses.CHUNK_LOGITS", 3 * 50)  # chunks of 3 rows: one, several and a partial one
    torch.manual_seed(rows)
    x = torch.randn(rows, 16, dtype=torch.float64, requires_grad=True)
    w = torch.randn(50, 16, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 50, (rows,))
    t[::7] = -1
    t[0] = 3
    (linear_cross_entropy(x, w, t) * 2.5).backward()
    got = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    (reference(x, w, t) * 2.5).backward()
    assert linear_cross_entropy(x, w, t).item() == pytest.approx(reference(x, w, t).item(), abs=1e-12)
    assert torch.allclose(got[0], x.grad, atol=1e-12) and torch.allclose(got[1], w.grad, atol=1e-12)


def test_under_bf16_autocast_it_matches_the_float64_reference_to_bf16_accuracy():
    torch.manual_seed(0)
    x = torch.randn(100, 32, requires_grad=True)
    w = (torch.randn(1000, 32) * 0.2).requires_grad_(True)
    t = torch.randint(0, 1000, (100,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = linear_cross_entropy(x, w, t)
    loss.backward()
    assert loss.dtype == torch.float32 and x.grad.dtype == torch.float32 and w.grad.dtype == torch.float32
    x64, w64 = x.detach().double().requires_grad_(True), w.detach().double().requires_grad_(True)
    expected = reference(x64, w64, t)
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-2)
    assert (x.grad - x64.grad).norm() < 2e-2 * x64.grad.norm()
    assert (w.grad - w64.grad).norm() < 2e-2 * w64.grad.norm()


def test_ignored_rows_add_nothing_even_when_their_logits_are_extreme():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    w = torch.tensor([[-200.0, 0.0], [200.0, 0.0], [0.0, 1.0]], requires_grad=True)  # token 0 improbable for row 0
    loss = linear_cross_entropy(x, w, torch.tensor([-1, 2]))
    loss.backward()
    expected = F.cross_entropy(x.detach() @ w.detach().t(), torch.tensor([-1, 2]), ignore_index=-1)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.all(torch.isfinite(x.grad)) and torch.all(x.grad[0] == 0)


def test_the_accelerator_path_that_always_masks_gives_the_same_loss_and_gradients(monkeypatch):
    torch.manual_seed(1)
    x = torch.randn(10, 16, dtype=torch.float64, requires_grad=True)
    w = torch.randn(50, 16, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 50, (10,))  # every target counts: the CPU skips the mask
    linear_cross_entropy(x, w, t).backward()
    skipped = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    monkeypatch.setattr("rapgpt.losses._known_all_valid", lambda valid: False)  # as on a GPU: no host read
    linear_cross_entropy(x, w, t).backward()
    assert torch.equal(skipped[0], x.grad) and torch.equal(skipped[1], w.grad)
