"""Rebuild the emoji sprite atlases that `fissure.world` draws its scenes from.

Run from the repository root (needs network access to Debian's and npm's
registries, ``apt-get`` and ``npm``, and resvg-py for OpenMoji's SVGs)::

    pip install resvg-py            # only this script needs it
    python scripts/build_atlas.py   # writes src/fissure/world/assets/atlas_<set>.{png,json}

The sources are fetched with their ordinary clients into ``build/emoji-sources``
(pass ``--sources DIR`` to reuse a folder): ``fonts-noto-color-emoji`` from
Debian (``apt-get download``, a CBDT bitmap font Pillow renders at size 109),
and ``emoji-datasource-twitter`` (Twemoji PNGs) and ``openmoji`` (SVGs) from npm
(``npm pack``). Every class's emoji is rendered once, cropped to its visible
pixels and fitted into a square sprite with alpha; one PNG and one JSON index per
set. Their licences are in ``src/fissure/world/assets/LICENSES.md``.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from fissure.world.atlas import ASSETS, EMOJI_SETS, SPRITE_SIZE
from fissure.world.classes import EmojiClass, classes

NPM_PACKAGES = {"twemoji": "emoji-datasource-twitter@16.0.0", "openmoji": "openmoji@17.0.0"}
DEBIAN_PACKAGE = "fonts-noto-color-emoji"
NOTO_FONT_SIZE = 109  # the one size a CBDT bitmap font renders at
COLUMNS = 16


def fetch_npm(package: str, sources: Path) -> Path:
    """Unpack an npm package into ``sources/<name>`` and return its folder."""
    folder = sources / package.split("@")[0]
    if not folder.exists():
        tarball = subprocess.run(
            ["npm", "pack", package, "--silent"],
            cwd=sources,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()[-1]
        with tarfile.open(sources / tarball) as archive:
            archive.extractall(folder, filter="data")
    return folder / "package"


def fetch_noto(sources: Path) -> Path:
    """Download and unpack Debian's Noto Color Emoji; return the font file."""
    folder = sources / DEBIAN_PACKAGE
    if not folder.exists():
        subprocess.run(["apt-get", "download", DEBIAN_PACKAGE], cwd=sources, check=True)
        deb = next(sources.glob(f"{DEBIAN_PACKAGE}_*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(folder)], check=True)
    return next(folder.rglob("NotoColorEmoji.ttf"))


def file_stems(emoji_class: EmojiClass) -> list[str]:
    """File names emoji sets use for an emoji: code points joined by "-", with and without FE0F."""
    with_selector = "-".join(f"{ord(char):x}" for char in emoji_class.emoji)
    without = "-".join(f"{ord(char):x}" for char in emoji_class.emoji if char != "\ufe0f")
    return [with_selector, without]


def noto_renderer(sources: Path) -> Callable[[EmojiClass], Image.Image]:
    font = ImageFont.truetype(str(fetch_noto(sources)), NOTO_FONT_SIZE)

    def render(emoji_class: EmojiClass) -> Image.Image:
        canvas = Image.new("RGBA", (192, 192))
        glyph = emoji_class.emoji.replace("\ufe0f", "")
        ImageDraw.Draw(canvas).text((16, 16), glyph, font=font, embedded_color=True)
        return canvas

    return render


def twemoji_renderer(sources: Path) -> Callable[[EmojiClass], Image.Image]:
    folder = fetch_npm(NPM_PACKAGES["twemoji"], sources) / "img" / "twitter" / "64"

    def render(emoji_class: EmojiClass) -> Image.Image:
        path = next(p for s in file_stems(emoji_class) if (p := folder / f"{s}.png").exists())
        return Image.open(path).convert("RGBA")

    return render


def openmoji_renderer(sources: Path) -> Callable[[EmojiClass], Image.Image]:
    import resvg_py

    folder = fetch_npm(NPM_PACKAGES["openmoji"], sources) / "color" / "svg"

    def render(emoji_class: EmojiClass) -> Image.Image:
        stems = [stem.upper() for stem in file_stems(emoji_class)]
        path = next(p for s in stems if (p := folder / f"{s}.svg").exists())
        png = resvg_py.svg_to_bytes(svg_path=str(path), width=256, height=256)
        return Image.open(io.BytesIO(bytes(png))).convert("RGBA")

    return render


RENDERERS = {"noto": noto_renderer, "twemoji": twemoji_renderer, "openmoji": openmoji_renderer}


def fit_sprite(image: Image.Image) -> Image.Image:
    """Crop to the visible pixels and fit the longer side to SPRITE_SIZE, centred."""
    visible = image.crop(image.getchannel("A").point(lambda a: 255 if a > 8 else 0).getbbox())
    scale = SPRITE_SIZE / max(visible.size)
    size = (max(1, round(visible.width * scale)), max(1, round(visible.height * scale)))
    fitted = visible.resize(size, Image.Resampling.LANCZOS)
    sprite = Image.new("RGBA", (SPRITE_SIZE, SPRITE_SIZE))
    sprite.paste(fitted, ((SPRITE_SIZE - size[0]) // 2, (SPRITE_SIZE - size[1]) // 2))
    return sprite


def build(emoji_set: str, sources: Path) -> None:
    render = RENDERERS[emoji_set](sources)
    rows = -(-len(classes()) // COLUMNS)
    atlas = Image.new("RGBA", (COLUMNS * SPRITE_SIZE, rows * SPRITE_SIZE))
    cells: dict[str, list[int]] = {}
    for index, emoji_class in enumerate(classes()):
        cell = [index % COLUMNS, index // COLUMNS]
        atlas.paste(fit_sprite(render(emoji_class)), (cell[0] * SPRITE_SIZE, cell[1] * SPRITE_SIZE))
        cells[emoji_class.name] = cell
    atlas.save(ASSETS / f"atlas_{emoji_set}.png", optimize=True)
    index_json = {"emoji_set": emoji_set, "sprite_size": SPRITE_SIZE, "sprites": cells}
    (ASSETS / f"atlas_{emoji_set}.json").write_text(json.dumps(index_json, indent=1) + "\n")
    print(f"{emoji_set}: {len(cells)} sprites -> {ASSETS / f'atlas_{emoji_set}.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=Path, default=Path("build/emoji-sources"))
    parser.add_argument("--sets", nargs="+", choices=EMOJI_SETS, default=list(EMOJI_SETS))
    args = parser.parse_args()
    args.sources.mkdir(parents=True, exist_ok=True)
    for emoji_set in args.sets:
        build(emoji_set, args.sources.resolve())


if __name__ == "__main__":
    main()
