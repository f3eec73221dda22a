"""Files and folders written whole or not at all."""

from __future__ import annotations

import pytest

from fissure.atomic import atomic_folder, atomic_write


class Killed(Exception):
    pass


def test_an_interrupted_write_keeps_the_old_file_and_leaves_no_partial(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_text("old")
    with pytest.raises(Killed), atomic_write(path) as partial:
        partial.write_text("half")
        raise Killed
    assert path.read_text() == "old" and sorted(tmp_path.iterdir()) == [path]
    with atomic_write(path) as partial:
        partial.write_text("new")
    assert path.read_text() == "new" and sorted(tmp_path.iterdir()) == [path]


def test_an_interrupted_folder_keeps_the_old_folder(tmp_path):
    model = tmp_path / "emoji-sd"
    model.mkdir()
    (model / "old.json").write_text("{}")
    with pytest.raises(Killed), atomic_folder(model) as staging:
        (staging / "new.json").write_text("{}")
        raise Killed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emoji-sd"]
    assert [p.name for p in model.iterdir()] == ["old.json"]
    with atomic_folder(model) as staging:
        (staging / "new.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emoji-sd"]
    assert [p.name for p in model.iterdir()] == ["new.json"]


def test_a_kill_between_the_two_renames_is_repaired_by_the_next_call(tmp_path):
    """The folder was left only as emoji-sd.previous, and the next call deleted it."""
    model = tmp_path / "emoji-sd"
    (tmp_path / "emoji-sd.previous").mkdir()
    (tmp_path / "emoji-sd.previous" / "old.json").write_text("{}")
    with pytest.raises(Killed), atomic_folder(model):
        raise Killed
    assert [p.name for p in model.iterdir()] == ["old.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emoji-sd"]
