"""Pixels for a scene: paint the background, then paste each sprite in order."""

from __future__ import annotations

from functools import cache

from PIL import Image

from fissure.world.atlas import sprites
from fissure.world.backgrounds import BACKGROUNDS
from fissure.world.draws import Draws
from fissure.world.layout import SceneObject


@cache
def _premultiplied(emoji_set: str) -> dict[str, Image.Image]:
    """Sprites with alpha premultiplied, so scaling and rotating leave no dark fringes."""
    return {name: sprite.convert("RGBa") for name, sprite in sprites(emoji_set).items()}


def _sprite(emoji_set: str, scene_object: SceneObject) -> Image.Image:
    sprite = _premultiplied(emoji_set)[scene_object.name]
    sprite = sprite.resize((scene_object.size,) * 2, Image.Resampling.BILINEAR)
    if scene_object.flipped:
        sprite = sprite.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    sprite = sprite.rotate(scene_object.angle, Image.Resampling.BILINEAR, expand=True)
    return sprite.convert("RGBA")


def render(
    seed: int, background: str, emoji_set: str, objects: tuple[SceneObject, ...]
) -> Image.Image:
    """The 64×64 RGB image of a scene; the same arguments always give the same pixels."""
    image = BACKGROUNDS[background].paint(Draws(seed, "background"))
    for scene_object in objects:
        sprite = _sprite(emoji_set, scene_object)
        x, y = scene_object.center
        image.paste(sprite, (round(x - sprite.width / 2), round(y - sprite.height / 2)), sprite)
    return image
