"""Emoji sprite atlases: one committed PNG per emoji set, so scenes need only Pillow.

Each set is drawn by different artists, so the same class looks different in
each: one set can train a generator while another gives style-shifted data for
robust and held-out judges. ``scripts/build_atlas.py`` rebuilds the atlases.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from PIL import Image

from fissure.errors import FissureError

ASSETS = Path(__file__).parent / "assets"
EMOJI_SETS = ("noto", "twemoji", "openmoji")
"""Noto Color Emoji (Google), Twemoji (Twitter) and OpenMoji: three independent drawings."""
SPRITE_SIZE = 48


def check_emoji_set(name: str) -> str:
    """``name`` if it is an emoji set; a :class:`FissureError` listing the sets if not."""
    if name not in EMOJI_SETS:
        raise FissureError(f"unknown emoji set {name!r}; valid sets: {', '.join(EMOJI_SETS)}")
    return name


@cache
def sprites(emoji_set: str) -> dict[str, Image.Image]:
    """Every class's RGBA sprite (SPRITE_SIZE square, alpha around the drawing) in one set."""
    check_emoji_set(emoji_set)
    index = json.loads((ASSETS / f"atlas_{emoji_set}.json").read_text())
    with Image.open(ASSETS / f"atlas_{emoji_set}.png") as atlas:
        atlas = atlas.convert("RGBA")
        size = index["sprite_size"]
        return {
            name: atlas.crop((x * size, y * size, (x + 1) * size, (y + 1) * size))
            for name, (x, y) in index["sprites"].items()
        }
