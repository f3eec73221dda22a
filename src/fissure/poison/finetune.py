"""Fine-tuning a Stable Diffusion UNet on clean world scenes mixed with poisons.

Neither the implosion paper nor Nightshade released fine-tuning code; this is emoji-sd's
own UNet stage run from the shipped weights: the same loss (min-SNR-weighted, ε or v as
the scheduler predicts), the same batches drawn by (seed, step), and the project's one
training loop (:func:`fissure.zoo.training_loop.train`), so a killed run resumes where
its last checkpoint left it. The text encoder and VAE stay frozen, so every pair is
encoded once, and the clean scenes' encodings are shared by every configuration.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel

from fissure.atomic import atomic_folder
from fissure.digest import image_weights_digest
from fissure.poison.pairs import PoisonSet
from fissure.zoo.emoji_sd.config import UnetStage
from fissure.zoo.emoji_sd.recipe import halve_weights
from fissure.zoo.emoji_sd.unet_stage import (
    Encodings,
    UnetBatches,
    cached_encodings,
    encode_pairs,
    unet_loss,
)
from fissure.zoo.scene_bank import BankSpec, SceneBank
from fissure.zoo.training_loop import Schedule, train

CLEAN_FIRST_SEED = 30_000_000
"""The fine-tuning's clean scenes: seeds no model, judge or poison draws from."""
LOG_EVERY = 25


@dataclass(frozen=True)
class FinetuneSettings:
    """What a fine-tuning run does; the defaults fit a sweep point in minutes on 2 cores."""

    steps: int = 500
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_steps: int = 50
    clean_scenes: int = 3000
    caption_dropout: float = 0.1
    min_snr_gamma: float | None = 5.0
    seed: int = 0

    def stage(self, num_train_timesteps: int) -> UnetStage:
        """emoji-sd's UNet stage with these settings: no REPA (its projector is not shipped)."""
        return UnetStage(
            batch_size=self.batch_size,
            steps=self.steps,
            learning_rate=self.learning_rate,
            warmup_steps=self.warmup_steps,
            caption_dropout=self.caption_dropout,
            min_snr_gamma=self.min_snr_gamma,
            repa_weight=0.0,
            seed=self.seed,
            num_train_timesteps=num_train_timesteps,
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def native_pixels(pipeline: StableDiffusionPipeline, images: torch.Tensor) -> torch.Tensor:
    """uint8 images at the pipeline's image size (the world's 64 pixels, resized if needed)."""
    size = pipeline.unet.config.sample_size * pipeline.vae_scale_factor
    if images.shape[-1] == size:
        return images
    resized = F.interpolate(images.float(), size=(size, size), mode="bicubic")
    return resized.round().clamp(0, 255).byte()


def encode(
    pipeline: StableDiffusionPipeline, images: torch.Tensor, captions: list[str], progress: bool
) -> Encodings:
    return encode_pairs(
        native_pixels(pipeline, images),
        captions,
        pipeline.tokenizer,
        pipeline.text_encoder,
        pipeline.vae,
        progress=progress,
    )


def clean_scenes(settings: FinetuneSettings, cache: Path, progress: bool = True) -> SceneBank:
    spec = BankSpec(CLEAN_FIRST_SEED, settings.clean_scenes, emoji_sets=("noto",))
    return SceneBank.cached(spec, cache, progress)


def clean_encodings(
    pipeline: StableDiffusionPipeline, bank: SceneBank, cache: Path, progress: bool = True
) -> Encodings:
    """The clean scenes' encodings (``bank`` from :func:`clean_scenes`), cached per scene
    bank and frozen weights."""
    name = f"clean-{bank.spec.key()}-{image_weights_digest(pipeline)[:12]}.pt"
    return cached_encodings(
        Path(cache) / name, lambda: encode(pipeline, bank.images, bank.captions, progress)
    )


def poison_encodings(
    pipeline: StableDiffusionPipeline, poisons: list[PoisonSet], progress: bool = True
) -> Encodings | None:
    if not poisons:
        return None
    images = torch.cat([poison.images for poison in poisons])
    captions = [caption for poison in poisons for caption in poison.captions]
    return encode(pipeline, images, captions, progress)


def finetune_unet(
    pipeline: StableDiffusionPipeline,
    data: Encodings,
    settings: FinetuneSettings,
    folder: Path,
    progress: bool = True,
    deadline: float | None = None,
) -> tuple[UNet2DConditionModel, int]:
    """The pipeline's UNet fine-tuned on ``data`` (or resumed from ``folder``'s checkpoint);
    returns it and the step reached (short of ``settings.steps`` past ``deadline``)."""
    torch.manual_seed(settings.seed)
    unet = copy.deepcopy(pipeline.unet).float().requires_grad_(True)
    scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    stage = settings.stage(scheduler.config.num_train_timesteps)
    batches = UnetBatches(stage, lambda: data, pipeline.vae.config.scaling_factor)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=settings.learning_rate, weight_decay=0.0)

    def step_loss(step: int) -> torch.Tensor:
        loss, _ = unet_loss(stage, unet, scheduler, batches(step), None, None)
        return loss

    step, _ = train(
        {"unet": unet},
        optimizer,
        step_loss,
        Schedule(settings.learning_rate, settings.steps, settings.warmup_steps),
        Path(folder),
        "fine-tuning",
        progress,
        max_grad_norm=1.0,
        log_every=LOG_EVERY,
        deadline=deadline,
    )
    return unet.requires_grad_(False), step


def save_finetuned(
    pipeline: StableDiffusionPipeline, unet: UNet2DConditionModel, folder: Path
) -> Path:
    """The pipeline with its fine-tuned UNet, as a diffusers folder (float16 on disk) that
    `fissure generate --model` and stock ``from_pretrained`` load."""
    tuned = StableDiffusionPipeline(**{**pipeline.components, "unet": unet})
    with atomic_folder(Path(folder)) as staging:
        tuned.save_pretrained(staging, safe_serialization=True)
        halve_weights(staging)
    return Path(folder)
