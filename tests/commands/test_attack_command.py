"""`fissure attack` end to end on a tiny pipeline with the bundled emoji judges."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

from typer.testing import CliRunner

from fissure.attacks.views import VIEWS
from fissure.cli import app
from fissure.results import Finding, ResultsStore

runner = CliRunner()
FAST = ["--steps", "2", "--max-iterations", "2", "--batch-size", "2"]


def _findings(out: Path) -> list[Finding]:
    with ResultsStore(out) as store:
        return store.findings()


def _binding(out: Path) -> dict:
    """The settings the run's findings are bound to: what a resume must match."""
    with ResultsStore(out) as store:
        (binding,) = store.bindings()
    return binding


def _attack(model, out, *options: str):
    return runner.invoke(
        app,
        ["attack", "sage-latent", "-m", str(model), "--out", str(out), *options],
        terminal_width=200,
    )


def test_sage_latent_writes_findings_a_page_and_a_summary(tiny_sd1_dir, tmp_path):
    out = tmp_path / "run"
    result = _attack(tiny_sd1_dir, out, "--classes", "cat,red apple", "--seeds", "0-1", *FAST)
    assert result.exit_code == 0, result.output
    findings = _findings(out)
    assert sorted((f.target, f.seed) for f in findings) == [
        ("cat", 0), ("cat", 1), ("red apple", 0), ("red apple", 1),
    ]  # fmt: skip
    assert {f.prompt for f in findings} == {"a photo of a cat", "a photo of a red apple"}
    for finding in findings:
        for file in finding.files.values():
            assert (out / file).is_file()
        assert set(finding.verifier_after) == {"emoji/verifier", "emoji/clip"}  # as on emoji-sd
    page = (out / "index.html").read_text()
    assert "a photo of a red apple" in page
    sources = re.findall(r'<img src="([^"]+)"', page)  # relative: a moved folder still shows
    assert len(sources) == 8 and all((out / src).is_file() and src[0] != "/" for src in sources)
    run = _binding(out)
    assert run["campaign"] == run["attack"] == "sage-latent"  # a campaign of its own
    assert (run["model"], run["surrogate"]) == (str(tiny_sd1_dir), "emoji/surrogate")
    assert run["verifiers"] == ["emoji/clip", "emoji/verifier"] and run["attack"] == "sage-latent"
    assert run["views"] == VIEWS and run["guidance"] == 7.5 and "SameValues()" in run["constraints"]
    assert "verified ASR" in result.output
    assert (
        "attacking 4 attempts: 'a photo of a cat' → cat; 'a photo of a red apple'" in result.output
    )

    again = _attack(tiny_sd1_dir, out, "--classes", "cat,red apple", "--seeds", "0-1", *FAST)
    assert again.exit_code == 0, again.output
    assert f"resuming: 4 of them are already in {out}" in again.output
    assert len(_findings(out)) == 4  # nothing redone
    cats = _attack(tiny_sd1_dir, out, "--classes", "cat", "--seeds", "0-2", *FAST)
    assert cats.exit_code == 0, cats.output  # the summary counts what was asked, not the folder
    assert "3 findings (and 2 findings of earlier runs)" in cats.output
    assert len(re.findall(r'<div class="card[ "]', (out / "index.html").read_text())) == 5


def test_sage_latent_options_reach_the_attack(tiny_sd1_dir, tmp_path):
    out = tmp_path / "run"
    options = ["--no-views", "--keep", "none", "--radius", "0.5", "--guidance", "3",
               "--gradient", "residual", "--k", "1", "--dtype", "bfloat16"]  # fmt: skip
    result = _attack(tiny_sd1_dir, out, "-p", "a photo of a cat", "--seeds", "0", *FAST, *options)
    assert result.exit_code == 0, result.output
    run = _binding(out)
    assert run["views"] is False and run["guidance"] == 3.0 and run["k"] == 1
    assert run["dtype"] == "bfloat16"  # a float32 run of these seeds is another run
    assert run["constraints"] == ["Box(radius=0.5)"]  # neither SameValues nor SameNorm
    assert (run["steps"], run["max_iterations"], run["batch_size"]) == (2, 2, 2)
    options[options.index("--guidance") + 1] = "4"
    other = _attack(tiny_sd1_dir, out, "-p", "a photo of a cat", "--seeds", "0", *FAST, *options)
    assert other.exit_code == 2, other.output  # the folder, as `fissure attack` users named it
    assert f"{out} holds findings made with other settings (guidance)" in other.output


