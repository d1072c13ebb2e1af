"""Pretraining (`rapgpt train`), and the one training loop that fine-tuning shares.

`fit` trains a GPT-shaped model on flat token arrays. Only parameters with `requires_grad` are optimized, so a
model with frozen weights trains its adapters alone; the run is evaluated at step 0 and every `eval_interval`
steps, and at each evaluation a `save` hook writes what the run keeps (the whole model here, an adapter when
fine-tuning) while the loop writes `state.pt`, `metrics.jsonl` and `curves.png` beside it. `pretrain` builds a
model from a preset and a prepared dataset and hands both to `fit`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from rapgpt.checkpoint import CONFIG, save_run, save_weights
from rapgpt.data.dataset import TokenDataset
from rapgpt.data.tokenizer import Tokenizer
from rapgpt.errors import CheckpointError, ConfigError
from rapgpt.fileio import read_json
from rapgpt.generate.decoder import generate
from rapgpt.generate.params import SamplingParams
from rapgpt.model import GPT, preset_config
from rapgpt.options import read_toml, resolve, to_dict
from rapgpt.precision import Precision
from rapgpt.training.batches import WindowSampler, eval_windows
from rapgpt.training.budget import Progress, budget_used, schedule_progress
from rapgpt.training.config import RESUMABLE_CHANGES, PretrainConfig, TrainConfig
from rapgpt.training.evaluate import OverfitMonitor, evaluate_splits
from rapgpt.training.metrics import METRICS, append_metrics, keep_metrics_until, table_header, table_row
from rapgpt.training.optim import lr_at, make_optimizer, set_lr
from rapgpt.training.plots import plot_curves
from rapgpt.training.runtime import Runtime, setup_runtime, teardown
from rapgpt.training.state import STATE, check_fingerprint, load_state, save_state
from rapgpt.training.tensorboard import TensorBoardLog, log_dir

BEST = "best.safetensors"
CURVES = "curves.png"
SHOW_EVERY = 1.0  # seconds between two updates of the progress bar's loss and speed

SaveHook = Callable[[str, dict[str, Any]], None]
"""Called on rank 0 with "latest" at every evaluation and "best" at each new lowest val loss, and the record of
that evaluation (step, tokens, losses, ...): it writes the weights the run keeps."""

C = TypeVar("C", bound=TrainConfig)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, micro_batches: list[tuple[torch.Tensor, ...]],
               runtime: Runtime, grad_clip: float, scaler: torch.amp.GradScaler) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step over `micro_batches`, gradients averaged; returns the mean loss and the gradient norm
    before clipping, as tensors (reading them would wait for the device). Under DDP, gradients are exchanged on
    the last micro-batch only."""
    device = runtime.device
    total = torch.zeros((), device=device)
    for i, (x, y) in enumerate(micro_batches):
        last = i == len(micro_batches) - 1
        sync = contextlib.nullcontext() if last or not isinstance(model, DistributedDataParallel) else model.no_sync()
        with sync:
            with runtime.autocast():
                _, loss = model(to_device(x, device), to_device(y, device), return_logits=False)
            scaler.scale(loss / len(micro_batches)).backward()
        total += loss.detach()
    scaler.unscale_(optimizer)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    grad_norm = nn.utils.clip_grad_norm_(params, grad_clip or math.inf)  # no clipping at 0: the norm alone
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return total / len(micro_batches), grad_norm.detach()


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch on `device`: on CUDA copied from pinned memory without blocking, so the copy overlaps the work
    already queued; elsewhere moved as usual (a non-blocking copy from unpinned memory would block anyway)."""
    if device.type == "cuda":
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)


def compile_blocks(model: nn.Module) -> None:
    """Compile each transformer block in place: the blocks share one compiled graph, so compiling takes the time
    of one block, and the parameter names stay as they are."""
    for block in model.transformer.h:
        block.compile()


class _Run:
    """The state of one training run while `fit` drives it."""

    def __init__(self, model: nn.Module, config: TrainConfig, train_tokens: np.ndarray, val_tokens: np.ndarray,
                 out_dir: Path, save: SaveHook, runtime: Runtime, identity: dict[str, Any],
                 tokenizer: Tokenizer | None):
        self.model, self.config, self.out_dir, self.save = model.to(runtime.device), config, out_dir, save
        self.runtime, self.tokenizer = runtime, tokenizer
        self.optimizer = make_optimizer(model, config, runtime.device)
        self.scaler = torch.amp.GradScaler(runtime.device.type, enabled=Precision(runtime.precision).scales_loss)
        block, rank, world = model.config.block_size, runtime.rank, runtime.world_size
        self.sampler = WindowSampler(train_tokens, block, config.batch_size, config.grad_accum, config.seed, rank,
                                     world)
        count = config.eval_batches * config.batch_size * world
        self.eval_data = {
            split: eval_windows(tokens, block, count, config.seed, split, rank, world)
            for split, tokens in (("train", train_tokens), ("val", val_tokens))
        }
        self.train_tokens = len(train_tokens)
        self.monitor = OverfitMonitor(config.patience)
        self.progress = Progress()
        self.records: list[dict[str, Any]] = []  # the evaluations so far (rank 0 only)
        self.last_eval_step: int | None = None
        self.tensorboard: TensorBoardLog | None = None  # opened by `train`, after a resume has read the records
        settings = {k: v for k, v in to_dict(config).items() if k not in RESUMABLE_CHANGES}
        self.fingerprint = {**identity, "train": settings, "precision": runtime.precision, "world_size": world}
        torch.manual_seed(config.seed + rank)  # this process's dropout stream

    def trainable(self) -> dict[str, nn.Parameter]:
        return {name: p for name, p in self.model.named_parameters() if p.requires_grad}

    def restore(self) -> None:
        """Continue from `state.pt`, after checking that it belongs to this very run."""
        path = self.out_dir / STATE
        state = load_state(path)
        check_fingerprint(path, state["fingerprint"], self.fingerprint)
        params, saved = self.trainable(), state["model"]
        if set(saved) != set(params) or any(saved[k].shape != p.shape for k, p in params.items()):
            raise CheckpointError(f"{path} holds other parameters than the model trains: it cannot be resumed")
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(saved[name])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.monitor.load_state_dict(state["monitor"])
        self.progress = Progress(**state["progress"])
        self.last_eval_step = self.progress.step
        rng = state["rng"][self.runtime.rank]
        torch.set_rng_state(rng["cpu"])
        if "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"], self.runtime.device)
        if self.runtime.is_main:
            self.records = keep_metrics_until(self.out_dir / METRICS, self.progress.step)
            print(f"resuming {self.out_dir} at step {self.progress.step:,}")

    def lr(self) -> float:
        return lr_at(self.config, self.progress.step, schedule_progress(self.config, self.progress, self.train_tokens))

    def rng_states(self) -> list[dict[str, torch.Tensor]]:
        """Every process's RNG state (the dropout streams), gathered so that rank 0 can save them."""
        own = {"cpu": torch.get_rng_state()}
        if self.runtime.device.type == "cuda":
            own["cuda"] = torch.cuda.get_rng_state(self.runtime.device)
        if not self.runtime.distributed:
            return [own]
        states: list[Any] = [None] * self.runtime.world_size
        dist.all_gather_object(states, own)
        return states

    def elapsed(self, since: float, base: float) -> float:
        """Seconds of training over all sessions; under DDP every process takes the slowest one's clock, so that
        they agree on the learning rate and on when the budget ends."""
        seconds = base + time.perf_counter() - since
        if self.runtime.distributed and self.config.max_minutes is not None:
            clock = torch.tensor([seconds], dtype=torch.float64, device=self.runtime.device)
            seconds = self.runtime.all_reduce(clock, dist.ReduceOp.MAX).item()
        return seconds

    def checkpoint(self, lr: float, train_loss: float | None, grad_norm: float | None = None) -> bool:
        """Evaluate, then (rank 0) report and save everything a resume and a reader need; True to stop early."""
        record = self.measure(lr, train_loss, grad_norm)
        rng = self.rng_states()  # gathered from every process, so taken before the ranks part
        if self.runtime.is_main:
            self.report(record)
            self.add_sample(record)
            self.persist(record, rng)
        return record["overfitting"] and self.config.early_stop

    def measure(self, lr: float, train_loss: float | None, grad_norm: float | None) -> dict[str, Any]:
        """Evaluate both splits (on every process) and return this evaluation's record."""
        progress = self.progress
        metrics = evaluate_splits(self.model, self.eval_data, self.config.batch_size, self.runtime)
        is_best, overfitting = self.monitor.update(metrics["train_loss"], metrics["val_loss"])
        self.last_eval_step = progress.step
        return {
            "step": progress.step, "tokens": progress.tokens, "epoch": progress.epochs(self.train_tokens),
            "lr": lr, "loss": train_loss, "grad_norm": grad_norm, **metrics, "seconds": progress.seconds,
            "best": is_best, "overfitting": overfitting,
        }

    def report(self, record: dict[str, Any]) -> None:
        """Print the evaluation's row of the table (under its header, the first time) and an overfitting warning."""
        if not self.records:
            tqdm.write(table_header())
        tqdm.write(table_row(record))
        if record["overfitting"]:
            tqdm.write(f"warning: val loss rose for {self.config.patience} evaluations while train loss fell: the "
                       "model is overfitting" + (", stopping (--early-stop)" if self.config.early_stop else ""))

    def add_sample(self, record: dict[str, Any]) -> None:
        """Every `sample_every` evaluations, write a sample into the record and print it."""
        config, evaluations = self.config, len(self.monitor.history)
        if config.sample_every and self.tokenizer is not None and (evaluations - 1) % config.sample_every == 0:
            record["sample"] = self.sample()
            tqdm.write(f"--- sample at step {self.progress.step:,} ---\n{record['sample']}\n---")

    def persist(self, record: dict[str, Any], rng: list[dict[str, torch.Tensor]]) -> None:
        """Save the weights (latest, and best when it is), the metrics, TensorBoard events, the state that
        --resume continues from, and the curves."""
        self.save("latest", record)
        if record["best"]:
            self.save("best", record)
        append_metrics(self.out_dir / METRICS, record)
        if self.tensorboard is not None:
            self.tensorboard.write(record)
        self.records.append(record)
        save_state(self.out_dir / STATE, {
            "fingerprint": self.fingerprint,
            "progress": vars(self.progress).copy(),
            "model": {name: p.detach().cpu() for name, p in self.trainable().items()},
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "monitor": self.monitor.state_dict(),
            "rng": rng,
        })
        plot_curves(self.records, self.out_dir / CURVES)

    def sample(self) -> str:
        """What the model writes now, from the decoder that serves it later (on the model's device, with its own
        random stream: the run's RNG is left untouched, so sampling does not change the run)."""
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.compiler.set_stance("force_eager"):
                params = SamplingParams(max_new_tokens=self.config.sample_tokens, seed=self.config.seed)
                (completion,) = generate(self.model, self.tokenizer, [""], params)
        finally:
            self.model.train(was_training)
        return completion.text

    def train(self) -> dict[str, Any]:
        if self.config.tensorboard is not None and self.runtime.is_main:
            self.tensorboard = TensorBoardLog(log_dir(self.config.tensorboard, self.out_dir),
                                              self.records[-1] if self.records else None)
        try:
            return self._train()
        finally:
            if self.tensorboard is not None:
                self.tensorboard.close()

    def interval_means(self, sums: torch.Tensor, steps: int) -> tuple[float, float]:
        """The mean training loss and gradient norm of the `steps` steps since the last evaluation, over every
        process (`sums` holds their sums)."""
        loss, grad_norm = (self.runtime.all_reduce(sums / steps) / self.runtime.world_size).tolist()
        return loss, grad_norm

    def _train(self) -> dict[str, Any]:
        config, progress, runtime = self.config, self.progress, self.runtime
        if config.compile:
            compile_blocks(self.model)
        model = self.model
        if runtime.distributed:
            device_ids = [runtime.device.index] if runtime.device.type == "cuda" else None
            model = DistributedDataParallel(self.model, device_ids=device_ids)
        stop = False
        if self.last_eval_step is None:
            stop = self.checkpoint(self.lr(), None)
        # The clock starts after the baseline evaluation, so that a short wall-clock budget on a busy machine
        # still trains; later evaluations count against the budget.
        since, base = time.perf_counter(), progress.seconds
        bar = tqdm(total=100.0, unit="%", disable=not runtime.is_main, dynamic_ncols=True,
                   bar_format="{l_bar}{bar}| {elapsed}<{remaining}{postfix}")
        bar.update(min(100.0, 100 * budget_used(config, progress, self.train_tokens)))
        start_tokens, sums, losses = progress.tokens, torch.zeros(2, device=runtime.device), 0  # loss, grad norm
        shown = since
        while not stop:
            progress.seconds = self.elapsed(since, base)
            used = budget_used(config, progress, self.train_tokens)
            bar.update(max(0.0, min(100.0, 100 * used) - bar.n))
            if used >= 1:
                break
            lr = self.lr()
            set_lr(self.optimizer, lr)
            loss, grad_norm = train_step(model, self.optimizer, self.sampler.micro_batches(progress.step), runtime,
                                         config.grad_clip, self.scaler)
            progress.step += 1
            progress.tokens += self.sampler.tokens_per_step
            sums += torch.stack((loss, grad_norm.to(loss.dtype)))
            losses += 1
            if time.perf_counter() - shown >= SHOW_EVERY:  # reading the loss waits for the device: only now
                shown = time.perf_counter()
                rate = (progress.tokens - start_tokens) / max(shown - since, 1e-9)
                bar.set_postfix_str(f"step {progress.step:,}, loss {loss.item():.4f}, {rate:,.0f} tok/s")
            if progress.step % config.eval_interval == 0:
                train_loss, grad_norm = self.interval_means(sums, losses)
                progress.seconds = self.elapsed(since, base)
                stop = self.checkpoint(lr, train_loss, grad_norm)
                sums, losses = torch.zeros(2, device=runtime.device), 0
        bar.close()
        if self.last_eval_step != progress.step:
            means = self.interval_means(sums, losses) if losses else (None, None)
            progress.seconds = self.elapsed(since, base)
            self.checkpoint(self.lr(), *means)
        return self.records[-1] if self.records else {}


