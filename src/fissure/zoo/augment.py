"""Style augmentation for judges, on batches of tensors.

SAGE's surrogate must not be fooled by style alone, and a verifier must keep its
accuracy on generated images, which are softer and noisier than rendered
scenes. Each image draws its own transforms from a seeded generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class StyleAugment:
    """Probabilities and strengths of each transform."""

    flip: float = 0.5
    colour: float = 0.8
    greyscale: float = 0.1
    blur: float = 0.35
    max_blur_sigma: float = 1.5
    noise: float = 0.3
    max_noise: float = 0.08
    posterise: float = 0.1

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment ``B×3×H×W`` images in ``[0, 1]``."""
        batch = images.shape[0]

        def chosen(probability: float) -> torch.Tensor:
            return (torch.rand(batch, generator=generator) < probability).view(-1, 1, 1, 1)

        def uniform(low: float, high: float) -> torch.Tensor:
            return (low + (high - low) * torch.rand(batch, generator=generator)).view(-1, 1, 1, 1)

        images = torch.where(chosen(self.flip), images.flip(-1), images)
        grey = images.mean(1, keepdim=True)
        jittered = (images * uniform(0.7, 1.3) - uniform(-0.1, 0.1)).clamp(0, 1)  # brightness
        jittered = grey + (jittered - grey) * uniform(0.4, 1.6)  # saturation
        mean = jittered.mean((1, 2, 3), keepdim=True)
        jittered = (mean + (jittered - mean) * uniform(0.7, 1.3)).clamp(0, 1)  # contrast
        images = torch.where(chosen(self.colour), jittered, images)
        images = torch.where(
            chosen(self.greyscale), images.mean(1, keepdim=True).expand_as(images), images
        )
        images = torch.where(
            chosen(self.blur), gaussian_blur(images, uniform(0.3, self.max_blur_sigma)), images
        )
        noisy = images + torch.randn(images.shape, generator=generator) * uniform(0, self.max_noise)
        images = torch.where(chosen(self.noise), noisy.clamp(0, 1), images)
        levels = torch.randint(4, 17, (batch, 1, 1, 1), generator=generator).float()
        images = torch.where(chosen(self.posterise), (images * levels).round() / levels, images)
        return images


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, radius: int = 3) -> torch.Tensor:
    """Blur each image with its own ``sigma`` (shape ``B×1×1×1``), separably."""
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernels = torch.exp(-(offsets.view(1, -1) ** 2) / (2 * sigma.view(-1, 1) ** 2))
    kernels = kernels / kernels.sum(1, keepdim=True)  # B×K
    batch, channels, height, width = images.shape
    flat = images.reshape(1, batch * channels, height, width)
    weight = kernels.repeat_interleave(channels, 0)
    flat = F.conv2d(
        F.pad(flat, (radius, radius, 0, 0), mode="replicate"),
        weight.view(-1, 1, 1, 2 * radius + 1),
        groups=batch * channels,
    )
    flat = F.conv2d(
        F.pad(flat, (0, 0, radius, radius), mode="replicate"),
        weight.view(-1, 1, 2 * radius + 1, 1),
        groups=batch * channels,
    )
    return flat.view(batch, channels, height, width)
