"""What every judge is: a differentiable map from images to class probabilities.

Attacks backpropagate through judges, so preprocessing (resize, normalise)
happens inside the module with differentiable tensor ops, never in PIL.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fissure.errors import FissureError


def label_column(labels: Sequence[str], label: str) -> int:
    """The column of a class name in a judge's ``labels``, or a one-line error listing close names."""
    try:
        return list(labels).index(label)
    except ValueError:
        close = [name for name in labels if label.lower() in name.lower()][:5]
        hint = f"; did you mean {', '.join(close)}?" if close else f" ({len(labels)} labels)"
        raise FissureError(f"unknown class {label!r} for this judge{hint}") from None


def distinct_labels(labels: Sequence[str]) -> list[str]:
    """``labels`` with each repeat named by its column: ``["crane", …, "crane (517)"]``."""
    seen: set[str] = set()
    distinct = []
    for column, label in enumerate(labels):
        distinct.append(label if label not in seen else f"{label} ({column})")
        seen.add(distinct[-1])
    return distinct


def plain_label(label: str) -> str:
    """The class name a :func:`distinct_labels` entry came from: "crane (517)" → "crane"."""
    return re.sub(r" \(\d+\)$", "", label)


class Judge(nn.Module):
    """Maps images ``B×3×H×W`` in ``[0, 1]`` (any size) to probabilities ``B×C`` over ``labels``.

    Subclasses implement :meth:`logits` on images in ``[0, 1]``, passing them through
    :meth:`preprocess` (the judge's resize, crop and normalisation) first. Probabilities are a
    softmax over the labels; for emoji judges, which see scenes of 1–3 objects, the
    probability mass is shared between the objects present (they are trained on
    the normalised multi-hot target), so the top-k classes are the k objects.
    """

    source: str = ""
    """The name :func:`~fissure.judges.load_judge` loaded it by ("emoji/surrogate", a hub id)."""

    def __init__(
        self,
        labels: Sequence[str],
        input_size: int,
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
        resize_size: int | None = None,
        interpolation: str = "bilinear",
        keep_aspect: bool = False,
        bgr: bool = False,
    ) -> None:
        """``resize_size``: resize to it, then centre-crop ``input_size``, as many ImageNet
        classifiers were trained (ResNet-50: 256, then 224); default: resize to ``input_size``.
        ``keep_aspect``: resize the shorter side only, as "shortest edge" image processors
        (CLIP's, ConvNeXt's) do, so the crop cuts a non-square image instead of squashing it.
        A label that repeats an earlier one (ImageNet heads name two classes "crane") becomes
        ``"crane (517)"``, its column: every class stays a target of its own. ``bgr``: the
        network takes its channels in BGR order (MobileViT), after normalising RGB."""
        if not labels:
            raise FissureError("a judge needs at least one label")
        super().__init__()
        self.bgr = bgr
        self.keep_aspect = keep_aspect
        self.labels = distinct_labels(labels)
        self.input_size = int(input_size)
        self.resize_size = int(resize_size or input_size)
        self.interpolation = interpolation
        self.register_buffer(
            "mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Resize (the shorter side, if ``keep_aspect``), centre-crop to the judge's input
        size and normalise, differentiably, as the judge's image processor does.

        Images are converted to the judge's own precision and device: a half-precision
        generator's images meet float32 weights.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise FissureError(f"a judge takes images shaped B×3×H×W, not {tuple(images.shape)}")
        images = images.to(self.mean)
        height, width = images.shape[-2:]
        size = self.resize_size
        if self.keep_aspect:
            scale = size / min(height, width)
            resized = (max(size, round(height * scale)), max(size, round(width * scale)))
        else:
            resized = (size, size)
        if (height, width) != resized:
            images = F.interpolate(
                images,
                size=resized,
                mode=self.interpolation,
                align_corners=False,
                antialias=height > resized[0] or width > resized[1],
            ).clamp(0, 1)  # bicubic overshoots; image processors clip to the pixel range
        top = (images.shape[-2] - self.input_size) // 2
        left = (images.shape[-1] - self.input_size) // 2
        images = images[..., top : top + self.input_size, left : left + self.input_size]
        normalised = (images - self.mean) / self.std
        return normalised.flip(1) if self.bgr else normalised

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Unnormalised scores ``B×C`` for images in ``[0, 1]``."""
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits(images).softmax(dim=-1)

    def member_probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """``M×B×C``: each member's probabilities, for SAGE's loss; one judge is M = 1."""
        return self(images).unsqueeze(0)

    def label_index(self, label: str) -> int:
        """The column of a class name, or a one-line error listing close names."""
        return label_column(self.labels, label)

    @torch.no_grad()
    def top_k(self, images: torch.Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
        """The k most probable labels of each image, with their probabilities."""
        probabilities = self(images)
        values, indices = probabilities.topk(min(k, self.num_labels), dim=-1)
        return [
            [(self.labels[i], float(v)) for v, i in zip(row_values, row_indices, strict=True)]
            for row_values, row_indices in zip(values.tolist(), indices.tolist(), strict=True)
        ]
