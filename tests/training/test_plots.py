import struct

from rapgpt.training.plots import plot_curves


def test_curves_are_drawn_to_a_png(tmp_path):
    records = [{"step": s, "tokens": s * 4096, "train_loss": 3 - s / 100, "val_loss": 3.1 - s / 120,
                "train_acc": s / 400, "val_acc": s / 450} for s in range(0, 300, 50)]
    path = tmp_path / "curves.png"
    plot_curves(records, path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1100, 420)


def test_a_single_evaluation_at_step_zero_can_be_drawn(tmp_path):
    plot_curves([{"step": 0, "tokens": 0, "train_loss": 4.0, "val_loss": 4.0, "train_acc": 0.0, "val_acc": 0.0}],
                tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0
