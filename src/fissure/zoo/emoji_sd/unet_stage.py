"""Stage 3: a UNet2DConditionModel on VAE latents, conditioned as in Stable Diffusion.

The text encoder (stage 1) and the VAE (stage 2) are frozen, so every scene's
caption embedding, latent posterior and REPA target is computed once
(:func:`encode_bank`) and a training step costs only the UNet. What makes it
converge faster on a CPU budget, each measured in the model card:

- min-SNR-γ weighting of the ε-loss (Hang et al., arXiv 2303.09556): the
  many low-noise timesteps stop dominating the gradient;
- REPA (Yu et al., arXiv 2410.06940; U-REPA, arXiv 2503.18414): the mid block's
  features, upsampled to the patch grid, are projected by a small MLP (kept out
  of the saved UNet) and aligned by cosine similarity to the frozen CLIP vision
  tower's patch tokens of the clean scene;
- an exponential moving average of the weights, which is what ships;
- warm-up, gradient clipping, and 10% empty captions for classifier-free guidance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from torch import nn
from tqdm.auto import tqdm
from transformers import CLIPTextModel, CLIPTokenizer, CLIPVisionModel

from fissure.atomic import atomic_write
from fissure.zoo.emoji_sd.clip_stage import clip_pixels
from fissure.zoo.emoji_sd.common import LOG_EVERY, ExponentialAverage, optimizer_groups
from fissure.zoo.emoji_sd.config import UnetStage
from fissure.zoo.scene_bank import SceneBank
from fissure.zoo.training_loop import Schedule, step_generator, train


def build_unet(stage: UnetStage, latent_channels: int, cross_attention_dim: int):
    """The UNet: cross-attention at ``stage.attention_levels`` and in the mid block.

    By default the two finer resolutions attend, as SD's three finer of four; at
    16×16 attention is half of the sampling time, so a faster UNet drops it there.
    """
    blocks = len(stage.block_out_channels)
    levels = stage.attention_levels
    if levels is None:
        levels = tuple(range(blocks - 1))
    down = tuple("CrossAttnDownBlock2D" if i in levels else "DownBlock2D" for i in range(blocks))
    up = tuple(
        "CrossAttnUpBlock2D" if i in levels else "UpBlock2D" for i in reversed(range(blocks))
    )
    return UNet2DConditionModel(
        sample_size=16,
        in_channels=latent_channels,
        out_channels=latent_channels,
        block_out_channels=stage.block_out_channels,
        layers_per_block=stage.layers_per_block,
        down_block_types=down,
        up_block_types=up,
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=stage.attention_heads,  # diffusers' legacy name: the head count
        norm_num_groups=stage.norm_num_groups,
    )


def schedule_settings(stage: UnetStage) -> dict:
    return dict(
        num_train_timesteps=stage.num_train_timesteps,
        beta_start=stage.beta_start,
        beta_end=stage.beta_end,
        beta_schedule="scaled_linear",
    )


def training_scheduler(stage: UnetStage) -> DDPMScheduler:
    return DDPMScheduler(**schedule_settings(stage))


def sampling_scheduler(stage: UnetStage) -> DDIMScheduler:
    """The pipeline's scheduler: DDIM on SD's noise schedule, ε-prediction."""
    return DDIMScheduler(
        **schedule_settings(stage),
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="epsilon",
    )


@dataclass
class Encodings:
    """What the frozen stages make of each scene, in float16 to halve the memory.

    ``text``: N×L×D last hidden states of the caption; ``empty``: L×D of "";
    ``latent_mean``/``latent_std``: N×C×16×16 posterior (unscaled);
    ``repa``: N×P×Dv patch tokens of the CLIP vision tower, or None.
    """

    text: torch.Tensor
    empty: torch.Tensor
    latent_mean: torch.Tensor
    latent_std: torch.Tensor
    repa: torch.Tensor | None

    def __len__(self) -> int:
        return len(self.text)

    def __add__(self, other: Encodings) -> Encodings:
        """Both sets of pairs, one after the other (the empty caption is ``self``'s)."""
        if (self.repa is None) != (other.repa is None):
            raise ValueError("encodings with and without REPA targets cannot be joined")
        return Encodings(
            torch.cat([self.text, other.text]),
            self.empty,
            torch.cat([self.latent_mean, other.latent_mean]),
            torch.cat([self.latent_std, other.latent_std]),
            torch.cat([self.repa, other.repa]) if self.repa is not None else None,
        )


@torch.no_grad()
def encode_text(
    tokenizer: CLIPTokenizer, text_encoder: CLIPTextModel, captions: list[str]
) -> torch.Tensor:
    """The pipeline's prompt embeddings: padded to ``model_max_length``, last hidden state."""
    device = next(text_encoder.parameters()).device
    ids = tokenizer(
        captions,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    return text_encoder(ids.to(device))[0]


@torch.no_grad()
def encode_bank(
    bank: SceneBank,
    tokenizer: CLIPTokenizer,
    text_encoder: CLIPTextModel,
    vae,
    vision: CLIPVisionModel | None,
    batch_size: int = 256,
    progress: bool = True,
) -> Encodings:
    return encode_pairs(
        bank.images, bank.captions, tokenizer, text_encoder, vae, vision, batch_size, progress
    )


@torch.no_grad()
def encode_pairs(
    images: torch.Tensor,
    captions: list[str],
    tokenizer: CLIPTokenizer,
    text_encoder: CLIPTextModel,
    vae,
    vision: CLIPVisionModel | None = None,
    batch_size: int = 256,
    progress: bool = True,
) -> Encodings:
    """What the frozen stages make of image–caption pairs (``images`` N×3×H×W uint8)."""
    device = next(text_encoder.parameters()).device
    text, means, stds, repa = [], [], [], []
    for start in tqdm(
        range(0, len(images), batch_size),
        desc="encoding scenes",
        disable=not progress,
        mininterval=5,
    ):
        stop = start + batch_size
        text.append(encode_text(tokenizer, text_encoder, captions[start:stop]).half().cpu())
        pixels = images[start:stop].to(device).float()
        posterior = vae.encode(pixels / 127.5 - 1).latent_dist
        means.append(posterior.mean.half().cpu())
        stds.append(posterior.std.half().cpu())
        if vision is not None:
            tokens = vision(pixel_values=clip_pixels(pixels / 255)).last_hidden_state[:, 1:]
            repa.append(tokens.half().cpu())
    empty = encode_text(tokenizer, text_encoder, [""])[0].half().cpu()
    return Encodings(
        torch.cat(text),
        empty,
        torch.cat(means),
        torch.cat(stds),
        torch.cat(repa) if vision is not None else None,
    )


def cached_encodings(path: Path, make) -> Encodings:
    """Load encodings from ``path``, or make and save them (atomically)."""
    if path.is_file():
        return Encodings(**torch.load(path))
    encodings = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as partial:
        torch.save(encodings.__dict__, partial)
    return encodings


class RepaProjector(nn.Module):
    """REPA's MLP from UNet mid-block channels to the vision tower's token width."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_channels, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, out_channels),
        )

    def forward(self, features: torch.Tensor, grid: int) -> torch.Tensor:
        """``B×C×h×w`` features → ``B×grid²×out`` tokens (bilinear up/downsampling first)."""
        features = F.interpolate(features, size=(grid, grid), mode="bilinear", align_corners=False)
        return self.net(features.flatten(2).transpose(1, 2))


class MidBlockFeatures:
    """Keeps the output of the UNet's mid block from the last forward pass."""

    def __init__(self, unet: UNet2DConditionModel) -> None:
        self.output: torch.Tensor | None = None
        self.handle = unet.mid_block.register_forward_hook(self._keep)

    def _keep(self, module, inputs, output) -> None:
        self.output = output

    def remove(self) -> None:
        self.handle.remove()


def min_snr_weights(
    alphas_cumprod: torch.Tensor,
    timesteps: torch.Tensor,
    gamma: float | None,
    prediction_type: str = "epsilon",
) -> torch.Tensor:
    """Per-sample weights of the MSE: ``min(SNR, γ) / SNR`` for ε-prediction,
    ``min(SNR, γ) / (SNR + 1)`` for v-prediction (1 when γ is None)."""
    if gamma is None:
        return torch.ones(len(timesteps))
    alpha = alphas_cumprod[timesteps]
    snr = alpha / (1 - alpha)
    return snr.clamp(max=gamma) / (snr + 1 if prediction_type == "v_prediction" else snr)


class UnetBatches:
    """Each step's latents, noise, timesteps and conditioning: a function of (seed, step).

    ``make_encodings`` runs at the first batch only: a finished stage, rebuilt on a fresh
    machine to write its pipeline, does not encode the scenes again (half an hour on 2 cores).
    """

    def __init__(
        self, stage: UnetStage, make_encodings: Callable[[], Encodings], scaling_factor: float
    ) -> None:
        self.stage = stage
        self.make_encodings = make_encodings
        self.scaling_factor = scaling_factor

    @cached_property
    def encodings(self) -> Encodings:
        return self.make_encodings()

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        stage, encodings = self.stage, self.encodings
        generator = step_generator(stage.seed, step)
        indices = torch.randint(len(encodings), (stage.batch_size,), generator=generator)
        mean = encodings.latent_mean[indices].float()
        std = encodings.latent_std[indices].float()
        latents = (mean + std * torch.randn(mean.shape, generator=generator)) * self.scaling_factor
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(
            stage.num_train_timesteps, (stage.batch_size,), generator=generator
        )
        drop = torch.rand(stage.batch_size, generator=generator) < stage.caption_dropout
        text = encodings.text[indices].float()
        text[drop] = encodings.empty.float()
        batch = {"latents": latents, "noise": noise, "timesteps": timesteps, "text": text}
        if encodings.repa is not None:
            batch["repa"] = encodings.repa[indices].float()
        return batch


def unet_loss(
    stage: UnetStage,
    unet: UNet2DConditionModel,
    scheduler: DDPMScheduler,
    batch: dict[str, torch.Tensor],
    projector: RepaProjector | None,
    mid: MidBlockFeatures | None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted MSE to the scheduler's target (ε, or v for a v-prediction model) plus
    ``repa_weight`` × (1 − cosine similarity to the REPA targets)."""
    device = next(unet.parameters()).device
    latents, noise = batch["latents"].to(device), batch["noise"].to(device)
    timesteps = batch["timesteps"]
    noisy = scheduler.add_noise(latents, noise, timesteps.to(device))
    prediction = unet(noisy, timesteps.to(device), batch["text"].to(device)).sample
    kind = scheduler.config.prediction_type
    target = noise if kind == "epsilon" else scheduler.get_velocity(latents, noise, timesteps)
    per_sample = (prediction - target).square().mean((1, 2, 3))
    weights = min_snr_weights(scheduler.alphas_cumprod, timesteps, stage.min_snr_gamma, kind)
    diffusion = (weights.to(device) * per_sample).mean()
    parts = {"mse": per_sample.mean().item()}
    loss = diffusion
    if projector is not None and mid is not None and "repa" in batch:
        targets = batch["repa"].to(device)
        grid = math.isqrt(targets.shape[1])
        projected = projector(mid.output, grid)
        similarity = F.cosine_similarity(projected, targets, dim=-1).mean()
        loss = loss + stage.repa_weight * (1 - similarity)
        parts["repa_cos"] = similarity.item()
    return loss, parts


class Denoiser(nn.Module):
    """The UNet and its training-only REPA projector, so the loop optimises both."""

    def __init__(self, unet: UNet2DConditionModel, projector: RepaProjector | None) -> None:
        super().__init__()
        self.unet = unet
        self.projector = projector


def train_unet(
    stage: UnetStage,
    encodings: Callable[[], Encodings],
    scaling_factor: float,
    latent_channels: int,
    cross_attention_dim: int,
    repa_width: int,
    folder: Path,
    device: torch.device,
    progress: bool = True,
    checkpoint_seconds: float = 120.0,
    deadline: float | None = None,
) -> tuple[UNet2DConditionModel, UNet2DConditionModel, int, float]:
    """Train (or resume) the UNet; returns its EMA and raw weights, the step and seconds.

    ``encodings`` makes the scenes' encodings, called only if a step is left to train;
    ``repa_width``: the width of their vision tokens, REPA's target.
    """
    torch.manual_seed(stage.seed)
    unet = build_unet(stage, latent_channels, cross_attention_dim)
    use_repa = stage.repa_weight > 0
    projector = (
        RepaProjector(stage.block_out_channels[-1], stage.repa_hidden, repa_width)
        if use_repa
        else None
    )
    denoiser = Denoiser(unet, projector).to(device)
    ema = ExponentialAverage(unet, stage.ema_decay).to(device)
    optimizer = torch.optim.AdamW(
        optimizer_groups(denoiser, stage.weight_decay), lr=stage.learning_rate, betas=(0.9, 0.99)
    )
    scheduler = training_scheduler(stage)
    batches = UnetBatches(stage, encodings, scaling_factor)
    mid = MidBlockFeatures(unet) if use_repa else None

    def step_loss(step: int) -> torch.Tensor:
        loss, _ = unet_loss(stage, unet, scheduler, batches(step), projector, mid)
        return loss

    try:
        step, seconds = train(
            {"denoiser": denoiser, "ema": ema},
            optimizer,
            step_loss,
            Schedule(stage.learning_rate, stage.steps, stage.warmup_steps),
            folder,
            "emoji-sd 3/3 UNet",
            progress,
            checkpoint_seconds,
            max_grad_norm=stage.max_grad_norm,
            log_every=LOG_EVERY,
            deadline=deadline,
            after_step=lambda step: ema.update(unet, step),
        )
    finally:
        if mid is not None:
            mid.remove()
    return ema.average.eval(), unet.eval(), step, seconds
