"""Fixed views of an image (flip, shifts, zoom) for a surrogate that must agree on all of them.

A latent that removes the object removes it from every view; a pattern that
only fools the surrogate's classifiers at one pixel alignment rarely survives a
flip or a four-pixel shift. Averaging the loss over views (expectation over
transformations) and asking for success on each keeps the search on the first
kind. The views are fixed, not random, so an attack stays deterministic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: How many views :func:`image_views` returns.
VIEW_COUNT = 5


def image_views(images: torch.Tensor, shift: int = 4) -> torch.Tensor:
    """``V×B×3×H×W``: the images as they are, flipped, shifted ±``shift`` px, zoomed 8/7."""
    height, width = images.shape[-2:]
    padded = F.pad(images, (shift, shift, shift, shift), mode="replicate")
    crop = height // 16
    zoomed = F.interpolate(
        images[..., crop : height - crop, crop : width - crop],
        size=(height, width),
        mode="bilinear",
        align_corners=False,
    )
    return torch.stack(
        [
            images,
            images.flip(-1),
            padded[..., :height, :width],
            padded[..., 2 * shift :, 2 * shift :],
            zoomed,
        ]
    )
