import pytest

from rapgpt.fileio import staged_dir


def test_staged_dir_appears_only_when_the_block_completes(tmp_path):
    with staged_dir(tmp_path / "out") as tmp:
        (tmp / "a.txt").write_text("new")
        assert not (tmp_path / "out").exists()
    assert (tmp_path / "out" / "a.txt").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_staged_dir_failure_keeps_the_old_directory_and_leaves_no_partial_one(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), staged_dir(tmp_path / "out", force=True) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("crash")
    assert (tmp_path / "out" / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_staged_dir_refuses_a_non_empty_directory_unless_forced(tmp_path):
    (tmp_path / "out").mkdir()
    with staged_dir(tmp_path / "out") as tmp:  # an empty directory is not in the way
        (tmp / "a.txt").write_text("one")
    with pytest.raises(ValueError, match="already exists"), staged_dir(tmp_path / "out", error=ValueError):
        pass
    with staged_dir(tmp_path / "out", force=True) as tmp:
        (tmp / "b.txt").write_text("two")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_staged_dir_refuses_to_replace_its_own_input_even_when_forced(tmp_path):
    (tmp_path / "run" / "sub").mkdir(parents=True)
    for out in (tmp_path / "run", tmp_path, tmp_path / "run" / ".." / "run"):
        keep = [tmp_path / "run" / "sub"]
        with pytest.raises(ValueError, match="choose another"), staged_dir(out, True, ValueError, keep=keep):
            pass
    assert (tmp_path / "run" / "sub").is_dir()
    with staged_dir(tmp_path / "run" / "sub" / "out", keep=[tmp_path / "run"]) as tmp:  # inside the input is fine
        (tmp / "a.txt").write_text("ok")
