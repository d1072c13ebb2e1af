import pytest
import torch

from rapgpt.errors import CheckpointError
from rapgpt.training.state import check_fingerprint, content_digest, load_state, save_state


def example_state():
    return {"model": {"w": torch.randn(30, 20), "b": torch.zeros(20)}, "step": 7,
            "optimizer": {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 1e-3, "params": [0]}]},
            "rng": [{"cpu": torch.get_rng_state()}]}


def test_state_round_trips_exactly(tmp_path):
    state = example_state()
    save_state(tmp_path / "state.pt", state)
    loaded = load_state(tmp_path / "state.pt")
    assert torch.equal(loaded["model"]["w"], state["model"]["w"]) and loaded["step"] == 7
    assert torch.equal(loaded["rng"][0]["cpu"], state["rng"][0]["cpu"])
    assert list(tmp_path.iterdir()) == [tmp_path / "state.pt"]  # no temporary file left behind


def test_flipped_byte_in_the_tensor_data_is_refused(tmp_path):
    path = tmp_path / "state.pt"
    save_state(path, example_state())
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_state(path)


@pytest.mark.parametrize("keep", [0.0, 0.5, 0.99])
def test_truncated_or_empty_state_is_refused(tmp_path, keep):
    path = tmp_path / "state.pt"
    save_state(path, example_state())
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_state(path)


def test_missing_state_and_foreign_file_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no resumable state"):
        load_state(tmp_path / "state.pt")
    torch.save({"something": torch.ones(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a rapgpt training state"):
        load_state(tmp_path / "other.pt")


def test_digest_sees_values_keys_dtypes_and_shapes():
    base = {"a": torch.ones(2, 3), "n": 1}
    variants = [{"a": torch.ones(3, 2), "n": 1}, {"a": torch.ones(2, 3, dtype=torch.float64), "n": 1},
                {"b": torch.ones(2, 3), "n": 1}, {"a": torch.ones(2, 3), "n": 2}]
    assert content_digest(base) == content_digest({"n": 1, "a": torch.ones(2, 3)})
    assert len({content_digest(v) for v in variants} | {content_digest(base)}) == 5


def test_fingerprint_mismatch_names_what_differs():
    saved = {"model": {"n_layer": 2, "n_embd": 32}, "world_size": 1}
    check_fingerprint("s.pt", saved, {"model": {"n_layer": 2, "n_embd": 32}, "world_size": 1})
    with pytest.raises(CheckpointError, match=r"model.n_embd: saved 32, now 64; world_size: saved 1, now 2"):
        check_fingerprint("s.pt", saved, {"model": {"n_layer": 2, "n_embd": 64}, "world_size": 2})


def test_a_setting_added_since_the_run_started_is_no_difference_while_it_is_off():
    saved = {"train": {"lr": 1e-3}, "world_size": 1}
    check_fingerprint("s.pt", saved, {"train": {"lr": 1e-3, "embedding_lr": None}, "world_size": 1})
    with pytest.raises(CheckpointError, match=r"train.embedding_lr: saved null, now 0.001"):
        check_fingerprint("s.pt", saved, {"train": {"lr": 1e-3, "embedding_lr": 1e-3}, "world_size": 1})
