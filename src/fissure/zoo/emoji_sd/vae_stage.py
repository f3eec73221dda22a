"""Stage 2: an AutoencoderKL from 64×64×3 to 16×16 latents (4 channels as SD 1.x; v2: 8).

The UNet can be no better than this decoder, so its loss asks for what the
judges look at: L1 + MSE on pixels, a feature loss in the frozen CLIP vision
tower of stage 1 (objects keep their identity, not only their colours),
optionally the consistency of a frozen surrogate judge, and a tiny KL weight that keeps the latent space smooth without blurring it. The
scaling factor of the latents (1/std, as SD's 0.18215) is measured after training.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from transformers import CLIPVisionModel

from fissure.judges.base import Judge
from fissure.zoo.emoji_sd.clip_stage import clip_pixels
from fissure.zoo.emoji_sd.common import LOG_EVERY, optimizer_groups
from fissure.zoo.emoji_sd.config import DecoderStage, VaeStage
from fissure.zoo.scene_bank import SceneBank
from fissure.zoo.training_loop import Schedule, step_generator, train


def build_vae(stage: VaeStage) -> AutoencoderKL:
    blocks = len(stage.block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        block_out_channels=stage.block_out_channels,
        layers_per_block=stage.layers_per_block,
        latent_channels=stage.latent_channels,
        norm_num_groups=stage.norm_num_groups,
        sample_size=64,
    )


class FeatureLoss(torch.nn.Module):
    """Distance of unit-normalised token features, layer by layer, in a frozen vision tower."""

    def __init__(self, vision: CLIPVisionModel) -> None:
        super().__init__()
        self.vision = vision.eval().requires_grad_(False)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Hidden states after each layer of ``images`` in ``[0, 1]``."""
        output = self.vision(pixel_values=clip_pixels(images), output_hidden_states=True)
        return [F.normalize(state, dim=-1) for state in output.hidden_states[1:]]

    def forward(self, reconstructed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            targets = self.features(original)
        return torch.stack(
            [
                (a - b).square().sum(-1).mean()
                for a, b in zip(self.features(reconstructed), targets, strict=True)
            ]
        ).mean()


class JudgeConsistency(torch.nn.Module):
    """KL divergence of a frozen judge's class probabilities from original to reconstruction.

    It asks the decoder for exactly what the gate measures (the objects stay
    recognisable), with a surrogate judge of another architecture and training
    data than the verifier that gates the stage.
    """

    def __init__(self, judge: Judge) -> None:
        super().__init__()
        self.judge = judge.eval().requires_grad_(False)

    def forward(self, reconstructed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.judge.logits(original).log_softmax(-1)
        predicted = self.judge.logits(reconstructed).log_softmax(-1)
        return F.kl_div(predicted, target, log_target=True, reduction="batchmean")


def vae_loss(
    stage: VaeStage,
    vae: AutoencoderKL,
    images: torch.Tensor,
    generator: torch.Generator,
    feature_loss: FeatureLoss | None,
    judge_loss: JudgeConsistency | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss on ``uint8`` images, and its parts for logging."""
    pixels = images.float() / 127.5 - 1
    posterior = vae.encode(pixels).latent_dist
    noise = torch.randn(posterior.mean.shape, generator=generator).to(pixels.device)
    decoded = vae.decode(posterior.mean + posterior.std * noise).sample
    l1 = (decoded - pixels).abs().mean()
    mse = (decoded - pixels).square().mean()
    kl = posterior.kl().mean() / pixels[0].numel()
    loss = stage.l1_weight * l1 + stage.mse_weight * mse + stage.kl_weight * kl
    parts = {"l1": l1.item(), "mse": mse.item(), "kl": kl.item()}
    if feature_loss is not None and stage.perceptual_weight > 0:
        perceptual = feature_loss((decoded.clamp(-1, 1) + 1) / 2, (pixels + 1) / 2)
        loss = loss + stage.perceptual_weight * perceptual
        parts["perceptual"] = perceptual.item()
    if judge_loss is not None and stage.judge_weight > 0:
        consistency = judge_loss((decoded.clamp(-1, 1) + 1) / 2, (pixels + 1) / 2)
        loss = loss + stage.judge_weight * consistency
        parts["judge_kl"] = consistency.item()
    return loss, parts


def _fit(
    vae: AutoencoderKL,
    losses: VaeStage,
    run: VaeStage | DecoderStage,
    bank: SceneBank,
    vision: CLIPVisionModel | None,
    judge: Judge | None,
    description: str,
    loop: dict,
) -> tuple[AutoencoderKL, int, float]:
    """Train the parameters of ``vae`` that require gradients on ``losses``.

    ``run`` gives the schedule, batch and seed; ``loop`` the training loop's folder
    (resumed when it holds a checkpoint), device, progress, checkpoints and deadline.
    """
    loop = dict(loop)
    device = loop.pop("device")
    optimizer = torch.optim.AdamW(
        optimizer_groups(vae, 0.0), lr=run.learning_rate, betas=(0.9, 0.99)
    )
    feature_loss = (
        FeatureLoss(vision).to(device) if vision is not None and losses.perceptual_weight else None
    )
    judge_loss = (
        JudgeConsistency(judge).to(device) if judge is not None and losses.judge_weight else None
    )

    def step_loss(step: int) -> torch.Tensor:
        generator = step_generator(run.seed, step)
        indices = torch.randint(len(bank), (run.batch_size,), generator=generator)
        images = bank.images[indices].to(device)
        loss, _ = vae_loss(losses, vae, images, generator, feature_loss, judge_loss)
        return loss

    step, seconds = train(
        {"vae": vae},
        optimizer,
        step_loss,
        Schedule(run.learning_rate, run.steps, run.warmup_steps),
        description=description,
        max_grad_norm=losses.max_grad_norm,
        log_every=LOG_EVERY,
        **loop,
    )
    return vae.eval(), step, seconds


def train_vae(
    stage: VaeStage,
    bank: SceneBank,
    vision: CLIPVisionModel | None,
    judge: Judge | None = None,
    **loop,
) -> tuple[AutoencoderKL, int, float]:
    """Train (or resume) the autoencoder; returns it in eval mode, the step and seconds.

    ``loop``: ``folder`` and ``device``, optionally ``progress``, ``checkpoint_seconds``
    and ``deadline`` of :func:`fissure.zoo.training_loop.train`.
    """
    torch.manual_seed(stage.seed)
    vae = build_vae(stage).to(loop["device"])
    return _fit(vae, stage, stage, bank, vision, judge, "emoji-sd 2/3 VAE", loop)


def deepen(vae: AutoencoderKL, extra_layers: int) -> AutoencoderKL:
    """The same autoencoder with ``extra_layers`` more resnets in every block of both halves.

    Stock ``AutoencoderKL`` gives the decoder the encoder's widths, so depth is how
    the decoder grows. A resnet whose last convolution is zero adds nothing to its
    input, so the new ones start as the identity: the encoder's latents (the UNet's
    data) stay exactly as they were, and the decoder starts where it was, with
    more room to learn into.
    """
    if extra_layers == 0:
        return vae
    config = dict(vae.config)
    config["layers_per_block"] += extra_layers
    deeper = AutoencoderKL.from_config(config).to(next(vae.parameters()).device)
    missing, unexpected = deeper.load_state_dict(vae.state_dict(), strict=False)
    old = vae.config.layers_per_block
    new_blocks = {
        *(
            f"encoder.down_blocks.{b}.resnets.{r}"
            for b in range(len(config["block_out_channels"]))
            for r in range(old, old + extra_layers)
        ),
        *(
            f"decoder.up_blocks.{b}.resnets.{r}"
            for b in range(len(config["block_out_channels"]))
            for r in range(old + 1, old + 1 + extra_layers)
        ),
    }
    assert not unexpected and {key.rsplit(".", 2)[0] for key in missing} <= new_blocks
    with torch.no_grad():
        for name in new_blocks:
            conv = deeper.get_submodule(name).conv2
            conv.weight.zero_()
            conv.bias.zero_()
    return deeper


def train_decoder(
    stage: DecoderStage,
    vae_stage: VaeStage,
    vae: AutoencoderKL,
    bank: SceneBank,
    vision: CLIPVisionModel | None,
    judge: Judge | None = None,
    **loop,
) -> tuple[AutoencoderKL, int, float]:
    """Fine-tune (or resume) the decoder of the trained ``vae``; its encoder stays frozen.

    ``stage.extra_layers`` first deepens both halves (:func:`deepen`); the encoder's
    new resnets stay the identity, frozen with the rest of it.
    """
    torch.manual_seed(stage.seed)
    vae = deepen(vae.to(loop["device"]), stage.extra_layers).requires_grad_(False)
    for part in (vae.decoder, vae.post_quant_conv):
        part.requires_grad_(True)
    losses = dataclasses.replace(vae_stage, judge_weight=stage.judge_weight, judge=stage.judge)
    return _fit(vae, losses, stage, bank, vision, judge, "emoji-sd 2b/3 decoder", loop)


@torch.no_grad()
def latent_scaling_factor(vae: AutoencoderKL, bank: SceneBank, count: int = 2048) -> float:
    """1 / std of posterior samples over the first ``count`` scenes: unit-variance latents."""
    device = next(vae.parameters()).device
    generator = torch.Generator().manual_seed(0)
    samples = []
    for start in range(0, min(count, len(bank)), 256):
        pixels = bank.images[start : start + 256].to(device).float() / 127.5 - 1
        posterior = vae.encode(pixels).latent_dist
        noise = torch.randn(posterior.mean.shape, generator=generator).to(device)
        samples.append((posterior.mean + posterior.std * noise).cpu())
    return float(1 / torch.cat(samples).std())
