from PIL import Image
from typer.testing import CliRunner

from fissure.cli import app
from fissure.world import class_names

runner = CliRunner()


def test_preview_writes_a_contact_sheet(tmp_path):
    out = tmp_path / "sheet.png"
    result = runner.invoke(app, ["world", "preview", "--n", "4", "--out", str(out), "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert Image.open(out).size[0] > 64


def test_preview_of_one_set(tmp_path):
    out = tmp_path / "sheet.png"
    args = ["world", "preview", "--n", "2", "--out", str(out), "--emoji-set", "openmoji"]
    assert runner.invoke(app, args).exit_code == 0


def test_unknown_emoji_set_exits_2_with_one_line(tmp_path):
    args = ["world", "preview", "--out", str(tmp_path / "new" / "x.png"), "--emoji-set", "apple"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "valid sets" in result.output
    assert not (tmp_path / "new").exists()  # refused before any folder is made


def test_a_negative_seed_leaves_no_folder(tmp_path):
    args = ["world", "preview", "--out", str(tmp_path / "new" / "x.png"), "--seed", "-1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "non-negative" in result.output
    assert not (tmp_path / "new").exists()


def test_no_scenes_exits_2_with_one_line(tmp_path):
    result = runner.invoke(app, ["world", "preview", "--n", "0", "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "--n" in result.output


def test_an_out_without_image_extension_exits_2_with_one_line(tmp_path):
    result = runner.invoke(app, ["world", "preview", "--n", "1", "--out", str(tmp_path / "sheet")])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "end it in .png" in result.output


def test_an_unwritable_out_exits_2_with_one_line(tmp_path):
    (tmp_path / "a-file").write_text("")
    result = runner.invoke(app, ["world", "preview", "--out", str(tmp_path / "a-file" / "x.png")])
    assert result.exit_code == 2, result.output
    assert result.output.strip().count("\n") == 0 and "cannot write" in result.output


def test_classes_prints_every_class():
    result = runner.invoke(app, ["world", "classes"])
    assert result.exit_code == 0
    assert all(name in result.output for name in class_names())
