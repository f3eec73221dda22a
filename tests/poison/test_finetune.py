"""Fine-tuning on poisons: emoji-sd's loss on any SD shape, the training loop's resume, and a
saved model that stock loading reads back."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

from fissure.models.loading import load_pipeline
from fissure.poison.finetune import (
    FinetuneSettings,
    encode,
    finetune_unet,
    native_pixels,
    save_finetuned,
)
from fissure.zoo.emoji_sd.unet_stage import min_snr_weights, unet_loss


def _pairs(count: int = 4):
    images = torch.randint(0, 256, (count, 3, 64, 64), dtype=torch.uint8)
    return images, [f"a photo of a dog number {i}" for i in range(count)]


@pytest.fixture
def pipeline(tiny_pipeline_dir):
    pipe = load_pipeline(str(tiny_pipeline_dir), device="cpu")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_the_loss_targets_what_the_scheduler_predicts(pipeline):
    scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    stage = FinetuneSettings(min_snr_gamma=None).stage(scheduler.config.num_train_timesteps)
    latents, noise = torch.randn(2, 4, 32, 32), torch.randn(2, 4, 32, 32)
    timesteps = torch.tensor([10, 700])
    text = torch.randn(2, 77, 32)
    batch = {"latents": latents, "noise": noise, "timesteps": timesteps, "text": text}
    with torch.no_grad():
        loss, _ = unet_loss(stage, pipeline.unet, scheduler, batch, None, None)
        noisy = scheduler.add_noise(latents, noise, timesteps)
        predicted = pipeline.unet(noisy, timesteps, text).sample
    kind = scheduler.config.prediction_type
    target = noise if kind == "epsilon" else scheduler.get_velocity(latents, noise, timesteps)
    assert loss == pytest.approx(float((predicted - target).square().mean()), rel=1e-5)


def test_min_snr_weights_follow_the_prediction_type():
    alphas = torch.tensor([0.9, 0.5, 0.01])
    steps = torch.arange(3)
    snr = alphas / (1 - alphas)
    epsilon = min_snr_weights(alphas, steps, 5.0)
    velocity = min_snr_weights(alphas, steps, 5.0, "v_prediction")
    assert torch.allclose(epsilon, snr.clamp(max=5) / snr)
    assert torch.allclose(velocity, snr.clamp(max=5) / (snr + 1))


def test_finetuning_moves_a_copy_and_saves_a_loadable_model(pipeline, tmp_path):
    before = {k: v.clone() for k, v in pipeline.unet.state_dict().items()}
    data = encode(pipeline, *_pairs(), progress=False)
    settings = FinetuneSettings(steps=3, batch_size=2, warmup_steps=1, learning_rate=1e-3)
    unet, step = finetune_unet(pipeline, data, settings, tmp_path / "training", progress=False)
    assert step == 3
    assert all(torch.equal(v, pipeline.unet.state_dict()[k]) for k, v in before.items())
    assert any(not torch.equal(v, unet.state_dict()[k]) for k, v in before.items())
    folder = save_finetuned(pipeline, unet, tmp_path / "model")
    loaded = load_pipeline(str(folder), device="cpu")
    for name, value in unet.state_dict().items():
        assert torch.allclose(loaded.unet.state_dict()[name], value.half().float())


def test_a_finished_run_resumes_without_training_again(pipeline, tmp_path, monkeypatch):
    data = encode(pipeline, *_pairs(), progress=False)
    settings = FinetuneSettings(steps=2, batch_size=2, warmup_steps=1)
    first, _ = finetune_unet(pipeline, data, settings, tmp_path, progress=False)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run trained again")

    monkeypatch.setattr("fissure.zoo.emoji_sd.unet_stage.UnetBatches.__call__", no_training)
    again, step = finetune_unet(pipeline, data, settings, tmp_path, progress=False)
    assert step == 2
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in first.state_dict().items())


def test_world_pictures_are_resized_to_the_pipelines_size(pipeline):
    images, _ = _pairs(2)
    assert native_pixels(pipeline, images) is images  # tiny pipelines make 64-pixel images
    pipeline.unet.register_to_config(sample_size=64)
    assert native_pixels(pipeline, images).shape[-1] == 128
