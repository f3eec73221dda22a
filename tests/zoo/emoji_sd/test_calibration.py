"""The calibration probes that follow a running stage, on the tiny recipe's work folder."""

from __future__ import annotations

from diffusers import StableDiffusionPipeline

from fissure.zoo.emoji_sd.calibration import sample_live_unet
from fissure.zoo.emoji_sd.config import tiny_config


def test_live_unet_samples_are_scored_drawn_and_saved(trained, tmp_path):
    scores = sample_live_unet(trained["out"], tmp_path)
    assert scores.pop("step") == tiny_config().unet.steps
    assert set(scores) == {
        f"{weights}_samples_{judge}_top1"
        for weights in ("raw", "ema")
        for judge in ("clip", "verifier")
    }
    assert all(0.0 <= value <= 1.0 for value in scores.values())
    assert (tmp_path / "live-raw.png").is_file() and (tmp_path / "live-ema.png").is_file()
    pipeline = StableDiffusionPipeline.from_pretrained(tmp_path / "pipeline", local_files_only=True)
    assert pipeline.unet.config.cross_attention_dim == tiny_config().clip.text_hidden
