"""`fissure zoo train emoji-sd` and `fissure zoo evaluate emoji-sd` through the CLI."""

from __future__ import annotations

import dataclasses
import json

from typer.testing import CliRunner

from fissure.cli import app
from fissure.world import class_names
from fissure.zoo.emoji_sd.config import EmojiSdConfig, tiny_config

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_other_model_names_are_refused_with_one_line():
    for command in ("train", "evaluate"):
        result = invoke("zoo", command, "stable-diffusion-v1-5")
        assert result.exit_code == 2
        assert "emoji-sd" in result.output and "Traceback" not in result.output


def test_bad_steps_are_refused(tmp_path):
    result = invoke("zoo", "train", "emoji-sd", "--out", tmp_path, "--steps", "unet=lots")
    assert result.exit_code == 2 and "STAGE=N" in result.output


def test_bad_numbers_are_one_line_errors_before_any_work(tmp_path):
    """--threads -1 and --clip-scenes -1 ended in tracebacks; NaN minutes never stopped."""
    (tmp_path / "a-file").write_text("")
    cases = [
        (("train", "--out", tmp_path / "w", "--threads", "-1"), "--threads"),
        (
            ("train", "--out", tmp_path / "w", "--max-minutes", "nan"),
            "--max-minutes",
        ),
        (("train", "--out", tmp_path / "w", "--checkpoint-minutes", "-1"), "--checkpoint-minutes"),
        (("evaluate", "--out", tmp_path / "e", "--clip-scenes", "-1"), "--clip-scenes"),
        (
            ("evaluate", "--out", tmp_path / "e", "--guidance", "nan"),
            "guidance must be a finite number",
        ),
        (("evaluate", "--out", tmp_path / "a-file"), "a-file"),
        (("evaluate", "--out", tmp_path / "e", "--pairs", "6000"), "pairs must be from 1 to 5356"),
    ]
    for args, message in cases:
        result = invoke("zoo", args[0], "emoji-sd", *args[1:])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output, result.output
    assert not (tmp_path / "w").exists()


def test_snapshot_of_a_running_or_finished_training(trained, tmp_path):
    point = tmp_path / "training" / "emoji-sd"
    result = invoke(
        "zoo", "train", "emoji-sd", "--out", trained["out"], "--snapshot", "--resume-point", point
    )
    assert result.exit_code == 0, result.output
    assert "unet: step 4/4 (finished)" in result.output
    assert json.loads((point / "resume.json").read_text())["stages"]["unet"]["step"] == 4
    missing = invoke("zoo", "train", "emoji-sd", "--out", tmp_path / "nothing", "--snapshot")
    assert missing.exit_code == 2 and "no emoji-sd training run" in missing.output


