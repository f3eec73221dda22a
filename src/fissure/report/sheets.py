"""Contact sheets: many small images with captions on one PNG, for a quick look."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont


def tile(image: Image.Image, cell_size: int = 128) -> Image.Image:
    """``image`` as a square RGB tile: pixels stay crisp when enlarged (64-pixel emoji);
    shrunk, they are averaged, not aliased."""
    enlarging = max(image.size) <= cell_size
    resample = Image.Resampling.NEAREST if enlarging else Image.Resampling.LANCZOS
    return image.convert("RGB").resize((cell_size, cell_size), resample)


def contact_sheet(
    images: Sequence[Image.Image],
    captions: Sequence[str] | None = None,
    columns: int | None = None,
    cell_size: int = 128,
    caption_lines: int = 3,
) -> Image.Image:
    """Tile images in a grid, each scaled to ``cell_size`` with its caption below."""
    if not images:
        raise ValueError("a contact sheet needs at least one image")
    if captions is not None and len(captions) != len(images):
        raise ValueError("give one caption per image")
    columns = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    font = ImageFont.load_default()
    line_height = 11
    caption_height = caption_lines * line_height + 4 if captions is not None else 0
    pad = 4
    cell_w, cell_h = cell_size + pad, cell_size + caption_height + pad
    sheet = Image.new("RGB", (columns * cell_w + pad, rows * cell_h + pad), "white")
    draw = ImageDraw.Draw(sheet)
    chars_per_line = max(8, cell_size // 6)
    for index, image in enumerate(images):
        x = pad + (index % columns) * cell_w
        y = pad + (index // columns) * cell_h
        sheet.paste(tile(image, cell_size), (x, y))
        if captions is not None:  # a caption too long ends in "…", so a cut is seen
            lines = textwrap.wrap(
                captions[index], chars_per_line, max_lines=caption_lines, placeholder=" …"
            )
            for line_index, line in enumerate(lines):
                draw.text(
                    (x, y + cell_size + 2 + line_index * line_height), line, fill="black", font=font
                )
    return sheet
