"""`fissure world ...` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fissure.console import counted, user_errors

world_app = typer.Typer(help="The emoji world: classes, scenes and captions.", no_args_is_help=True)


@world_app.command()
@user_errors
def preview(
    out: Annotated[Path, typer.Option(help="PNG file for the contact sheet.")] = Path(
        "world_preview.png"
    ),
    n: Annotated[int, typer.Option("--n", help="How many scenes.")] = 64,
    seed: Annotated[int, typer.Option(help="Seed of the first scene; the others follow.")] = 0,
    emoji_set: Annotated[
        str | None, typer.Option(help="noto, twemoji or openmoji; default: a seeded choice.")
    ] = None,
) -> None:
    """Write a contact sheet of scenes with their captions."""
    from fissure.errors import FissureError
    from fissure.outputs import prepare_output_dir
    from fissure.report.sheets import contact_sheet
    from fissure.world import sample_scene

    if n <= 0:
        raise FissureError(f"--n must be a positive number of scenes, not {n}")
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise FissureError(f"--out {out} names no image file: end it in .png")
    # drawn (not yet rendered) first: a bad --seed or --emoji-set leaves no folder behind
    scenes = [sample_scene(seed + index, emoji_set=emoji_set) for index in range(n)]
    prepare_output_dir(out.parent)  # before rendering: an unwritable --out fails at once
    images, captions = [scene.image for scene in scenes], [scene.caption for scene in scenes]
    sheet = contact_sheet(images, captions, caption_lines=5)
    try:
        sheet.save(out)
    except OSError as error:
        raise FissureError(f"cannot write {out}: {error.strerror or error}") from None
    typer.echo(f"wrote {counted(n, 'scene')} (seeds {seed}-{seed + n - 1}) to {out}")


@world_app.command("classes")
def list_classes() -> None:
    """Print every class with its synonyms and category."""
    from fissure.world import classes

    rows = [("name", "category", "emoji", "synonyms")]
    rows += [(c.name, c.category, c.codepoints, ", ".join(c.synonyms)) for c in classes()]
    widths = [max(len(cell) for cell in column) for column in zip(*rows, strict=True)]
    for row in rows:
        typer.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
