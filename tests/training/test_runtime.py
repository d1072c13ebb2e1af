import pytest
import torch

from rapgpt.errors import ConfigError
from rapgpt.training.runtime import Runtime, bf16_is_fast, pick_device, pick_precision, setup_runtime


def test_fp16_needs_cuda_and_auto_follows_the_hardware():
    cpu = torch.device("cpu")
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        pick_precision("fp16", cpu)
    assert pick_precision("auto", cpu) == ("bf16" if bf16_is_fast(cpu) else "fp32")
    assert pick_precision("bf16", cpu) == "bf16"


def test_unknown_or_missing_devices_are_refused():
    with pytest.raises(ConfigError, match="unknown device"):
        pick_device("tpu7")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            pick_device("cuda")


def test_single_process_runtime_and_autocast():
    runtime = setup_runtime("cpu", "bf16")
    assert (runtime.rank, runtime.world_size, runtime.is_main, runtime.distributed) == (0, 1, True, False)
    with runtime.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with Runtime(torch.device("cpu"), "fp32").autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
