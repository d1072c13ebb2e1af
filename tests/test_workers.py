import pytest

from rapgpt.data.workers import Workers, batches
from rapgpt.errors import ConfigError


def square_all(xs: list[int]) -> list[int]:
    return [x * x for x in xs]


def test_batches_cut_a_stream_into_lists():
    assert list(batches(iter(range(7)), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batches([], 3)) == []


@pytest.mark.parametrize("n", [1, 2])
def test_results_come_back_in_order_and_input_is_read_only_a_little_ahead(n):
    consumed = []

    def stream():
        for i in range(40):
            consumed.append(i)
            yield [i, i + 1]

    with Workers(n) as workers:
        results = workers.map(square_all, stream(), lambda batch: batch)
        first_batch, first = next(results)
        assert (first_batch, first) == ([0, 1], [0, 1])
        assert len(consumed) <= 2 * n + 1  # streaming: not the whole input
        rest = list(results)
    assert [r for _, r in rest] == [[i * i, (i + 1) ** 2] for i in range(1, 40)]


def test_worker_count_must_be_positive():
    with pytest.raises(ConfigError, match="--workers"):
        Workers(0)
