"""The CLI: --help, --version, generate end to end, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

import fissure
from fissure.cli import app
from fissure.results import ResultsStore

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_help_and_version():
    assert invoke("--help").exit_code == 0
    assert "generate" in invoke("--help").output
    result = invoke("--version")
    assert result.exit_code == 0
    assert fissure.__version__ in result.output


def test_generate_end_to_end(tiny_pipeline_dir, tmp_path):
    out = tmp_path / "out"
    result = invoke(
        "generate",
        "--model",
        tiny_pipeline_dir,
        "-p",
        "a dog",
        "-p",
        "a red apple",
        "--seeds",
        "0-1",
        "--steps",
        "2",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("*-seed*.png"))) == 4
    assert (out / "contact_sheet.png").is_file()
    records = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert {r["seed"] for r in records} == {0, 1}
    assert records[0]["model"] == str(tiny_pipeline_dir)
    options = ["--seeds", "0", "--steps", "2", "--height", "48", "--width", "32"]
    sized = invoke("generate", "--model", tiny_pipeline_dir, "-p", "a dog", *options,
                   "--out", tmp_path / "sized")  # fmt: skip
    assert sized.exit_code == 0, sized.output
    (png,) = (tmp_path / "sized").glob("*-seed0.png")
    assert Image.open(png).size == (32, 48)


def test_same_seed_same_png_across_runs(tiny_sd1_dir, tmp_path):
    for name in ("a", "b"):
        result = invoke(
            "generate",
            "-m",
            tiny_sd1_dir,
            "-p",
            "a dog",
            "--seeds",
            "4",
            "--steps",
            "2",
            "--out",
            tmp_path / name,
        )
        assert result.exit_code == 0, result.output
    pngs = [next((tmp_path / name).glob("*.png")).read_bytes() for name in ("a", "b")]
    assert pngs[0] == pngs[1]


def _unwritable(tmp_path: Path) -> Path:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    return blocker / "out"  # a folder cannot be made inside a file, even by root


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "/no/such/folder"], "no such model folder"),
        (["--prompt", ""], "empty prompt"),
        (["--prompt", "x" * 90], "is 90 tokens long"),
        (["--seeds", "9-3"], "bad seed range"),
        (["--seeds", "zero"], "bad seed range"),
        (["--dtype", "float16"], "float16 is not supported on the CPU"),
        (["--steps", "0"], "--steps"),
        (["--guidance", "nan"], "guidance must be a finite number"),  # was written as NaN
    ],
)
def test_bad_input_is_one_line_and_exit_2(tiny_sd1_dir, tmp_path, extra, message):
    args = {
        "--model": str(tiny_sd1_dir),
        "--prompt": "a dog",
        "--out": str(tmp_path / "o"),
        "--steps": "1",
        "--seeds": "0",
    }
    for flag, value in zip(extra[::2], extra[1::2], strict=True):
        args[flag] = value
    result = invoke("generate", *[item for pair in args.items() for item in pair])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()  # a refusal leaves no empty folder


def test_not_a_pipeline_and_unwritable_out(tiny_sd1_dir, tmp_path):
    result = invoke("generate", "-m", tmp_path, "-p", "a dog", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "not a diffusers pipeline folder" in result.output
    result = invoke("generate", "-m", tiny_sd1_dir, "-p", "a dog", "--out", _unwritable(tmp_path))
    assert result.exit_code == 2 and "cannot be made: choose another --out" in result.output


def test_installed_command_prints_no_traceback(tmp_path):
    """The real entry point, in a subprocess: one line on stderr, exit status 2."""
    command = [
        sys.executable,
        "-m",
        "fissure.cli",
        "generate",
        "-m",
        str(tmp_path / "x"),
        "-p",
        "a",
        "--out",
        str(tmp_path),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith("error: no such model folder")


def test_demo_attacks_and_writes_a_page(tmp_path, tiny_sd1_dir):
    """The demo's wiring, on a tiny model (the bundled model's demo is `make demo`)."""
    result = invoke("demo", "--out", tmp_path, "--model", tiny_sd1_dir)
    assert result.exit_code == 0, result.output
    run = tmp_path / "sage-latent"
    assert (run / "index.html").is_file()
    with ResultsStore(run) as store:
        assert len(store.findings()) == 16
    assert "index.html" in result.output

    with closing(sqlite3.connect(run / "results.db")) as db, db:  # as an older fissure bound it
        (settings,) = db.execute("SELECT settings FROM bindings").fetchone()
        older = json.dumps({**json.loads(settings), "views": True})
        db.execute("UPDATE bindings SET settings = ?", (older,))
    stale = invoke("demo", "--out", tmp_path, "--model", tiny_sd1_dir)
    assert stale.exit_code == 2 and "holds an earlier demo" in stale.output
    assert "(views)" in stale.output and "`make clean`" in stale.output


def test_zoo_path_of_unknown_model_is_an_error():
    result = invoke("zoo", "path", "no-such-model")
    assert result.exit_code == 2 and "unknown bundled model" in result.output
