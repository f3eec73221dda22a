"""`fissure judge` and the judge commands of `fissure zoo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fissure.console import quiet_libraries, user_errors


@user_errors
def judge(
    images: Annotated[list[Path], typer.Argument(help="Image files (PNG, JPEG, ...).")],
    judge_name: Annotated[
        str,
        typer.Option(
            "--judge",
            "-j",
            help="emoji/surrogate, emoji/verifier, emoji/<member>, emoji/clip (emoji-sd's CLIP), "
            "clip:<id> or a classifier id.",
        ),
    ] = "emoji/verifier",
    top_k: Annotated[int, typer.Option(min=1, help="How many classes to list per image.")] = 5,
    jsonl: Annotated[
        bool, typer.Option("--jsonl", help="One JSON line per image instead of a table.")
    ] = False,
) -> None:
    """Print each image's most probable classes under a judge."""
    import json

    import numpy as np
    import torch
    from PIL import Image
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from fissure.errors import FissureError
    from fissure.judges import load_judge

    def read(path: Path, decode: bool) -> Image.Image:
        try:
            with Image.open(path) as image:  # the header only, unless decoded
                return image.convert("RGB") if decode else image
        except OSError as error:  # missing, truncated, unreadable, not an image
            raise FissureError(f"cannot read image {path}: {error}") from error

    for path in images:  # a bad file is refused before the judge loads
        read(path, decode=False)
    quiet_libraries()
    model = load_judge(judge_name)
    top_k = min(top_k, model.num_labels)  # no empty columns for a judge of few labels
    table = Table(title=f"judge {escape(judge_name)}")
    table.add_column("image", overflow="fold", min_width=20)  # whole names tell images apart
    for rank in range(1, top_k + 1):
        table.add_column(f"#{rank}")
    for path in images:  # one image in memory at a time
        pixels = np.asarray(read(path, decode=True), dtype=np.float32) / 255
        ranked = model.top_k(torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0), top_k)[0]
        if jsonl:
            top = [[label, round(probability, 4)] for label, probability in ranked]
            typer.echo(json.dumps({"image": str(path), "judge": judge_name, "top": top}))
        else:  # file names and labels are text, not Rich markup ("img[seed=3].png")
            cells = (escape(f"{label} {probability:.0%}") for label, probability in ranked)
            table.add_row(escape(str(path)), *cells)
    if not jsonl:
        Console().print(table)


@user_errors
def train_judges(
    out: Annotated[
        Path, typer.Option(help="Work folder: scene banks and checkpoints (resumable).")
    ] = Path("runs/judges"),
    only: Annotated[
        list[str] | None,
        typer.Option(
            help="Train only these judges: resnet, vit, regnet, edge or verifier (repeatable)."
        ),
    ] = None,
    install: Annotated[
        bool, typer.Option(help="Copy the trained weights into the package.")
    ] = True,
    device: Annotated[
        str | None, typer.Option(help="cpu or cuda; default: cuda when present.")
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            min=1, help="Judges trained at once on a CPU, sharing its cores; default: one per core."
        ),
    ] = None,
) -> None:
    """Train the bundled emoji judges (seeded; a killed run resumes from --out)."""
    import os

    from fissure.errors import FissureError
    from fissure.models.loading import resolve_device
    from fissure.zoo.judge_training import RECIPES, train_judges

    unknown = set(only or []) - set(RECIPES)
    if unknown:
        raise FissureError(
            f"unknown judge {', '.join(sorted(unknown))}; known: {', '.join(RECIPES)}"
        )
    names = list(dict.fromkeys(only or RECIPES))
    train_judges(
        out,
        names=names,
        device=resolve_device(device) if device else None,
        install=install,
        jobs=jobs or min(len(names), os.cpu_count() or 1),
    )
    typer.echo(f"trained {', '.join(names)}; checkpoints in {out}")


@user_errors
def evaluate_judges(
    count: Annotated[
        int, typer.Option(min=1, help="Held-out scenes per set and object count.")
    ] = 500,
    cache: Annotated[Path, typer.Option(help="Folder to cache rendered evaluation scenes.")] = Path(
        "runs/judges/banks"
    ),
) -> None:
    """Measure every bundled judge on held-out scenes and check the bars."""
    from rich.console import Console
    from rich.table import Table

    from fissure.judges import Ensemble, Judge, load_judge
    from fissure.judges.registry import EMOJI_JUDGES, SURROGATE_MEMBERS
    from fissure.zoo.judge_evaluation import bars, evaluation_banks, judge_report

    judges: dict[str, Judge] = {name: load_judge(f"emoji/{name}") for name in EMOJI_JUDGES}
    judges["surrogate"] = Ensemble([judges[name] for name in SURROGATE_MEMBERS])
    banks = evaluation_banks(count, cache)
    report = judge_report(judges, banks)
    table = Table(  # pairs columns hold fewer: a scene that repeats a class is no pair
        title="emoji judges on held-out scenes (single: top-1, pairs: both in top-2)"
    )
    table.add_column("judge")
    for bank_name in banks:
        table.add_column(bank_name, justify="right")
    failures = 0
    for name, scores in report.items():
        floors = bars(name)
        cells = []
        for bank_name, score in scores.items():
            floor = floors.get(bank_name)
            failed = floor is not None and score < floor
            failures += failed
            cells.append(f"[red]{score:.1%}[/red]" if failed else f"{score:.1%}")
        table.add_row(name, *cells)
    table.add_row("scenes", *(str(len(bank)) for bank in banks.values()))
    Console(width=160).print(table)
    if failures:  # a failed exit status, so a script or CI step can gate on it
        typer.echo(f"{failures} scores below their bar (shown in red)")
        raise typer.Exit(code=1)
    typer.echo("all bars met")