def fit(model: nn.Module, config: TrainConfig, train_tokens: np.ndarray, val_tokens: np.ndarray,
        out_dir: str | Path, save: SaveHook, runtime: Runtime, *, identity: dict[str, Any],
        resume: bool = False, tokenizer: Tokenizer | None = None) -> dict[str, Any]:
    """Train `model`'s trainable parameters on `train_tokens` until the budget ends; return the last evaluation.

    `identity` describes what the run is made of (model config, tokenizer, data); with the settings it forms the
    fingerprint that a resumed state must match. `tokenizer` enables samples (`sample_every`).
    """
    out_dir = Path(out_dir)
    if not resume and any((out_dir / name).exists() for name in (STATE, METRICS, CONFIG)):
        raise CheckpointError(
            f"{out_dir} already holds a run: pass --resume to continue it, or choose another --out"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    run = _Run(model, config, train_tokens, val_tokens, out_dir, save, runtime, identity, tokenizer)
    if resume:
        run.restore()
    return run.train()


def resolve_run_config(cls: type[C], out: str | Path, resume: bool, config_file: str | Path | None = None,
                       flags: dict[str, Any] | None = None, record: str = CONFIG) -> C:
    """The settings of a run: defaults <- TOML file <- flags; a resumed run starts from the settings it recorded
    in `out/record`, and refuses a change to any that shapes its trajectory (budgets, logging and hardware may
    change)."""
    layers, where = [], []
    recorded = None
    if resume:
        recorded = read_json(Path(out) / record, "the run's recorded settings", CheckpointError).get("train_config")
        if not isinstance(recorded, dict):
            raise CheckpointError(f"{Path(out) / record} records no train_config: it was not written by training")
        layers.append(recorded)
        where.append(str(Path(out) / record))
    if config_file is not None:
        layers.append(read_toml(config_file))
        where.append(str(config_file))
    layers.append(flags or {})
    where.append("command line")
    config = resolve(cls, *layers, where=tuple(where))
    if recorded is not None:
        recorded = to_dict(resolve(cls, recorded, where=(where[0],)))  # as the settings hold them (tuples, floats)
        changed = [k for k, v in to_dict(config).items() if k not in RESUMABLE_CHANGES and recorded.get(k) != v]
        if changed:
            first = changed[0]
            raise ConfigError(
                f"--{first.replace('_', '-')} {to_dict(config)[first]!r}: the run was started with "
                f"{recorded.get(first)!r}, and a resumed run keeps its settings except budgets, logging and "
                "hardware; start a new run (another --out) to change it"
            )
    return config


def pretrain(data: str | Path, out: str | Path, config: PretrainConfig | None = None,
             resume: bool = False) -> dict[str, Any]:
    """Train a model of `config.preset` on the dataset at `data`, writing the run to `out`.

    The run directory receives model.safetensors and config.json (model, tokenizer, train_config, progress) at
    every evaluation, best.safetensors at the lowest val loss, and state.pt, metrics.jsonl and curves.png.
    Returns the last evaluation's record.
    """
    config = config or PretrainConfig()
    dataset = TokenDataset(data)
    out = Path(out)
    runtime = setup_runtime(config.device, config.precision, config.threads)
    try:
        model_config = preset_config(config.preset, dataset.vocab_size, **config.model_overrides())
        torch.manual_seed(config.seed)
        model = GPT(model_config)
        if runtime.is_main:
            c = model_config
            print(f"{config.preset}: {model.num_params() / 1e6:.2f}M parameters ({c.n_layer} layers, {c.n_head} "
                  f"heads, {c.n_embd} wide, context {c.block_size}, vocabulary {c.vocab_size}) on "
                  f"{runtime.device} in {runtime.precision}" + (f", {runtime.world_size} processes"
                                                               if runtime.distributed else ""))
        train_config = to_dict(config)

        def save(kind: str, record: dict[str, Any]) -> None:
            if kind == "best":
                save_weights(out / BEST, model)
            else:
                progress = {k: v for k, v in record.items() if k != "sample"}
                save_run(out, model, dataset.tokenizer, train_config=train_config, data=str(dataset.path),
                         progress=progress)

        identity = {
            "model": model_config.to_dict(),
            "tokenizer": dataset.tokenizer.to_json(),
            "data": {split: int(dataset.meta["tokens"][split]) for split in ("train", "val")},
        }
        return fit(model, config, dataset.tokens("train"), dataset.tokens("val"), out, save, runtime,
                   identity=identity, resume=resume, tokenizer=dataset.tokenizer)
    finally:
        teardown(runtime)
