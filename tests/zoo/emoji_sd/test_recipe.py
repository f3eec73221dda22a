"""The emoji-sd recipe at toy sizes: stages, gates, resume points, stock loading."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

from fissure.errors import FissureError
from fissure.zoo.emoji_sd.common import StageRecord
from fissure.zoo.emoji_sd.config import tiny_config, with_steps
from fissure.zoo.emoji_sd.recipe import (
    STAGES,
    restore_resume_point,
    train_emoji_sd,
    write_resume_point,
)
from fissure.zoo.emoji_sd.unet_stage import Encodings, train_unet
from fissure.zoo.training_loop import CHECKPOINT_NAME, LOG_NAME

from .conftest import make_verifier, run_without_fissure


def test_every_stage_trains_and_is_gated(trained):
    out, log = trained["out"], trained["log"]
    config = tiny_config()
    gates = {"clip": 1, "decoder": 2, "unet": 3}  # stage 2's gate follows its decoder's tuning
    for stage in STAGES:
        record = StageRecord.load(out / stage / "final")
        assert record is not None and record.steps == getattr(config, stage).steps
        assert record.machine and record.fingerprint == config.fingerprint(stage)
        assert [session["from_step"] for session in record.sessions] == [0]
        gated = [line for line in log if line.startswith(f"gate {gates.get(stage)} {stage}:")]
        assert bool(record.gate) == bool(gated) == (stage in gates)
    assert set(StageRecord.load(out / "decoder" / "final").gate) >= {
        "single_retention",
        "pairs_retention",
        "single_psnr",
    }
    assert StageRecord.load(out / "vae" / "final").notes["scaling_factor"] > 0
    assert (out / "unet" / "final" / "gate_sheet.png").is_file()
    card = (trained["pipeline"] / "README.md").read_text()
    assert "## Stages, gates, time and machine" in card and "scaling factor" in card
    assert "- session: steps 0→4" in card


def test_stock_diffusers_loads_and_runs_it_without_fissure(trained):
    """A subprocess that never imports fissure loads the saved folder in float32 and samples."""
    run_without_fissure(
        f"""
        import torch
        from diffusers import StableDiffusionPipeline
        from transformers import CLIPModel
        pipe = StableDiffusionPipeline.from_pretrained({str(trained["pipeline"])!r}, local_files_only=True)
        assert pipe.unet.dtype == pipe.text_encoder.dtype == pipe.vae.dtype == torch.float32
        out = pipe(["a photo of a dog", ""], num_inference_steps=2, guidance_scale=7.5,
                   generator=torch.Generator().manual_seed(0), output_type="np").images
        assert out.shape == (2, 64, 64, 3), out.shape
        clip = CLIPModel.from_pretrained({str(trained["pipeline"] / "clip")!r})
        assert clip.dtype == torch.float32
        # CLIP trained on 16 tokens; the pipeline, and so its CLIP, read the recipe's 24
        assert pipe.tokenizer.model_max_length == 24
        assert pipe.text_encoder.config.max_position_embeddings == 24
        assert clip.config.text_config.max_position_embeddings == 24
        """
    )


def test_the_evaluation_scores_images_as_a_png_keeps_them(trained):
    """A user saving the evaluation's samples gets 8-bit PNGs; the scores are theirs."""
    from diffusers import StableDiffusionPipeline

    from fissure.zoo.emoji_sd.evaluate import generate

    pipeline = StableDiffusionPipeline.from_pretrained(trained["pipeline"], local_files_only=True)
    images = generate(pipeline, ["a photo of a dog"], [0], steps=2, guidance=7.5, progress=False)
    levels = images * 255
    assert images.shape[0] == 1 and torch.equal(levels, levels.round())


def test_weights_ship_in_half_precision(trained):
    from safetensors.torch import load_file

    paths = sorted(trained["pipeline"].rglob("*.safetensors"))
    assert {path.parent.name for path in paths} >= {"unet", "vae", "text_encoder"}
    for path in paths:
        assert all(
            value.dtype == torch.float16
            for value in load_file(path).values()
            if value.is_floating_point()
        ), path


