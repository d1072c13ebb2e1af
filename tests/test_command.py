import io

import pytest
import torch

from rapgpt.checkpoint import save_run
from rapgpt.cli import main
from rapgpt.data.tokenizer import EOT_TEXT, CharTokenizer
from rapgpt.generate import SamplingParams, generate
from rapgpt.generate.command import generate_command
from rapgpt.generate.params import GenerateConfig
from rapgpt.model import GPT, GPTConfig

CHARS = "abcdefghijklmnopqrstuvwxyz \n,.'"


@pytest.fixture
def run(tmp_path):
    tok = CharTokenizer(list(CHARS))
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=32)).eval()
    save_run(tmp_path / "run", model, tok)
    return tmp_path / "run", model, tok


def test_lyrics_alone_go_to_stdout_prompt_first(run, capsys):
    path, model, tok = run
    code = main(["generate", "--model", str(path), "--prompt", "yo\\nhey", "--max-new-tokens", "20", "--seed", "5",
                 "--temperature", "1.0"])
    out, err = capsys.readouterr()
    (expected,) = generate(model, tok, ["yo\nhey"], SamplingParams(max_new_tokens=20, seed=5, temperature=1.0))
    assert code == 0
    assert out == "yo\nhey" + expected.text + "\n"
    assert "KiB in memory" in err and "seed 5" in err and "tokens/s" in err


def test_several_samples_are_separated_by_end_of_text_lines(run, capsys):
    path, model, tok = run
    main(["generate", "--model", str(path), "--prompt", "a", "--num-samples", "3", "--seed", "1",
          "--max-new-tokens", "10"])
    out, _ = capsys.readouterr()
    texts = [c.text for c in generate(model, tok, ["a"] * 3, SamplingParams(max_new_tokens=10, seed=1))]
    assert out == f"\n{EOT_TEXT}\n".join("a" + t for t in texts) + "\n"


def test_cache_info_prints_the_formula_and_the_allocated_size(run, capsys):
    path, *_ = run
    main(["generate", "--model", str(path), "--cache-info", "--max-new-tokens", "2", "--precision", "bf16"])
    _, err = capsys.readouterr()
    # 1 x 2 layers x 2 heads x 32 context x 16 head_dim x 2 x 2 bytes = 8 KiB
    assert "batch 1 x 2 layers x 2 heads x 32 context x 16 head_dim x 2 (K and V) x 2 bytes (bf16)" in err
    assert "= 8.0 KiB; allocated 8.0 KiB" in err


@pytest.mark.parametrize("args, message", [
    (["--temperature", "-1"], "temperature must be a number >= 0"),
    (["--top-p", "1.5"], "top_p must be in (0, 1]"),
    (["--top-k", "0"], "top_k must be a positive integer"),
    (["--num-samples", "0"], "num_samples must be a positive integer"),
    (["--threads", "0"], "threads must be a positive integer"),
    (["--prompt", "Café"], "'C', 'é'"),
    *([(["--device", "cuda"], "PyTorch sees no CUDA GPU")] if not torch.cuda.is_available() else []),
])
def test_bad_input_is_one_clear_line_on_stderr(run, capsys, args, message):
    path, *_ = run
    code = main(["generate", "--model", str(path), *args])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    (line,) = [x for x in err.splitlines() if "error" in x]
    assert line.startswith("rapgpt generate: error:") and message in line


def test_a_missing_run_directory_is_reported(tmp_path, capsys):
    assert main(["generate", "--model", str(tmp_path / "nope")]) == 2
    assert "run directory not found" in capsys.readouterr().err


class FlushLog(io.StringIO):
    """Text written so far, as the reader saw it at each flush."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def flush(self) -> None:
        self.seen.append(self.getvalue())


@pytest.mark.parametrize("interval", [0.0, 60.0])
def test_streamed_text_is_flushed_at_most_every_stream_interval_but_the_first_and_the_last_at_once(run, interval):
    path, model, tok = run
    params = SamplingParams(max_new_tokens=20, seed=5, temperature=1.0)
    out = FlushLog()
    generate_command(path, "yo", params, GenerateConfig(stream_interval=interval), out=out, err=io.StringIO())
    (expected,) = generate(model, tok, ["yo"], params)
    if interval:  # the prompt, the first token, then everything else with the end
        assert out.seen == ["yo", "yo" + expected.text[:1], "yo" + expected.text + "\n"]
    else:  # the prompt, each token, the end
        assert out.seen == ["yo"] + ["yo" + expected.text[:n] for n in range(1, 21)] + ["yo" + expected.text + "\n"]


def test_a_negative_stream_interval_is_refused(run, capsys):
    path, *_ = run
    assert main(["generate", "--model", str(path), "--stream-interval", "-1"]) != 0
    assert "stream interval must be 0 or more seconds" in capsys.readouterr().err
