"""Poisoned training pairs for concept A → B, saved so a sweep makes each only once.

- **dirty-label**: captions of A's scenes with pictures of B, the plain mislabelling
  the implosion paper measures;
- **nightshade**: A's own pictures, each perturbed within an L∞ bound until the VAE
  encodes it near the model's own image of "a photo of a B" (:mod:`.nightshade`),
  captioned as A. Batches are saved as they finish, so a killed run loses one batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from diffusers import StableDiffusionPipeline
from tqdm.auto import tqdm

from fissure.atomic import atomic_write
from fissure.errors import FissureError
from fissure.judges.pretrained import ClipJudge
from fissure.poison.concepts import EMOJI_CLIP_THRESHOLD, check_pair, select_concept_images
from fissure.poison.nightshade import check_bound, nightshade

PoisonKind = Literal["dirty-label", "nightshade"]
POISON_KINDS: tuple[str, ...] = get_args(PoisonKind)
ANCHOR_SEED = 0
"""The fixed seed of the anchor, the model's own image of "a photo of a B"."""


@dataclass
class PoisonSet:
    """Poisoned pairs for ``source`` → ``target``: ``images`` N×3×H×W uint8 with ``captions``."""

    source: str
    target: str
    kind: str
    images: torch.Tensor
    captions: list[str]

    def __len__(self) -> int:
        return len(self.images)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as partial:
            torch.save(vars(self), partial)

    @classmethod
    def load(cls, path: Path) -> PoisonSet:
        return cls(**torch.load(path))


def check_kind(kind: str) -> str:
    if kind not in POISON_KINDS:
        raise FissureError(f"unknown poison kind {kind!r}: choose {' or '.join(POISON_KINDS)}")
    return kind


def dirty_label(
    clip: ClipJudge,
    source: str,
    target: str,
    count: int,
    threshold: float = EMOJI_CLIP_THRESHOLD,
) -> PoisonSet:
    """``count`` captions of ``source``'s scenes, each paired with a picture of ``target``."""
    check_pair(source, target)
    captions = select_concept_images(clip, source, count, threshold, without=target).captions
    images = select_concept_images(clip, target, count, threshold, without=source).images
    return PoisonSet(source, target, "dirty-label", images, captions)


@torch.no_grad()
def anchor_image(pipeline: StableDiffusionPipeline, target: str, seed: int = ANCHOR_SEED):
    """The model's own picture of "a photo of a <target>" (1×3×H×W in [0, 1])."""
    generator = torch.Generator().manual_seed(seed)
    return (
        pipeline(
            f"a photo of a {target}", generator=generator, num_inference_steps=25, output_type="pt"
        )
        .images.float()
        .cpu()
    )


def nightshade_poisons(
    pipeline: StableDiffusionPipeline,
    clip: ClipJudge,
    source: str,
    target: str,
    count: int,
    folder: Path,
    epsilon: float = 0.05,
    steps: int = 500,
    threshold: float = EMOJI_CLIP_THRESHOLD,
    batch_size: int = 32,
    progress: bool = True,
) -> PoisonSet:
    """``count`` pictures of ``source`` shaded toward the model's ``target``, captioned as
    ``source``; each finished batch is kept in ``folder`` and reused by a rerun."""
    check_pair(source, target), check_bound(epsilon)  # before any picture is chosen
    chosen = select_concept_images(clip, source, count, threshold, without=target)
    anchor = anchor_image(pipeline, target)
    images = chosen.images.float() / 255
    if images.shape[-1] != anchor.shape[-1]:  # a real checkpoint's native size
        images = F.interpolate(images, size=anchor.shape[-2:], mode="bicubic").clamp(0, 1)
    poisoned = []
    for start in tqdm(
        range(0, count, batch_size), desc=f"shading {source} → {target}", disable=not progress
    ):
        path = Path(folder) / f"batch-{start // batch_size}.pt"
        if not path.is_file():
            shaded = nightshade(
                pipeline.vae.float(), images[start : start + batch_size], anchor, epsilon, steps
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path) as partial:
                torch.save((shaded * 255).round().byte(), partial)
        poisoned.append(torch.load(path))
    return PoisonSet(source, target, "nightshade", torch.cat(poisoned), chosen.captions)


@dataclass(frozen=True)
class PoisonSettings:
    """How each concept's poisons are made."""

    kind: str = "dirty-label"
    count: int = 200
    """Poisons per concept."""
    epsilon: float = 0.05
    steps: int = 500
    clip_threshold: float = EMOJI_CLIP_THRESHOLD

    def file(self, folder: Path, source: str, target: str) -> Path:
        """Where this configuration's poisons for ``source`` → ``target`` are kept."""
        name = (
            self.kind if self.kind == "dirty-label" else f"nightshade-e{self.epsilon}-s{self.steps}"
        )
        return Path(folder) / f"{name}-{self.count}-{source}-to-{target}.pt".replace(" ", "_")

    def __post_init__(self) -> None:
        check_kind(self.kind)
        if self.count < 1:
            raise FissureError(f"poisons per concept must be at least 1, not {self.count}")
        check_bound(self.epsilon)


def make_poisons(
    pipeline: StableDiffusionPipeline,
    clip: ClipJudge,
    source: str,
    target: str,
    settings: PoisonSettings,
    folder: Path,
    progress: bool = True,
) -> PoisonSet:
    """One concept's poisons, made once and kept in ``folder``."""
    path = settings.file(folder, source, target)
    if path.is_file():
        return PoisonSet.load(path)
    if settings.kind == "dirty-label":
        poisons = dirty_label(clip, source, target, settings.count, settings.clip_threshold)
    else:
        poisons = nightshade_poisons(
            pipeline, clip, source, target, settings.count, path.with_suffix(".parts"),
            settings.epsilon, settings.steps, settings.clip_threshold, progress=progress,
        )  # fmt: skip
    poisons.save(path)
    return poisons