def test_train_tiny_then_evaluate(tmp_path, verifier_dir):
    out = tmp_path / "run"
    result = invoke(
        "zoo",
        "train",
        "emoji-sd",
        "--tiny",
        "--out",
        out,
        "--no-install",
        "--force",
        "--verifier",
        verifier_dir,
        "--resume-point",
        tmp_path / "none",
    )
    assert result.exit_code == 0, result.output
    assert "gate 1 clip" in result.output and "emoji-sd is trained" in result.output
    evaluation = tmp_path / "evaluation"
    notes = tmp_path / "CALIBRATION.md"
    notes.write_text("### A calibration measured after the training\n")
    result = invoke(
        "zoo",
        "evaluate",
        "emoji-sd",
        "--model",
        out / "pipeline",
        "--out",
        evaluation,
        "--seeds-per-class",
        1,
        "--pairs",
        2,
        "--steps",
        2,
        "--verifier",
        verifier_dir,
        "--clip-scenes",
        40,
        "--dtype",
        "bfloat16",
        "--calibration",
        notes,
        "--update-card",
    )
    assert result.exit_code == 0, result.output
    assert "single_top1" in result.output
    assert "against the shipped emoji-sd" in result.output  # a look: never a replacement
    assert "cannot tell" in result.output and "measured differently: seeds" in result.output
    assert (evaluation / "contact_sheet.png").is_file()
    scores = json.loads((evaluation / "evaluation.json").read_text())
    assert json.loads((out / "pipeline" / "evaluation.json").read_text()) == scores  # the card's
    assert scores["seeds"] == 1 and scores["clip_text_to_image_top1"] is not None
    assert scores["clip_generated_text_to_image_top1"] is not None
    galleries = scores["clip_gallery_classes"]  # 40 scenes cannot hold every class
    assert 0 < galleries < len(class_names()) and scores["clip_scenes_scored"] % galleries == 0
    assert scores["dtype"] == "bfloat16" and scores["verifier"] == str(verifier_dir)
    assert scores["single_top1_strict"] is not None  # polysemous names accepted or not
    assert scores["single_top1"] >= scores["single_top1_strict"]
    assert scores["prompt_length"] == 24 and scores["seed_plan"] == "held-out"
    assert scores["model"] == str(out / "pipeline") and len(scores["weights"]) == 16
    assert set(scores["per_class_strict"]) == set(scores["per_class"])
    assert set(scores["checks"]) >= {"pairs_top2_strict"} and "passed" in scores
    card = (out / "pipeline" / "README.md").read_text()
    assert "(`single_top1_strict`) |" in card and "Not measured yet" not in card
    assert "prompts of 24 tokens" in card
    assert "guidance 7.5, bfloat16," in card and f"verifier (`{verifier_dir}`)" in card
    assert "CLIP text→image top-1 on rendered held-out scenes" in card
    assert card.endswith("## Calibration runs\n\n### A calibration measured after the training\n")
    quick = invoke(
        "zoo", "evaluate", "emoji-sd", "--model", out / "pipeline", "--out", evaluation,
        "--seeds-per-class", 1, "--pairs", 1, "--steps", 1, "--verifier", verifier_dir, "--clip-scenes", 20,
    )  # fmt: skip
    assert quick.exit_code == 0 and "model card left as it is" in quick.output, quick.output
    assert (out / "pipeline" / "README.md").read_text() == card

    # an install writes the card from the measurement of its weights, generating nothing
    measured = evaluation / "evaluation.json"
    (evaluation / "contact_sheet.png").unlink()
    reused = invoke(
        "zoo", "evaluate", "emoji-sd", "--model", out / "pipeline", "--card-from", measured,
        "--update-card",
    )  # fmt: skip
    assert reused.exit_code == 0 and "updated the model card" in reused.output, reused.output
    assert "1 pairs" in (out / "pipeline" / "README.md").read_text()
    assert not (evaluation / "contact_sheet.png").exists()
    other = json.loads(measured.read_text()) | {"weights": "0123456789abcdef"}
    measured.write_text(json.dumps(other))
    refused = invoke(
        "zoo", "evaluate", "emoji-sd", "--model", out / "pipeline", "--card-from", measured
    )
    assert refused.exit_code == 2 and "measured weights 0123456789abcdef" in refused.output


def test_max_minutes_pauses_with_exit_code_3(tmp_path, verifier_dir):
    result = invoke(
        "zoo",
        "train",
        "emoji-sd",
        "--tiny",
        "--out",
        tmp_path,
        "--no-install",
        "--verifier",
        verifier_dir,
        "--resume-point",
        tmp_path / "none",
        "--max-minutes",
        1e-6,
    )
    assert result.exit_code == 3, result.output
    assert "paused clip at step 1/3" in result.output


def test_a_recipe_file_is_trained_instead_of_the_shipped_one(tmp_path, verifier_dir):
    config = tiny_config()
    channels = 2 * config.vae.latent_channels
    richer = dataclasses.replace(
        config, vae=dataclasses.replace(config.vae, latent_channels=channels)
    )
    recipe = tmp_path / "richer.json"
    recipe.write_text(json.dumps(richer.to_dict()))
    out = tmp_path / "run"
    result = invoke(
        "zoo", "train", "emoji-sd", "--recipe", recipe, "--out", out, "--no-install",
        "--verifier", verifier_dir, "--resume-point", tmp_path / "none", "--max-minutes", 1e-6,
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert EmojiSdConfig.load(out) == richer
    for bad, message in ((tmp_path / "missing.json", "no recipe at"), (out / "clip", "no recipe")):
        result = invoke("zoo", "train", "emoji-sd", "--recipe", bad, "--out", tmp_path / "x")
        assert result.exit_code == 2 and message in result.output, result.output
    (tmp_path / "broken.json").write_text('{"data": {}}')
    result = invoke("zoo", "train", "emoji-sd", "--recipe", tmp_path / "broken.json")
    assert result.exit_code == 2 and "is not an emoji-sd recipe" in result.output
