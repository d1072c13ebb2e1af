"""`--tensorboard`: each evaluation record of `metrics.jsonl` also written as TensorBoard events, to watch live.

The events carry the same numbers as metrics.jsonl, against the optimizer step: train and val loss and accuracy on
the fixed evaluation windows, the mean loss of the training steps since the last evaluation, the learning rate,
the mean gradient norm (before clipping), and the tokens per second of wall clock since the last evaluation (the
evaluations included); and each generated sample as text. TensorBoard is an optional extra
(`pip install 'rapgpt[tensorboard]'`), imported only when asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rapgpt.errors import ConfigError

LOG_DIR = "tensorboard"  # inside the run directory, when --tensorboard names no directory
# TensorBoard tag of each record field that is a scalar.
SCALARS = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "loss": "loss/train_steps",
    "train_acc": "accuracy/train",
    "val_acc": "accuracy/val",
    "lr": "learning_rate",
    "grad_norm": "grad_norm",
}
SPEED = "tokens_per_second"
SAMPLE = "sample"


def log_dir(setting: str, run_dir: Path) -> Path:
    """Where the events go: the `--tensorboard` directory, or (given none, i.e. "") the run's own folder."""
    return Path(setting) if setting else run_dir / LOG_DIR


class TensorBoardLog:
    """Writes evaluation records as TensorBoard events into `directory`.

    `previous` is the last record written before (a resumed run's), from which the first speed is measured; events
    after it, left by the interrupted session, are hidden by TensorBoard (its purge step).
    """

    def __init__(self, directory: Path, previous: dict[str, Any] | None = None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ConfigError("--tensorboard needs the tensorboard package, which is not installed: "
                              "pip install 'rapgpt[tensorboard]' (or leave out --tensorboard)") from e
        purge = previous["step"] + 1 if previous is not None else None
        self.writer = SummaryWriter(log_dir=str(directory), purge_step=purge)
        self.previous = previous

    def write(self, record: dict[str, Any]) -> None:
        step = record["step"]
        for key, tag in SCALARS.items():
            if record.get(key) is not None:
                self.writer.add_scalar(tag, record[key], step)
        if self.previous is not None and record["seconds"] > self.previous["seconds"]:
            speed = (record["tokens"] - self.previous["tokens"]) / (record["seconds"] - self.previous["seconds"])
            self.writer.add_scalar(SPEED, speed, step)
        if record.get("sample") is not None:
            self.writer.add_text(SAMPLE, f"```\n{record['sample']}\n```", step)  # a code block keeps line breaks
        self.writer.flush()  # watched live: every evaluation shows at once
        self.previous = record

    def close(self) -> None:
        self.writer.close()
