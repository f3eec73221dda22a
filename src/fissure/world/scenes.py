"""A scene of the emoji world: a pure function of its seed.

Everything but the pixels (objects, background, emoji set, caption) is drawn
first and cheaply; the image is rendered the first time it is asked for.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from functools import cached_property

from PIL import Image

from fissure.errors import FissureError
from fissure.world.atlas import EMOJI_SETS, check_emoji_set
from fissure.world.backgrounds import BACKGROUNDS
from fissure.world.captions import write_caption
from fissure.world.draws import Draws
from fissure.world.layout import MAX_OBJECTS, SceneObject, sample_layout
from fissure.world.render import render


@dataclass(frozen=True)
class Scene:
    """One scene: its seed, emoji set, background, objects and caption; ``.image`` renders it."""

    seed: int
    emoji_set: str
    background: str
    objects: tuple[SceneObject, ...]
    caption: str

    @property
    def labels(self) -> tuple[str, ...]:
        """The class names present, each once, in the order the objects were placed."""
        return tuple(dict.fromkeys(scene_object.name for scene_object in self.objects))

    def in_set(self, emoji_set: str) -> Scene:
        """The same scene drawn with another emoji set: the style shift held-out judges see."""
        return Scene(
            self.seed, check_emoji_set(emoji_set), self.background, self.objects, self.caption
        )

    @cached_property
    def image(self) -> Image.Image:
        """The 64×64 RGB picture, rendered on first use."""
        return render(self.seed, self.background, self.emoji_set, self.objects)


def sample_scene(seed: int, n_objects: int | None = None, emoji_set: str | None = None) -> Scene:
    """The scene of ``seed``: 1–3 objects (or ``n_objects``) in one emoji set (or a seeded choice).

    A fixed ``n_objects`` or ``emoji_set`` skips its draw, so the draws after it shift:
    ``sample_scene(s, emoji_set="noto")`` is another scene than ``sample_scene(s)`` even
    when seed ``s`` chose noto (scene banks and trained models depend on this). For the
    same scene in another set, use :meth:`Scene.in_set`.
    """
    try:
        seed = operator.index(seed)  # numpy and torch integers too
    except TypeError:
        raise FissureError(f"a scene seed is a non-negative integer, not {seed!r}") from None
    if seed < 0:
        raise FissureError(f"a scene seed is a non-negative integer, not {seed}")
    if n_objects is not None and not 1 <= n_objects <= MAX_OBJECTS:
        raise FissureError(f"n_objects must be between 1 and {MAX_OBJECTS}, not {n_objects}")
    draws = Draws(seed, "scene")
    emoji_set = draws.choice(EMOJI_SETS) if emoji_set is None else check_emoji_set(emoji_set)
    background = draws.choice(tuple(BACKGROUNDS))
    objects = sample_layout(draws, n_objects)
    caption = write_caption(objects, BACKGROUNDS[background], draws)
    return Scene(seed, emoji_set, background, objects, caption)
