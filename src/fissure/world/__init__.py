"""The emoji world: procedural 64×64 scenes of emoji sprites with captions.

A scene is a pure function of its seed::

    from fissure.world import sample_scene
    scene = sample_scene(7)
    scene.caption, scene.labels, scene.image  # str, class names, PIL image (rendered lazily)

``SceneDataset`` (torch) streams scenes over a seed range for training.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fissure.world.atlas import EMOJI_SETS
from fissure.world.backgrounds import BACKGROUNDS
from fissure.world.classes import EmojiClass, class_names, classes, get_class
from fissure.world.layout import SceneObject
from fissure.world.lexicon import Mention, mentions, polysemous_words
from fissure.world.scenes import Scene, sample_scene

if TYPE_CHECKING:
    from fissure.world.dataset import SceneDataset, WorldExample, label_vector

__all__ = [
    "BACKGROUNDS",
    "EMOJI_SETS",
    "EmojiClass",
    "Mention",
    "Scene",
    "SceneDataset",
    "SceneObject",
    "WorldExample",
    "class_names",
    "classes",
    "get_class",
    "label_vector",
    "mentions",
    "polysemous_words",
    "sample_scene",
]

_TORCH_NAMES = {"SceneDataset", "WorldExample", "label_vector"}


def __getattr__(name: str):
    """Import the torch dataset only when asked for, so the world and its CLI stay light."""
    if name in _TORCH_NAMES:
        from fissure.world import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'fissure.world' has no attribute {name!r}")
