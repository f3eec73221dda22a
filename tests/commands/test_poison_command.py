"""`fissure poison`: make, fine-tune and measure from the command line; bad input in one line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from fissure.cli import app

runner = CliRunner()


def _one_line_error(args: list[str], expected: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.output.strip().count("\n") == 0 and expected in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["make", "--source", "dgo", "--target", "cat"], "unknown concept 'dgo'"),
        (["make", "--source", "dog", "--target", "dog"], "both 'dog'"),
        (["make", "--source", "dog", "--target", "cat", "--epsilon", "1.5"], "(0, 1]"),
        (["make", "--source", "dog", "--target", "cat", "--kind", "clean"], "unknown poison kind"),
        (["sweep", "--concepts", "0,1,64"], "between 0 and 52"),
        (["sweep", "--concepts", "0,one"], "comma list of whole numbers"),
        (["measure", "--model", "m", "--pair", "dog-cat"], "SOURCE:TARGET"),
        (["finetune", "--poisons", "missing.pt"], "fissure poison make"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, expected, tmp_path):
    _one_line_error(["poison", *args, "--out", str(tmp_path / "out")], expected)


def test_make_finetune_and_measure_end_to_end(tiny_sd1_dir, tmp_path):
    made = runner.invoke(
        app,
        ["poison", "make", "--source", "dog", "--target", "cat", "--count", "2",
         "--out", str(tmp_path / "poisons")],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    poisons = tmp_path / "poisons" / "dirty-label-2-dog-to-cat.pt"
    assert poisons.is_file() and poisons.with_suffix(".png").is_file()
    tuned = runner.invoke(
        app,
        ["poison", "finetune", "--poisons", str(poisons), "--model", str(tiny_sd1_dir),
         "--steps", "2", "--batch-size", "2", "--clean-scenes", "4", "--out", str(tmp_path / "run")],
    )  # fmt: skip
    assert tuned.exit_code == 0, tuned.output
    assert "6 pairs (2 poisoned)" in tuned.output
    measured = runner.invoke(
        app,
        ["poison", "measure", "--model", str(tmp_path / "run" / "model"), "--pair", "dog:cat",
         "--seeds", "1", "--sampling-steps", "1", "--out", str(tmp_path / "measures")],
    )  # fmt: skip
    assert measured.exit_code == 0, measured.output
    results = json.loads((tmp_path / "measures" / "measures.json").read_text())
    assert results["poison_success"]["total"] == 1
    assert results["unpoisoned_accuracy"]["total"] == 102
    assert (tmp_path / "measures" / "attention.png").is_file()
