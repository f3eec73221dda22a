"""A torch dataset over a range of scene seeds: images, captions and multi-hot labels.

Nothing is stored: item ``i`` is the scene of seed ``start + i``, rendered when
asked for, so a dataset of millions costs no disk and any worker can make any item.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from fissure.world.classes import class_names
from fissure.world.scenes import Scene, sample_scene


class WorldExample(NamedTuple):
    """One training example; the default collate batches each field."""

    image: torch.Tensor
    """3×64×64 float32 in [0, 1]."""
    caption: str
    labels: torch.Tensor
    """Multi-hot float32 over :func:`class_names`."""


def label_vector(scene: Scene) -> torch.Tensor:
    """The multi-hot vector of the classes present in ``scene``, in :func:`class_names` order."""
    names = class_names()
    vector = torch.zeros(len(names))
    vector[[names.index(name) for name in scene.labels]] = 1.0
    return vector


def image_tensor(scene: Scene) -> torch.Tensor:
    """The scene's image as a 3×64×64 float32 tensor in [0, 1]."""
    pixels = torch.from_numpy(np.asarray(scene.image, dtype=np.float32) / 255.0)
    return pixels.permute(2, 0, 1).contiguous()


class SceneDataset(Dataset[WorldExample]):
    """Scenes of seeds ``start`` … ``start + length - 1``, optionally of one emoji set or object count."""

    def __init__(
        self,
        length: int,
        start: int = 0,
        emoji_set: str | None = None,
        n_objects: int | None = None,
    ) -> None:
        sample_scene(start, n_objects, emoji_set)  # fail now, not in a worker, on bad arguments
        self.length, self.start = length, start
        self.emoji_set, self.n_objects = emoji_set, n_objects

    def __len__(self) -> int:
        return self.length

    def scene(self, index: int) -> Scene:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} scenes")
        return sample_scene(self.start + index, self.n_objects, self.emoji_set)

    def __getitem__(self, index: int) -> WorldExample:
        scene = self.scene(index)
        return WorldExample(image_tensor(scene), scene.caption, label_vector(scene))
