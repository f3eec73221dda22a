"""Images as people keep them: 8 bits per channel, as a PNG stores them.

Judges that decide a published number read images through :func:`as_saved`, so a user who
saves the PNGs and reads them again gets the same verdicts and scores.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def as_saved(images: torch.Tensor) -> torch.Tensor:
    """Images in ``[0, 1]`` rounded to the 256 levels a PNG holds, as float32 (bfloat16 cannot
    hold most of those levels)."""
    return (images.detach().float().clamp(0, 1) * 255).round() / 255


def to_pil(image: torch.Tensor) -> Image.Image:
    """One ``3×H×W`` float image in ``[0, 1]`` as an RGB picture."""
    pixels = (as_saved(image) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(pixels))
