"""The default decode thread count: physical cores (SMT siblings once), capped, OMP_NUM_THREADS first."""

from __future__ import annotations

import torch

from rapgpt.generate import threads


def fake_topology(root, cores: list[tuple[int, int]]) -> None:
    """CPU i sits on (package, core) = cores[i], as /sys/devices/system/cpu lays it out."""
    for cpu, (package, core) in enumerate(cores):
        topology = root / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text(f"{package}\n")
        (topology / "core_id").write_text(f"{core}\n")


def test_smt_siblings_count_as_one_core(tmp_path, monkeypatch):
    fake_topology(tmp_path, [(0, 0), (0, 1), (0, 0), (0, 1), (1, 0), (1, 0)])
    monkeypatch.setattr(threads, "CPU_TOPOLOGY", tmp_path)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(6)))
    assert threads.physical_cores() == 3


def test_only_cpus_the_process_may_use_count(tmp_path, monkeypatch):
    fake_topology(tmp_path, [(0, 0), (0, 1), (0, 2), (0, 3)])
    monkeypatch.setattr(threads, "CPU_TOPOLOGY", tmp_path)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {1, 3})
    assert threads.physical_cores() == 2


def test_unreadable_topology_counts_every_cpu(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "CPU_TOPOLOGY", tmp_path / "missing")
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2})
    assert threads.physical_cores() == 3


def test_decode_threads_are_capped(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "physical_cores", lambda: 64)
    assert threads.decode_threads() == threads.DECODE_MAX_THREADS
    monkeypatch.setattr(threads, "physical_cores", lambda: 2)
    assert threads.decode_threads() == 2


def test_omp_num_threads_wins(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(threads, "physical_cores", lambda: 4)
    with threads.torch_threads(3):
        assert threads.decode_threads() == 3  # what torch runs with, which OMP_NUM_THREADS set at start-up


def test_torch_threads_restores_the_count():
    before = torch.get_num_threads()
    with threads.torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
