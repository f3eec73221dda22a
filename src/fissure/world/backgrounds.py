"""Named procedural backgrounds: seeded gradients, noise and simple shapes.

Each background has phrases that captions use to name it, so a text encoder
learns that "at night" means a dark sky; painting needs only numpy and Pillow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageDraw

from fissure.world.draws import Draws

SIZE = 64
Color = tuple[float, float, float]
_ROWS = np.linspace(0.0, 1.0, SIZE, dtype=np.float32)[:, None, None]


@dataclass(frozen=True)
class Background:
    """A kind of place: its name, the phrases that say it, and its painter."""

    name: str
    phrases: tuple[str, ...]
    paint: Callable[[Draws], Image.Image]


@cache
def _noise_field() -> np.ndarray:
    """A fixed 256² field of smooth noise in about [-1, 1]; scenes crop it instead of making noise."""
    rng = np.random.default_rng(20240607)
    field = np.zeros((256, 256), dtype=np.float32)
    for cells, weight in ((8, 0.5), (16, 0.3), (64, 0.15), (256, 0.05)):
        grid = Image.fromarray(rng.random((cells, cells), dtype=np.float32) * 2 - 1, mode="F")
        field += weight * np.asarray(grid.resize((256, 256), Image.Resampling.BICUBIC))
    return field / np.abs(field).max()


def _noise(draws: Draws) -> np.ndarray:
    x, y = draws.integer(0, 256 - SIZE), draws.integer(0, 256 - SIZE)
    return _noise_field()[y : y + SIZE, x : x + SIZE, None]


def _jitter(color: Color, draws: Draws, amount: float = 18) -> np.ndarray:
    return np.array([c + draws.uniform(-amount, amount) for c in color], dtype=np.float32)


def _gradient(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """A top-to-bottom colour ramp, SIZE × SIZE × 3 and writable."""
    return np.repeat(top + (bottom - top) * _ROWS, SIZE, axis=1)


def _image(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB")


def _sky(draws: Draws) -> np.ndarray:
    return _gradient(_jitter((90, 150, 225), draws), _jitter((190, 220, 245), draws))


def _ground(
    pixels: np.ndarray, horizon: int, color: np.ndarray, grain: float, draws: Draws
) -> None:
    """Paint a noisy ground from ``horizon`` down, darker towards the viewer."""
    rows = SIZE - horizon
    shade = np.linspace(1.0, 0.8, rows, dtype=np.float32)[:, None, None]
    pixels[horizon:] = color * shade + grain * _noise(draws)[horizon:]


def _dots(image: Image.Image, draws: Draws, count: int, color: Color) -> None:
    draw = ImageDraw.Draw(image)
    for _ in range(count):
        x, y = draws.integer(0, SIZE - 1), draws.integer(0, SIZE - 1)
        radius = draws.integer(0, 1)
        brightness = draws.uniform(0.7, 1.0)
        fill = tuple(int(c * brightness) for c in color)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fill)


def _clouds(image: Image.Image, draws: Draws, count: int) -> None:
    draw = ImageDraw.Draw(image)
    for _ in range(count):
        x, y, width = draws.integer(-8, SIZE), draws.integer(2, 30), draws.integer(12, 26)
        shade = draws.integer(235, 255)
        for _ in range(3):
            dx, dy, r = draws.integer(0, width), draws.integer(-3, 3), draws.integer(4, 7)
            draw.ellipse((x + dx - r, y + dy - r, x + dx + r, y + dy + r), fill=(shade,) * 3)


def paint_grass(draws: Draws) -> Image.Image:
    pixels = _sky(draws)
    _ground(pixels, draws.integer(12, 28), _jitter((70, 150, 50), draws, 20), 35, draws)
    return _image(pixels)


def paint_sky(draws: Draws) -> Image.Image:
    image = _image(_sky(draws) + 6 * _noise(draws))
    _clouds(image, draws, draws.integer(1, 3))
    return image


def paint_night(draws: Draws) -> Image.Image:
    pixels = _gradient(_jitter((8, 10, 35), draws, 8), _jitter((30, 35, 80), draws, 12))
    image = _image(pixels + 8 * _noise(draws))
    _dots(image, draws, draws.integer(15, 40), (255, 255, 230))
    return image


def paint_beach(draws: Draws) -> Image.Image:
    pixels = _sky(draws)
    shore = draws.integer(30, 44)
    sea = draws.integer(12, shore - 8)
    pixels[sea:shore] = _jitter((30, 110, 170), draws) + 20 * _noise(draws)[sea:shore]
    _ground(pixels, shore, _jitter((225, 200, 145), draws, 12), 18, draws)
    return _image(pixels)


def paint_snow(draws: Draws) -> Image.Image:
    pixels = _gradient(_jitter((160, 175, 195), draws, 12), _jitter((215, 220, 230), draws, 8))
    _ground(pixels, draws.integer(18, 34), _jitter((240, 244, 250), draws, 6), 10, draws)
    image = _image(pixels)
    _dots(image, draws, draws.integer(15, 35), (255, 255, 255))
    return image


def paint_indoor(draws: Draws) -> Image.Image:
    wall = _jitter((200, 185, 160), draws, 45)
    pixels = np.broadcast_to(wall, (SIZE, SIZE, 3)) + 8 * _noise(draws)
    stripe = draws.integer(6, 12)
    if draws.chance(0.5):
        pixels[:, (np.arange(SIZE) // stripe) % 2 == 0] *= 0.92
    floor = draws.integer(44, 54)
    _ground(pixels, floor, _jitter((130, 90, 55), draws, 20), 25, draws)
    pixels[floor::4] *= 0.85  # floor boards
    return _image(pixels)


def paint_desert(draws: Draws) -> Image.Image:
    pixels = _gradient(_jitter((120, 170, 230), draws), _jitter((240, 220, 180), draws, 10))
    sand = _jitter((220, 170, 100), draws, 18)
    columns = np.arange(SIZE, dtype=np.float32)
    phase, height, level = draws.uniform(0, 6.3), draws.uniform(3, 8), draws.integer(24, 36)
    dune = level + height * np.sin(columns / draws.uniform(7, 14) + phase)
    below = np.arange(SIZE)[:, None] >= dune[None, :]
    pixels[below] = (sand + 25 * _noise(draws))[below]
    return _image(pixels)


def paint_water(draws: Draws) -> Image.Image:
    pixels = _gradient(_jitter((40, 150, 200), draws), _jitter((10, 50, 110), draws, 12))
    image = _image(pixels + 22 * _noise(draws) * np.array([0.6, 1.0, 1.0], dtype=np.float32))
    draw = ImageDraw.Draw(image)
    for _ in range(draws.integer(3, 8)):
        x, y, r = draws.integer(0, SIZE), draws.integer(0, SIZE), draws.integer(1, 3)
        draw.ellipse((x - r, y - r, x + r, y + r), outline=(190, 230, 250))
    return image


def paint_sunset(draws: Draws) -> Image.Image:
    top, middle = _jitter((70, 40, 110), draws), _jitter((240, 120, 60), draws)
    pixels = np.concatenate(
        [_gradient(top, middle)[::2], _gradient(middle, _jitter((250, 200, 90), draws))[::2]]
    )
    _ground(pixels, draws.integer(48, 58), _jitter((45, 25, 40), draws, 10), 10, draws)
    return _image(pixels)


def paint_plain(draws: Draws) -> Image.Image:
    return _image(np.broadcast_to(_jitter((245, 245, 245), draws, 8), (SIZE, SIZE, 3)))


BACKGROUNDS: dict[str, Background] = {
    background.name: background
    for background in (
        Background(
            "grass", ("on the grass", "in a field", "on a green lawn", "in a meadow"), paint_grass
        ),
        Background(
            "sky",
            ("in the sky", "against a blue sky", "in the air", "under a cloudy sky"),
            paint_sky,
        ),
        Background(
            "night", ("at night", "in the night", "under a starry sky", "in the dark"), paint_night
        ),
        Background(
            "beach", ("on the beach", "on the sand", "at the seaside", "by the sea"), paint_beach
        ),
        Background(
            "snow", ("in the snow", "on a snowy day", "in winter", "on the snow"), paint_snow
        ),
        Background("indoor", ("indoors", "in a room", "against a wall", "inside"), paint_indoor),
        Background("desert", ("in the desert", "on the dunes", "in the sand dunes"), paint_desert),
        Background(
            "water", ("under water", "in the water", "underwater", "in the ocean"), paint_water
        ),
        Background("sunset", ("at sunset", "at dusk", "in the evening light"), paint_sunset),
        Background(
            "plain",
            ("on a white background", "on a plain background", "isolated on white"),
            paint_plain,
        ),
    )
}
