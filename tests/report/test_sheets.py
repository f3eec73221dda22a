"""Contact sheets: tiles that show what the images hold."""

from __future__ import annotations

import numpy as np
from PIL import Image

from fissure.report.sheets import contact_sheet


def _tile(sheet: Image.Image, cell_size: int = 128, pad: int = 4) -> np.ndarray:
    return np.asarray(sheet)[pad : pad + cell_size, pad : pad + cell_size].astype(float)


def test_a_shrunk_image_is_averaged_not_aliased():
    """A 512-pixel SD image shrunk by nearest neighbour kept one pixel in four: moiré."""
    stripes = np.zeros((512, 512, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: grey when averaged
    tile = _tile(contact_sheet([Image.fromarray(stripes)]))
    assert abs(tile.mean() - 127.5) < 10 and tile.std() < 10


def test_an_enlarged_image_keeps_its_pixels_crisp():
    """A 64-pixel emoji enlarged to 128 stays blocky, not blurred."""
    pixels = np.zeros((64, 64, 3), np.uint8)
    pixels[:, 32:] = 255
    assert set(np.unique(_tile(contact_sheet([Image.fromarray(pixels)])))) == {0.0, 255.0}


def test_a_caption_too_long_ends_in_an_ellipsis():
    image = Image.new("RGB", (8, 8))
    short = contact_sheet([image], ["a photo of a dog"], caption_lines=1)
    long = contact_sheet([image], ["a photo of a dog " * 5], caption_lines=1)
    ellipsis = contact_sheet([image], ["a photo of a dog a …"], caption_lines=1)  # 21 chars
    assert np.array_equal(np.asarray(long), np.asarray(ellipsis))
    assert not np.array_equal(np.asarray(long), np.asarray(short))
