"""Run under `torchrun` by tests/test_train.py: train a tiny model with `fit` and save each process's weights."""

import json
import sys
from pathlib import Path

import torch

from rapgpt.checkpoint import save_weights
from rapgpt.data.dataset import TokenDataset
from rapgpt.model import GPT, preset_config
from rapgpt.training.config import PretrainConfig
from rapgpt.training.loop import fit
from rapgpt.training.runtime import setup_runtime, teardown

data, out, settings = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
config = PretrainConfig(**settings)
dataset = TokenDataset(data)
runtime = setup_runtime(config.device, config.precision, config.threads)
torch.manual_seed(config.seed)
model = GPT(preset_config(config.preset, dataset.vocab_size, **config.model_overrides()))
fit(model, config, dataset.tokens("train"), dataset.tokens("val"), out, lambda kind, record: None, runtime,
    identity={})
save_weights(out / f"rank{runtime.rank}.safetensors", model)
teardown(runtime)
