"""Pre-rendered scenes in memory, so training epochs cost no rendering.

A bank is a pure function of its spec (seeds, object counts, emoji sets) and of the
world: it is cached to disk under a name derived from both and rebuilt only when absent.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from fissure.atomic import atomic_write
from fissure.world import class_names, sample_scene
from fissure.world.fingerprint import world_fingerprint


@dataclass(frozen=True)
class BankSpec:
    """Which scenes a bank holds: ``count`` seeds from ``first_seed``.

    Object counts cycle through ``object_counts``, and emoji sets through
    ``emoji_sets``, so every mixture is exact and reproducible.
    """

    first_seed: int
    count: int
    object_counts: tuple[int, ...] = (1, 1, 2, 2, 3)
    emoji_sets: tuple[str, ...] = ("noto", "twemoji", "openmoji")
    format_version: int = 2
    """Bumped whenever what a bank stores changes, so stale caches are not reused."""

    def key(self) -> str:
        """The cache name: the spec and the world (:func:`~fissure.world.fingerprint.world_fingerprint`)."""
        named = {**asdict(self), "world": world_fingerprint()}
        return hashlib.sha256(json.dumps(named, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class SceneBank:
    """``images`` N×3×64×64 uint8, ``targets`` N×C multi-hot, and per scene its caption,
    emoji set and number of distinct classes."""

    images: torch.Tensor
    targets: torch.Tensor
    captions: list[str]
    emoji_sets: list[str]
    object_counts: torch.Tensor
    spec: BankSpec | None = None
    """What it was built from (None for a subset): what a model trained on it records."""

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, mask: torch.Tensor) -> SceneBank:
        indices = mask.nonzero().flatten()
        return SceneBank(
            self.images[indices],
            self.targets[indices],
            [self.captions[i] for i in indices.tolist()],
            [self.emoji_sets[i] for i in indices.tolist()],
            self.object_counts[indices],
        )

    def where(self, emoji_set: str | None = None, n_objects: int | None = None) -> SceneBank:
        mask = torch.ones(len(self), dtype=torch.bool)
        if emoji_set is not None:
            mask &= torch.tensor([s == emoji_set for s in self.emoji_sets])
        if n_objects is not None:
            mask &= self.object_counts == n_objects
        return self.subset(mask)

    @classmethod
    def build(cls, spec: BankSpec, progress: bool = True) -> SceneBank:
        names = class_names()
        column = {name: i for i, name in enumerate(names)}
        images = np.empty((spec.count, 64, 64, 3), dtype=np.uint8)
        targets = torch.zeros(spec.count, len(names))
        captions, sets, counts = [], [], []
        for i in tqdm(
            range(spec.count), desc="rendering scenes", disable=not progress, mininterval=2
        ):
            n_objects = spec.object_counts[i % len(spec.object_counts)]
            emoji_set = spec.emoji_sets[(i // len(spec.object_counts)) % len(spec.emoji_sets)]
            scene = sample_scene(spec.first_seed + i, n_objects=n_objects, emoji_set=emoji_set)
            images[i] = np.asarray(scene.image)
            targets[i, [column[label] for label in scene.labels]] = 1
            captions.append(scene.caption)
            sets.append(emoji_set)
            counts.append(len(scene.labels))
        return cls(
            torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
            targets,
            captions,
            sets,
            torch.tensor(counts),
            spec,
        )

    @classmethod
    def cached(cls, spec: BankSpec, folder: str | Path, progress: bool = True) -> SceneBank:
        """Load the bank of ``spec`` from ``folder``, building and saving it if absent."""
        path = Path(folder) / f"bank-{spec.key()}.pt"
        if path.is_file():
            return cls(**torch.load(path), spec=spec)
        bank = cls.build(spec, progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as partial:
            torch.save({k: v for k, v in vars(bank).items() if k != "spec"}, partial)
        return bank
