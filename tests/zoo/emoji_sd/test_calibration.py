"""The calibration probes that follow a running stage, on the tiny recipe's work folder."""

from __future__ import annotations

import dataclasses

from diffusers import StableDiffusionPipeline

from fissure.zoo.emoji_sd.calibration import (
    calibrate_vae,
    compare_spacing,
    load_vae_checkpoint,
    sample_live_unet,
)
from fissure.zoo.emoji_sd.config import tiny_config


def test_live_unet_samples_are_scored_drawn_and_saved(trained, tmp_path):
    scores = sample_live_unet(trained["out"], tmp_path, pairs=3)
    assert scores.pop("step") == tiny_config().unet.steps
    assert set(scores) == {
        f"{weights}_samples_{judge}_top1"
        for weights in ("raw", "ema")
        for judge in ("clip", "verifier")
    } | {"ema_pairs_top2", "ema_pairs_top2_strict"}
    assert scores["ema_pairs_top2"] in {0.0, 1 / 3, 2 / 3, 1.0}
    assert all(0.0 <= value <= 1.0 for value in scores.values())
    assert (tmp_path / "live-raw.png").is_file() and (tmp_path / "live-ema.png").is_file()
    pipeline = StableDiffusionPipeline.from_pretrained(tmp_path / "pipeline", local_files_only=True)
    assert pipeline.unet.config.cross_attention_dim == tiny_config().clip.text_hidden
    spacings = compare_spacing(tmp_path / "pipeline", tmp_path, pairs=2)
    assert set(spacings) == {"leading", "trailing"}
    assert set(spacings["trailing"]) == {"samples_verifier_top1", "pairs_top2", "pairs_top2_strict"}
    leading, trailing = ((tmp_path / f"{s}.png").read_bytes() for s in spacings)
    assert leading != trailing  # other timesteps, other images


def test_a_vae_variant_is_measured_and_reloads_in_its_own_shape(trained, tmp_path):
    config = tiny_config()
    channels = 2 * config.vae.latent_channels
    wider_latent = dataclasses.replace(config.vae, steps=2, latent_channels=channels)
    results = calibrate_vae(trained["out"], tmp_path, {"wider-latent": wider_latent}, scenes=4)
    assert results["wider-latent"]["steps"] == 2
    assert {"single_psnr", "pairs_psnr", "pairs_verifier_retention"} <= set(results["wider-latent"])
    vae = load_vae_checkpoint(config, tmp_path / "vae" / "wider-latent")
    assert vae.config.latent_channels == channels != config.vae.latent_channels