def test_a_second_run_skips_training_and_measuring_and_reports_the_gates(trained):
    out = trained["out"]

    def written() -> dict:
        files = [out / s / name for s in STAGES for name in (CHECKPOINT_NAME, "final/stage.json")]
        return {path: path.stat().st_mtime_ns for path in files}

    before = written()
    lines: list[str] = []
    train_emoji_sd(
        out, tiny_config(), verifier=make_verifier(), force=True, progress=False, log=lines.append
    )
    assert before == written()
    assert sum(line.startswith("gate ") for line in lines) == 3


def test_a_gate_is_measured_again_when_its_settings_change(trained, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(trained["out"], out)
    config = tiny_config()
    more_pairs = dataclasses.replace(config, unet=dataclasses.replace(config.unet, gate_pairs=3))
    before = {s: (out / s / "final" / "stage.json").stat().st_mtime_ns for s in STAGES}
    lines: list[str] = []
    train_emoji_sd(
        out, more_pairs, verifier=make_verifier(), force=True, progress=False, log=lines.append
    )
    after = {s: (out / s / "final" / "stage.json").stat().st_mtime_ns for s in STAGES}
    assert [s for s in STAGES if before[s] != after[s]] == ["unet"]
    assert StageRecord.load(out / "unet" / "final").gate_settings["unet.gate_pairs"] == 3
    assert any(line.startswith("gate 3 unet:") and "(3 pairs)" in line for line in lines)


def test_a_failed_gate_stops_the_run_unless_forced(trained):
    with pytest.raises(FissureError, match="clip gate is not passed"):
        train_emoji_sd(
            trained["out"], tiny_config(), verifier=make_verifier(), progress=False, log=print
        )


def test_resume_point_round_trips_on_a_new_machine(trained, tmp_path):
    point = tmp_path / "training" / "emoji-sd"
    manifest = write_resume_point(trained["out"], point)
    assert set(manifest["stages"]) == set(STAGES)
    assert all(entry["finished"] for entry in manifest["stages"].values())
    assert (point / "tokenizer").is_dir()

    fresh = tmp_path / "fresh"
    assert restore_resume_point(point, fresh, tiny_config()) == list(STAGES)
    original = torch.load(trained["out"] / "unet" / CHECKPOINT_NAME)
    restored = torch.load(fresh / "unet" / CHECKPOINT_NAME)
    assert "optimizer" not in restored and restored["step"] == original["step"]
    for name, value in original["modules"]["ema"].items():
        assert torch.allclose(value, restored["modules"]["ema"][name], atol=1e-2, rtol=1e-3)

    # Training from the resume point trains nothing more and rebuilds the same model.
    folder = train_emoji_sd(
        tmp_path / "again",
        tiny_config(),
        resume_point=point,
        verifier=make_verifier(),
        force=True,
        progress=False,
        log=lambda line: None,
    )
    from safetensors.torch import load_file

    weights = "unet/diffusion_pytorch_model.safetensors"
    shipped, rebuilt = load_file(trained["pipeline"] / weights), load_file(folder / weights)
    assert all(torch.equal(value, rebuilt[name]) for name, value in shipped.items())


def test_an_unfinished_stage_continues_from_the_resume_point(tmp_path):
    config = with_steps(tiny_config(), unet=6)
    clip_only = dataclasses.replace(config, clip=dataclasses.replace(config.clip, steps=2))
    out = tmp_path / "stopped"
    with pytest.raises(FissureError):  # the clip gate stops it after 2 steps
        train_emoji_sd(out, clip_only, verifier=make_verifier(), progress=False, log=print)
    losses = "".join(json.dumps({"step": step, "loss": 1.0 / step}) + "\n" for step in (1, 2))
    (out / "clip" / LOG_NAME).write_text(losses)  # as if logged every step
    point = tmp_path / "point"
    manifest = write_resume_point(out, point)
    assert manifest["stages"]["clip"]["step"] == 2 and "vae" not in manifest["stages"]
    lines: list[str] = []
    train_emoji_sd(
        tmp_path / "next",
        config,
        resume_point=point,
        verifier=make_verifier(),
        force=True,
        progress=False,
        log=lines.append,
        command="fissure zoo train emoji-sd --out next",  # another session
    )
    assert any("resumed clip" in line for line in lines)
    record = StageRecord.load(tmp_path / "next" / "clip" / "final")
    assert record.steps == config.clip.steps
    assert [session["from_step"] for session in record.sessions] == [0, 2]
    assert (tmp_path / "next" / "clip" / LOG_NAME).read_text().startswith(losses)


def test_a_resume_point_of_another_recipe_is_refused(trained, tmp_path):
    point = tmp_path / "point"
    write_resume_point(trained["out"], point)
    other = tiny_config()
    other = dataclasses.replace(other, unet=dataclasses.replace(other.unet, layers_per_block=2))
    with pytest.raises(FissureError, match="another recipe"):
        restore_resume_point(point, tmp_path / "fresh", other)


def test_a_snapshot_never_takes_a_resume_point_back(trained, tmp_path):
    """A work folder whose restore had failed (only its config.json) emptied the committed
    resume point; the next session then began again from step 0 without a word."""
    point = tmp_path / "point"
    write_resume_point(trained["out"], point)
    behind = tmp_path / "behind"
    behind.mkdir()
    shutil.copy(trained["out"] / "config.json", behind / "config.json")
    with pytest.raises(FissureError, match="holds clip at step 3, at step 0 in .*--force"):
        write_resume_point(behind, point)
    assert set(json.loads((point / "resume.json").read_text())["stages"]) == set(STAGES)
    assert write_resume_point(behind, point, force=True)["stages"] == {}


def test_a_folder_that_is_no_resume_point_is_refused(tmp_path):
    (tmp_path / "cut").mkdir()
    with pytest.raises(FissureError, match="is not a resume point"):
        restore_resume_point(tmp_path / "cut", tmp_path / "fresh", tiny_config())
    assert restore_resume_point(tmp_path / "absent", tmp_path / "fresh", tiny_config()) == []


def _fake_encodings(count: int = 12) -> Encodings:
    generator = torch.Generator().manual_seed(0)
    return Encodings(
        text=torch.randn(count, 16, 32, generator=generator).half(),
        empty=torch.randn(16, 32, generator=generator).half(),
        latent_mean=torch.randn(count, 4, 16, 16, generator=generator).half(),
        latent_std=torch.full((count, 4, 16, 16), 0.1).half(),
        repa=torch.randn(count, 16, 32, generator=generator).half(),
    )


def test_killed_unet_training_resumes_to_the_unbroken_weights(tmp_path, watch_steps):
    """Killed after 2 of 4 steps and resumed = 4 unbroken steps (UNet, REPA head and EMA)."""
    from fissure.zoo.emoji_sd import unet_stage

    stage = tiny_config().unet
    encodings = _fake_encodings()
    cpu = torch.device("cpu")
    unbroken, raw, step, _ = train_unet(
        stage, lambda: encodings, 0.5, 4, 32, 32, tmp_path / "unbroken", cpu, progress=False
    )
    assert step == stage.steps == 4

    watch_steps(unet_stage, kill_at=2)
    with pytest.raises(KeyboardInterrupt):
        train_unet(stage, lambda: encodings, 0.5, 4, 32, 32, tmp_path / "killed", cpu, False, 0)
    assert torch.load(tmp_path / "killed" / CHECKPOINT_NAME)["step"] == 2
    steps = watch_steps(unet_stage)
    resumed, resumed_raw, _, _ = train_unet(
        stage, lambda: encodings, 0.5, 4, 32, 32, tmp_path / "killed", cpu, progress=False
    )
    assert steps == [2, 3]  # a restart from step 0 would end with the same weights
    _assert_same_weights(unbroken, resumed)
    _assert_same_weights(raw, resumed_raw)
    assert not torch.equal(
        next(iter(unbroken.state_dict().values())), next(iter(raw.state_dict().values()))
    )


def _assert_same_weights(expected: torch.nn.Module, got: torch.nn.Module) -> None:
    for (name, a), b in zip(expected.state_dict().items(), got.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_a_finished_unet_is_rebuilt_without_encoding_the_scenes(tmp_path):
    """A fresh machine that only writes the pipeline of a finished stage skips the encoding."""
    stage = tiny_config().unet
    encodings = _fake_encodings()
    cpu = torch.device("cpu")
    finished, _, _, _ = train_unet(
        stage, lambda: encodings, 0.5, 4, 32, 32, tmp_path, cpu, progress=False
    )

    def encode_again() -> Encodings:
        raise AssertionError("a finished stage encoded the scenes again")

    rebuilt, _, step, _ = train_unet(stage, encode_again, 0.5, 4, 32, 32, tmp_path, cpu, False)
    assert step == stage.steps
    _assert_same_weights(finished, rebuilt)


def test_a_work_folder_refuses_another_recipe_for_begun_stages_only(tmp_path):
    from fissure.zoo.emoji_sd.recipe import Recipe

    config = tiny_config()
    Recipe(tmp_path, config).check_work_folder()
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / CHECKPOINT_NAME).write_bytes(b"")
    other_vae = dataclasses.replace(config, vae=dataclasses.replace(config.vae, kl_weight=0.0))
    Recipe(tmp_path, other_vae).check_work_folder()  # the VAE has not begun: fine
    other_clip = dataclasses.replace(config, clip=dataclasses.replace(config.clip, text_layers=2))
    with pytest.raises(FissureError, match="another recipe"):
        Recipe(tmp_path, other_clip).check_work_folder()


def test_a_stage_is_not_trained_on_under_a_later_stage_that_has_begun(trained, tmp_path):
    """More VAE steps after the decoder began would leave the decoder's copy of the old VAE."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(trained["out"], out)
    config = tiny_config()
    more_vae = with_steps(config, vae=config.vae.steps + 2)
    with pytest.raises(FissureError, match="stage vae would train on .* stage decoder has begun"):
        train_emoji_sd(out, more_vae, verifier=make_verifier(), force=True, progress=False)
    shutil.rmtree(out / "decoder")
    shutil.rmtree(out / "unet")
    train_emoji_sd(out, more_vae, verifier=make_verifier(), force=True, progress=False, log=print)
    assert StageRecord.load(out / "vae" / "final").steps == config.vae.steps + 2


def test_a_time_budget_pauses_with_a_checkpoint_and_the_next_run_goes_on(tmp_path):
    import time

    from fissure.zoo.emoji_sd.recipe import TrainingPaused

    with pytest.raises(TrainingPaused) as paused:
        train_emoji_sd(
            tmp_path, tiny_config(), progress=False, log=print, deadline=time.monotonic()
        )
    assert (paused.value.stage, paused.value.step) == ("clip", 1)
    assert torch.load(tmp_path / "clip" / CHECKPOINT_NAME)["step"] == 1
    train_emoji_sd(
        tmp_path, tiny_config(), verifier=make_verifier(), force=True, progress=False, log=print
    )
    record = StageRecord.load(tmp_path / "clip" / "final")
    assert record.steps == tiny_config().clip.steps and len(record.sessions) == 1


def test_a_second_trainer_into_one_folder_is_refused(tmp_path):
    """Two slice loops once ran in one work folder, each overwriting the other's checkpoints."""
    from fissure.atomic import lock_folder

    with lock_folder(tmp_path), pytest.raises(FissureError, match="another run is writing"):
        train_emoji_sd(tmp_path, tiny_config(), verifier=make_verifier(), progress=False)
