"""Nightshade's poisons, as its release makes them (Shan et al., Shawn-Shan/nightshade-release).

An image of concept A is perturbed, within an L∞ bound, until the VAE encoder maps it
near the latent of an anchor: the model's own image of "a photo of a B" at a fixed seed.
Captioned as A, the poisoned image teaches a fine-tuned model B's features for A's words.
The release takes 500 sign-gradient steps on the L2 distance between the latents' means,
the step size decaying linearly from the bound to a hundredth of it; the bound is 0.05
on [0, 1] pixels by default (its command line passes 0.04).
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL

from fissure.errors import FissureError


def latent_mean(vae: AutoencoderKL, images: torch.Tensor) -> torch.Tensor:
    """The VAE encoder's latent mean of images in [0, 1] (the encoder reads [-1, 1])."""
    return vae.encode(images * 2 - 1).latent_dist.mean


def check_bound(epsilon: float) -> float:
    """An L∞ bound on [0, 1] pixels: above 0, at most 1."""
    if not 0 < epsilon <= 1:
        raise FissureError(
            f"epsilon, the L∞ bound, must be in (0, 1] on [0, 1] pixels, not {epsilon}"
        )
    return epsilon


def step_sizes(epsilon: float, steps: int) -> list[float]:
    """The release's schedule, on [0, 1] pixels: from ``epsilon`` down linearly, by
    ``(epsilon − epsilon / 100) / steps`` a step."""
    return [epsilon - (epsilon - epsilon / 100) / steps * i for i in range(steps)]


def nightshade(
    vae: AutoencoderKL,
    images: torch.Tensor,
    anchor: torch.Tensor,
    epsilon: float = 0.05,
    steps: int = 500,
) -> torch.Tensor:
    """Poisoned copies of ``images`` (B×3×H×W in [0, 1]): each within ``epsilon`` of its
    original per pixel, its latent mean pulled toward ``anchor``'s (1×3×H×W, the model's
    image of the target concept) by ``steps`` sign-gradient steps on the L2 distance. Each
    image is optimised on its own (the distances are summed, so their gradients never mix)."""
    check_bound(epsilon)
    if steps < 1:
        raise FissureError(f"steps must be at least 1, not {steps}")
    if images.ndim != 4 or anchor.shape != (1, *images.shape[1:]):
        raise FissureError(
            f"images must be B×3×H×W and the anchor 1×3×H×W of the same size: got "
            f"{tuple(images.shape)} and {tuple(anchor.shape)}"
        )
    vae.requires_grad_(False)
    device = next(vae.parameters()).device
    images, anchor = images.to(device), anchor.to(device)
    with torch.no_grad():
        target = latent_mean(vae, anchor)
    modifier = torch.zeros_like(images)
    for size in step_sizes(epsilon, steps):
        modifier.requires_grad_(True)
        latents = latent_mean(vae, (images + modifier).clamp(0, 1))
        distance = (latents - target).flatten(1).norm(dim=1).sum()
        (gradient,) = torch.autograd.grad(distance, modifier)
        modifier = (modifier - size * gradient.sign()).clamp(-epsilon, epsilon).detach()
    return (images + modifier).clamp(0, 1).cpu()
