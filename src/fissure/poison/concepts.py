"""Which concepts are poisoned, and the world's pictures of a concept chosen as
Nightshade's release chooses them.

The release keeps images whose CLIP score against "a photo of a <concept>" clears a
threshold, then the best of those by how close their captions are to that prompt. Here
the candidates are emoji-world scenes that hold the concept (Noto, the set emoji-sd
draws), from a seed range no model trained on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from fissure.errors import FissureError
from fissure.judges.pretrained import ClipJudge
from fissure.world import class_names, sample_scene

POISON_FIRST_SEED = 40_000_000
"""Scenes for poisons start here: far from emoji-sd's training (20,000,000…), the judges'
and the fine-tuning's clean scenes (30,000,000…)."""
SEARCH_LIMIT = 2_000_000
"""Seeds scanned for a concept's scenes before giving up (a class is in ~2% of scenes)."""
EMOJI_CLIP_THRESHOLD = 0.5
"""The selection threshold on emoji-sd's CLIP, whose cosines run higher than OpenAI's
(the release's 0.24 suits ViT-L/14): measured on 400 held-out scenes, an image scores
0.55 (25th percentile) to 0.83 (95th) against its own class's prompt and at most 0.49
(95th percentile) against another class's."""


def check_concept(name: str) -> str:
    if name not in class_names():
        raise FissureError(
            f"unknown concept {name!r}: name an emoji class (`fissure world classes` lists them)"
        )
    return name


def check_pair(source: str, target: str) -> tuple[str, str]:
    """A poison's concepts: two distinct world classes, A poisoned toward B."""
    check_concept(source), check_concept(target)
    if source == target:
        raise FissureError(
            f"a poison moves one concept to another: source and target are both {source!r}"
        )
    return source, target


def concept_pairs(count: int, draw: int = 0) -> list[tuple[str, str]]:
    """``count`` poisoned pairs A → B with every class in at most one pair, in an order fixed
    by ``draw``: the first k pairs of a sweep are the same at every C_P."""
    names = class_names()
    if not 0 <= count <= len(names) // 2:
        raise FissureError(
            f"at most {len(names) // 2} concepts can be poisoned with distinct targets "
            f"({len(names)} classes), not {count}"
        )
    ranked = sorted(names, key=lambda name: hashlib.sha256(f"{draw}:{name}".encode()).digest())
    return [(ranked[2 * i], ranked[2 * i + 1]) for i in range(count)]


@dataclass
class ConceptImages:
    """Scenes of one concept: ``images`` N×3×64×64 uint8, their captions and seeds."""

    images: torch.Tensor
    captions: list[str]
    seeds: list[int]


def concept_candidates(
    name: str, count: int, first_seed: int = POISON_FIRST_SEED, without: str | None = None
) -> ConceptImages:
    """The first ``count`` Noto scenes from ``first_seed`` on that hold ``name`` (and not
    ``without``: a poison's picture of A never shows its B too)."""
    check_concept(name)
    images, captions, seeds = [], [], []
    for seed in range(first_seed, first_seed + SEARCH_LIMIT):
        scene = sample_scene(seed, emoji_set="noto")
        if name in scene.labels and without not in scene.labels:
            images.append(torch.from_numpy(np.array(scene.image)).permute(2, 0, 1))
            captions.append(scene.caption)
            seeds.append(seed)
            if len(seeds) == count:
                return ConceptImages(torch.stack(images), captions, seeds)
    raise FissureError(f"only {len(seeds)} scenes of {name!r} in {SEARCH_LIMIT:,} seeds")


@torch.no_grad()
def select_concept_images(
    clip: ClipJudge,
    name: str,
    count: int,
    threshold: float = EMOJI_CLIP_THRESHOLD,
    pool: int = 3,
    first_seed: int = POISON_FIRST_SEED,
    without: str | None = None,
) -> ConceptImages:
    """``count`` pictures of ``name`` as the release picks them: among ``pool × count``
    candidates, those whose CLIP score against "a photo of a <name>" exceeds ``threshold``,
    the closest by caption to that prompt."""
    if count < 1:
        raise FissureError(f"a poison needs at least one image, not {count}")
    candidates = concept_candidates(name, pool * count, first_seed, without)
    prompt = clip.text_features_of([f"a photo of a {name}"])
    images = candidates.images.float() / 255
    scores = torch.cat(
        [clip.image_features(images[i : i + 256]) @ prompt.T for i in range(0, len(images), 256)]
    ).squeeze(1)
    kept = (scores > threshold).nonzero().flatten()
    if len(kept) < count:
        raise FissureError(
            f"only {len(kept)} of {len(images)} candidate images of {name!r} score above "
            f"{threshold} with CLIP: lower --clip-threshold or ask for fewer poisons"
        )
    closeness = clip.text_features_of([candidates.captions[i] for i in kept.tolist()]) @ prompt.T
    best = kept[closeness.squeeze(1).argsort(descending=True)[:count]].tolist()
    return ConceptImages(
        candidates.images[best],
        [candidates.captions[i] for i in best],
        [candidates.seeds[i] for i in best],
    )
