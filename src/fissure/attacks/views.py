"""Fixed views of an image (flip, shifts, zoom) for a surrogate that must agree on all of them.

A latent that removes the object removes it from every view; a pattern that
only fools the surrogate's classifiers at one pixel alignment rarely survives a
flip or a shift by a sixteenth of the image. Averaging the loss over views (expectation over
transformations) and asking for success on each keeps the search on the first
kind. The views are fixed, not random, so an attack stays deterministic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: How many views :func:`image_views` returns.
VIEW_COUNT = 5
#: The views in words, kept in a run's settings: a folder begun with other views (a 4-px
#: shift on every image size, before) is refused, not resumed into a mix of the two.
VIEWS = "as is, flipped, shifted ±1/16 of the height, zoomed 8/7"


def image_views(images: torch.Tensor, shift: int | None = None) -> torch.Tensor:
    """``V×B×3×H×W``: the images as they are, flipped, shifted ±``shift`` px, zoomed 8/7.

    ``shift`` defaults to a sixteenth of the height, as the zoom's crop: 4 px on the
    emoji world's 64-pixel images, 32 px on SD's 512 (4 px there would change nothing).
    """
    height, width = images.shape[-2:]
    crop = height // 16
    shift = crop if shift is None else shift
    padded = F.pad(images, (shift, shift, shift, shift), mode="replicate")
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
