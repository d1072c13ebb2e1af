import json

from rapgpt.training.metrics import append_metrics, keep_metrics_until, read_metrics, table_header, table_row

RECORD = {"step": 100, "tokens": 409600, "train_loss": 1.23456, "val_loss": 1.5, "train_acc": 0.61,
          "val_acc": 0.5525, "lr": 0.001, "seconds": 73.2}


def test_table_rows_line_up_with_the_header():
    header, row = table_header(), table_row(RECORD)
    assert len(header) == len(row)
    assert row.split() == ["100", "409,600", "1.2346", "1.5000", "61.00%", "55.25%", "1.00e-03", "73s"]
    assert header.split()[:3] == ["step", "tokens", "train"]


def test_torn_last_line_is_skipped_and_later_records_are_dropped_on_resume(tmp_path):
    path = tmp_path / "metrics.jsonl"
    for step in (0, 10, 20):
        append_metrics(path, {**RECORD, "step": step})
    with open(path, "a") as f:
        f.write('{"step": 30, "tok')  # a crash while appending
    assert [r["step"] for r in read_metrics(path)] == [0, 10, 20]
    assert [r["step"] for r in keep_metrics_until(path, 10)] == [0, 10]
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [0, 10]