def test_random_latent_baseline_runs(tiny_sd1_dir, tmp_path):
    result = runner.invoke(
        app,
        ["attack", "random-latent", "-m", str(tiny_sd1_dir), "-p", "a photo of a dog",
         "--seeds", "0", "--steps", "2", "--budget", "4", "--out", str(tmp_path / "r")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (finding,) = _findings(tmp_path / "r")
    assert finding.attack == "random-latent" and finding.unet_evals <= 4


def test_bad_inputs_are_one_line_errors(tiny_sd1_dir, tmp_path):
    cases = {
        "either --prompt": ["-p", "a cat", "--classes", "cat"],
        "unknown class 'unicorn'": ["--classes", "unicorn"],
        "several classes": ["-p", "a cat and a dog"],
        "must never be in the loss": ["-p", "a cat", "--verifier", "emoji/surrogate"],
        "emoji/vit is in the surrogate": ["-p", "a cat", "--verifier", "emoji/vit"],
        "emoji/surrogate is in the surrogate or holds it": [
            "-p",
            "a cat",
            "--judge",
            "emoji/resnet",
            "--verifier",
            "emoji/surrogate",
        ],
        "unknown device 'bogus'": ["-p", "a cat", "--device", "bogus"],
        "needs one {} where the class goes": ["--classes", "cat", "--template", "a {x}"],
        "not ''": ["--classes", "cat", "--template", ""],  # the default template ran before
        "gives the initial latent no gradient": ["-p", "a cat", "--gradient", "last-k"],
        "gradient 'bogus' cannot attack a latent": ["-p", "a cat", "--gradient", "bogus"],
        "bad seed range": ["-p", "a cat", "--seeds", "9-1"],
        "k must be between 1 and the 2 steps": [
            "-p",
            "a cat",
            "--steps",
            "2",
            "--gradient",
            "residual",
            "--k",
            "3",
        ],
        "step (--step) must be a positive number": ["-p", "a cat", "--step", "0"],
        "guidance must be a finite number": ["-p", "a cat", "--guidance", "nan"],
        "--max-iterations) must be 0 or more": ["-p", "a cat", "--max-iterations", "-1"],
        "absent_below (--absent-below) must be between 0 and 1": [
            "-p",
            "a cat",
            "--absent-below",
            "1.5",
        ],
        "--target is for --prompt": ["--classes", "cat", "--target", "dog"],
        "--template is for --classes": ["-p", "a cat", "--template", "a drawing of {}"],
        "names no class": ["--classes", " , "],
        "--classes '' names no class": ["--classes", ""],
        "unknown class 'dragon' for this judge (104 labels)": [
            "-p",
            "a cat",
            "--target",
            "dragon",
        ],
    }
    for message, options in cases.items():
        result = _attack(tiny_sd1_dir, tmp_path / "bad", *options)
        assert result.exit_code == 2, (options, result.output)
        assert message in result.output, (options, result.output)
    assert not (tmp_path / "bad").exists()  # bad input leaves no empty folder behind
    absent = tmp_path / "no-model"  # recipe options are refused before a model is looked for
    assert (
        "step (--step) must be a positive number"
        in _attack(absent, tmp_path / "bad", "-p", "a cat", "--step", "0").output
    )


#: `python -m fissure.cli`, pausing 0.2 s after each finding: however fast the machine, the
#: 40 attempts cannot all finish between the second finding and the Ctrl-C. Ctrl-C raises
#: KeyboardInterrupt as in a terminal even when the tests run in a background job (`make
#: test &`), whose children a shell starts with SIGINT ignored.
PACED_CLI = """
import signal
import time
from fissure.cli import main
from fissure.results.store import AttackWriter
signal.signal(signal.SIGINT, signal.default_int_handler)
add = AttackWriter.add
AttackWriter.add = lambda *args: (add(*args), time.sleep(0.2))[0]
main()
"""


def _done(out: Path) -> int:
    """Findings in the store at ``out`` (0 before it exists), read as another process may
    while a run writes it."""
    if not (out / "results.db").is_file():
        return 0
    with closing(sqlite3.connect(f"file:{out / 'results.db'}?mode=ro", uri=True)) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM attempts WHERE status = 'done'").fetchone()[0]
        except sqlite3.OperationalError:  # the tables are not made yet
            return 0


def test_ctrl_c_keeps_findings_and_the_rerun_finishes(tiny_sd1_dir, tmp_path):
    out = tmp_path / "interrupted"
    arguments = [
        "attack", "sage-latent", "-m", str(tiny_sd1_dir), "-p", "a photo of a cat",
        "--seeds", "0-39", "--out", str(out), *FAST,
    ]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", PACED_CLI, *arguments],
        env=environment,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while _done(out) < 2:
        assert process.poll() is None and time.monotonic() < deadline, "no finding appeared"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    kept = _done(out)
    assert process.returncode == 130, stderr
    assert "run the same command to resume" in stderr
    assert 2 <= kept < 40

    finished = subprocess.run(
        [sys.executable, "-m", "fissure.cli", *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr
    assert sorted(finding.seed for finding in _findings(out)) == list(range(40))
    assert f"interrupted: {kept} findings kept in {out}" in stderr


def test_the_default_judges_refuse_a_model_outside_the_emoji_world(tiny_sd1_dir, tmp_path):
    """A model of 128-pixel images is not read by 64-pixel emoji judges unless asked for."""
    import shutil

    model = tmp_path / "bigger"
    shutil.copytree(tiny_sd1_dir, model)
    config_path = model / "unet" / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "sample_size": 2 * config["sample_size"]}))
    demo = runner.invoke(app, ["demo", "--model", str(model), "--out", str(tmp_path / "demo")])
    attack = _attack(model, tmp_path / "out", "-p", "a photo of a cat", *FAST)
    for result in (demo, attack):
        assert result.exit_code == 2, result.output
        assert "makes 128-pixel images" in result.output and "--judge" in result.output


def test_an_ensemble_of_named_judges_is_the_surrogate(tiny_sd1_dir, tmp_path):
    """--judge took one name: on a real checkpoint SAGE's robust surrogate was one classifier."""
    out = tmp_path / "run"
    result = _attack(
        tiny_sd1_dir, out, "-p", "a photo of a cat", "--seeds", "0", "--judge", "emoji/resnet",
        "--judge", "emoji/vit", "--verifier", "emoji/verifier", *FAST,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _binding(out)["surrogate"] == "emoji/resnet+emoji/vit"
    (finding,) = _findings(out)
    assert finding.target == "cat"
    overlap = _attack(
        tiny_sd1_dir, tmp_path / "o", "-p", "a cat", "--judge", "emoji/resnet",
        "--judge", "emoji/vit", "--verifier", "emoji/vit", *FAST,
    )  # fmt: skip
    assert overlap.exit_code == 2 and "a verifier must never be in the loss" in overlap.output


def test_an_ensemble_named_among_judges_gives_its_members():
    """emoji/surrogate + emoji/edge nested one mean in another: the goal asked the mean."""
    from fissure.campaign.worker import load_surrogate

    ensemble = load_surrogate(["emoji/surrogate", "emoji/edge"], "cpu")
    assert ensemble.names == ["emoji/resnet", "emoji/vit", "emoji/regnet", "emoji/edge"]
    assert ensemble.source == "emoji/surrogate+emoji/edge"


def test_imagenet_labels_with_commas_can_be_named_and_verified(monkeypatch):
    """`--judge microsoft/resnet-50 --verifier clip:...` was refused: CLIP read its own
    label list ("tabby"), the judge's says "tabby, tabby cat"."""
    import fissure.campaign.worker
    from fissure.campaign.worker import load_verifiers, split_class_names

    labels = ["tabby, tabby cat", "tiger cat", "Persian cat"]
    assert split_class_names("tabby, tabby cat", labels) == ["tabby, tabby cat"]
    assert split_class_names("tabby, tabby cat; tiger cat", labels) == [
        "tabby, tabby cat",
        "tiger cat",
    ]
    assert split_class_names("tiger cat,Persian cat", labels) == ["tiger cat", "Persian cat"]
    asked = {}
    monkeypatch.setattr(
        fissure.campaign.worker,
        "load_judge",
        lambda name, device, labels: asked.setdefault(name, labels),
    )
    load_verifiers(["clip:openai/clip-vit-base-patch32", "emoji/verifier"], labels, "cpu")
    assert asked == {"clip:openai/clip-vit-base-patch32": labels, "emoji/verifier": None}


def test_the_help_states_the_measured_defaults():
    """The CLI spells the defaults out (it imports no torch for --help): they must be the
    recipe's, which the benchmark chose."""
    from fissure.attacks.recipes import MEASURED_SETTINGS

    result = runner.invoke(app, ["attack", "sage-latent", "--help"])
    help_text = "".join(result.output.replace("│", "").split())  # rich's boxes and wrapping
    for name in ("gradient", "step_rule", "step", "max_iterations"):
        assert f"Default:{MEASURED_SETTINGS[name]}." in help_text, name
    assert f"Default:{MEASURED_SETTINGS['k']}(" in help_text
