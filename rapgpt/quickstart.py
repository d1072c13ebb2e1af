"""`rapgpt quickstart`: the whole pipeline on the bundled sample corpus, in a few minutes on a laptop CPU.

It prepares the corpus with one artist held out, pretrains a small character model on the others, fine-tunes a
LoRA adapter on the held-out artist, prints lyrics from both, writes an evaluation report, and serves the two
models in the browser. Every step is the same function a command runs, so the run directory it leaves behind
(`runs/quickstart` by default) is an ordinary set of datasets, runs and reports to continue from.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from rapgpt.errors import ConfigError
from rapgpt.options import setting
from rapgpt.serve.config import ServeConfig
from rapgpt.training.config import FinetuneConfig, PretrainConfig

# A model that learns the sample corpus's spelling and line shapes within minutes on two cores: smaller and with
# a shorter context than char-10m, trained with a large learning rate and some dropout for the small corpus.
QUICK_MODEL = PretrainConfig(
    preset="char-10m", n_layer=4, n_head=4, n_embd=256, block_size=128, dropout=0.1, batch_size=32, lr=3e-3,
    warmup_steps=30, eval_interval=100,
)
QUICK_ADAPTER = FinetuneConfig(batch_size=32, lr=3e-3, warmup_steps=10, eval_interval=50)


@dataclass(frozen=True)
class QuickstartConfig:
    artist: str = setting("verbose-vance", "the sample artist held out and fine-tuned on")
    train_minutes: float = setting(3.0, "wall-clock budget of the pretraining", metavar="MINUTES")
    finetune_minutes: float = setting(1.0, "wall-clock budget of the fine-tuning", metavar="MINUTES")
    # Empty: the start of a song (the model writes from the end-of-text token).
    prompt: str = setting("", "the start of the lyrics generated at the end (empty: a new song)", metavar="TEXT")
    evaluate: bool = setting(True, "write the evaluation report (--no-eval skips it)", name="eval")
    serve: bool = setting(True, "serve both models at the end (--no-serve stops after the report)")
    port: int = setting(ServeConfig.port, "port to serve on (127.0.0.1)")

    def __post_init__(self) -> None:
        if not (self.train_minutes > 0 and self.finetune_minutes > 0):
            raise ConfigError("--train-minutes and --finetune-minutes must be positive")


def quickstart(out: str | Path = "runs/quickstart", config: QuickstartConfig | None = None,
               force: bool = False) -> Path:
    """Run the pipeline into `out` and return it; with `config.serve`, end by serving both models until interrupted."""
    from rapgpt.data.prepare import prepare
    from rapgpt.generate import SamplingParams
    from rapgpt.generate.command import generate_command
    from rapgpt.training.finetune import finetune
    from rapgpt.training.loop import pretrain

    config = config or QuickstartConfig()
    artist, prompt, port = config.artist, config.prompt, config.port
    train_minutes, finetune_minutes = config.train_minutes, config.finetune_minutes
    out = Path(out)
    if out.exists():
        if not force:
            raise ConfigError(f"{out} already exists: pass --force to start it again, or choose another --out")
        shutil.rmtree(out)
    data, artist_data, all_data = out / "data", out / "artist-data", out / "all-data"
    base, adapter = out / "base", out / "adapter"

    _step(f"1/5 preparing the sample corpus, {artist} held out for fine-tuning")
    prepare(out=data, exclude_artists=[artist])
    prepare(out=artist_data, artists=[artist], vocab_from=data)
    prepare(out=all_data, vocab_from=data)  # every artist, for the evaluation's references

    _step(f"2/5 pretraining a character model for {_minutes(train_minutes)}")
    pretrain(data, base, replace(QUICK_MODEL, max_minutes=train_minutes))

    _step(f"3/5 fine-tuning a LoRA adapter on {artist} for {_minutes(finetune_minutes)}")
    finetune(base, artist_data, adapter, replace(QUICK_ADAPTER, max_minutes=finetune_minutes))

    params = SamplingParams(max_new_tokens=300, temperature=0.8, seed=0)
    for name, adapter_dir in (("the base model", None), (f"the {artist} adapter", adapter)):
        _step(f"4/5 lyrics from {name}")
        generate_command(base, prompt, params, adapter=adapter_dir)
        print()

    if config.evaluate:
        from rapgpt.evaluate.config import EvalConfig
        from rapgpt.evaluate.run import evaluate as evaluate_run
        from rapgpt.serve.judge import DB_NAME

        _step("5/5 evaluating the base model and the adapter")
        # The report's excerpts also fill the pool of the studio's "Real or model?" page (the server's default).
        report = evaluate_run(base, all_data, out / "report", adapter=adapter, config=EvalConfig(
            artist=artist, num_samples=2, max_new_tokens=200, reference_chunks=120, chunk_lines=4,
            judge_db=str(base / DB_NAME)))
        print(f"report written to {report}")
    if config.serve:
        from rapgpt.serve.server import serve as serve_models

        _step("serving both models (Ctrl-C to stop)")
        serve_models(base, [f"{artist}={adapter}"], ServeConfig(port=port))
    return out


def _step(message: str) -> None:
    print(f"\n== rapgpt quickstart: {message}", flush=True)


def _minutes(minutes: float) -> str:
    return f"{minutes:g} minute{'' if minutes == 1 else 's'}"
