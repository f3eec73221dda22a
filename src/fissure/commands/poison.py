"""`fissure poison make|finetune|measure|sweep`: poisons, fine-tuning, implosion."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fissure.commands.options import Device
from fissure.console import counted, quiet_libraries, user_errors

poison_app = typer.Typer(
    help="Poison concepts, fine-tune on the poisons, and measure poison success, Alignment "
    "Difficulty and the implosion of concepts left alone (Ding et al., CCS 2024).",
    no_args_is_help=True,
)

Model = Annotated[
    str, typer.Option("--model", "-m", help="emoji-sd (bundled) or a diffusers folder.")
]
Kind = Annotated[
    str,
    typer.Option(
        help="dirty-label (captions of A with pictures of B) or nightshade (A's pictures "
        "perturbed toward the model's B)."
    ),
]
Count = Annotated[int, typer.Option("--count", help="Poisons per concept.", min=1)]
Epsilon = Annotated[
    float, typer.Option(help="Nightshade's L∞ bound on [0, 1] pixels (its CLI: 0.04).")
]
ShadeSteps = Annotated[int, typer.Option("--shade-steps", help="Nightshade's sign steps.", min=1)]
Threshold = Annotated[
    float,
    typer.Option(
        help="CLIP score an image needs against 'a photo of a <concept>' to be chosen "
        "(0.5 suits emoji-sd's CLIP; the release's 0.24 suits OpenAI's ViT-L/14)."
    ),
]
Steps = Annotated[int, typer.Option("--steps", help="Fine-tuning steps.", min=1)]
BatchSize = Annotated[int, typer.Option(help="Fine-tuning batch size.", min=1)]
LearningRate = Annotated[float, typer.Option("--lr", help="Fine-tuning learning rate.")]
CleanScenes = Annotated[int, typer.Option(help="Clean world scenes mixed with the poisons.", min=1)]
Seeds = Annotated[int, typer.Option(help="Generation seeds per class in the measures.", min=1)]
SamplingSteps = Annotated[int, typer.Option(help="DDIM steps of the measures' generations.", min=1)]


def _finetune_settings(steps: int, batch_size: int, lr: float, clean_scenes: int):
    from fissure.console import require_finite
    from fissure.poison.finetune import FinetuneSettings

    require_finite(lr=lr)
    return FinetuneSettings(
        steps=steps, batch_size=batch_size, learning_rate=lr, clean_scenes=clean_scenes
    )


def _pair(text: str) -> tuple[str, str]:
    from fissure.errors import FissureError
    from fissure.poison.concepts import check_pair

    source, colon, target = text.partition(":")
    if not colon:
        raise FissureError(f"a poisoned pair is SOURCE:TARGET (dog:cat), not {text!r}")
    return check_pair(source.strip(), target.strip())


@user_errors
def make(
    source: Annotated[str, typer.Option(help="The concept A whose prompts get poisoned.")],
    target: Annotated[str, typer.Option(help="The concept B that A's prompts should draw.")],
    out: Annotated[Path, typer.Option(help="Folder of poison sets (.pt) and their sheets.")],
    kind: Kind = "dirty-label",
    count: Count = 200,
    epsilon: Epsilon = 0.05,
    shade_steps: ShadeSteps = 500,
    clip_threshold: Threshold = 0.5,
    model: Model = "emoji-sd",
    device: Device = "cpu",
    clip: Annotated[str, typer.Option(help="CLIP judge that chooses the images.")] = "emoji/clip",
) -> None:
    """Make poisoned pairs for SOURCE → TARGET (resumable: finished batches are kept)."""
    quiet_libraries()
    from fissure.images import to_pil
    from fissure.judges.registry import load_judge
    from fissure.models.loading import load_pipeline
    from fissure.poison.concepts import check_pair
    from fissure.poison.pairs import PoisonSettings, make_poisons
    from fissure.report.sheets import contact_sheet

    check_pair(source, target)
    settings = PoisonSettings(kind, count, epsilon, shade_steps, clip_threshold)
    pipeline = load_pipeline(model, device=device)
    pipeline.set_progress_bar_config(disable=True)
    poisons = make_poisons(pipeline, load_judge(clip), source, target, settings, out)
    sheet = settings.file(out, source, target).with_suffix(".png")
    shown = range(min(16, len(poisons)))
    contact_sheet(
        [to_pil(poisons.images[i].float() / 255) for i in shown],
        [poisons.captions[i] for i in shown],
        columns=8,
    ).save(sheet)
    typer.echo(
        f"{counted(len(poisons), 'poisoned pair')} {source} → {target} in {out}; a look: {sheet}"
    )


@user_errors
def finetune(
    poisons: Annotated[
        list[Path], typer.Option("--poisons", help="A poison set from `poison make` (repeatable).")
    ],
    out: Annotated[Path, typer.Option(help="Run folder: training checkpoints and model/.")],
    model: Model = "emoji-sd",
    device: Device = "cpu",
    steps: Steps = 500,
    batch_size: BatchSize = 32,
    lr: LearningRate = 1e-3,
    clean_scenes: CleanScenes = 3000,
) -> None:
    """Fine-tune the model's UNet on clean world scenes plus poisons (resumable)."""
    quiet_libraries()
    from fissure.errors import FissureError
    from fissure.models.loading import load_pipeline
    from fissure.poison.finetune import (
        clean_encodings,
        finetune_unet,
        poison_encodings,
        save_finetuned,
    )
    from fissure.poison.finetune import clean_scenes as scene_bank
    from fissure.poison.pairs import PoisonSet

    settings = _finetune_settings(steps, batch_size, lr, clean_scenes)
    for path in poisons:
        if not path.is_file():
            raise FissureError(f"no poison set at {path}: make one with `fissure poison make`")
    sets = [PoisonSet.load(path) for path in poisons]
    pipeline = load_pipeline(model, device=device)
    bank = scene_bank(settings, out / "cache")
    data = clean_encodings(pipeline, bank, out / "cache") + poison_encodings(pipeline, sets)
    unet, step = finetune_unet(pipeline, data, settings, out / "training")
    folder = save_finetuned(pipeline, unet, out / "model")
    typer.echo(
        f"fine-tuned {step} steps on {counted(len(data), 'pair')} "
        f"({sum(map(len, sets))} poisoned); the model: {folder}"
    )


@user_errors
def measure(
    model: Annotated[str, typer.Option("--model", "-m", help="The fine-tuned model's folder.")],
    pair: Annotated[
        list[str], typer.Option("--pair", help="A poisoned pair SOURCE:TARGET (repeatable).")
    ],
    out: Annotated[Path, typer.Option(help="Folder for measures.json and attention.png.")],
    seeds: Seeds = 4,
    sampling_steps: SamplingSteps = 25,
    device: Device = "cpu",
    verifier: Annotated[
        str, typer.Option(help="The judge that reads the images.")
    ] = "emoji/verifier",
    clip: Annotated[str, typer.Option(help="The CLIP judge of the CLIP score.")] = "emoji/clip",
) -> None:
    """Poison success on the pairs; accuracy and CLIP score on every class no pair touches."""
    quiet_libraries()
    from fissure.atomic import write_json
    from fissure.judges.registry import load_judge
    from fissure.models.loading import load_pipeline
    from fissure.poison.measure import unpoisoned_classes
    from fissure.poison.sweep import measure_point

    pairs = [_pair(text) for text in pair]
    pipeline = load_pipeline(model, device=device)
    pipeline.set_progress_bar_config(disable=True)
    held_out = unpoisoned_classes(pairs)
    judges = load_judge(verifier), load_judge(clip)
    results, _ = measure_point(pipeline, *judges, pairs, held_out, seeds, out, sampling_steps)
    write_json(out / "measures.json", results)
    success, kept = results["poison_success"], results["unpoisoned_accuracy"]
    typer.echo(
        f"poison success {success['rate']:.1%} ({success['hits']}/{success['total']}); "
        f"unpoisoned accuracy {kept['rate']:.1%} ({kept['hits']}/{kept['total']}); "
        f"CLIP score {results['unpoisoned_clip_score']:.3f}; {out / 'measures.json'}"
    )


@user_errors
def sweep(
    out: Annotated[Path, typer.Option(help="Sweep folder (a rerun resumes it).")] = Path(
        "runs/poison-sweep"
    ),
    concepts: Annotated[
        str, typer.Option(help="Numbers of poisoned concepts C_P, a comma list.")
    ] = "0,1,2,4,8,16,32",
    kind: Kind = "dirty-label",
    count: Count = 200,
    epsilon: Epsilon = 0.05,
    shade_steps: ShadeSteps = 500,
    clip_threshold: Threshold = 0.5,
    steps: Steps = 500,
    batch_size: BatchSize = 32,
    lr: LearningRate = 1e-3,
    clean_scenes: CleanScenes = 3000,
    seeds: Seeds = 4,
    model: Model = "emoji-sd",
    device: Device = "cpu",
) -> None:
    """Poison 0, 1, 2, … concepts, fine-tune each, and plot AD and implosion against C_P."""
    quiet_libraries()
    from fissure.errors import FissureError
    from fissure.poison.pairs import PoisonSettings
    from fissure.poison.sweep import (
        SweepSettings,
        record_in_store,
        run_sweep,
        table_rows,
        write_outputs,
    )

    try:
        counts = tuple(int(part) for part in concepts.split(","))
    except ValueError:
        raise FissureError(
            f"--concepts takes a comma list of whole numbers, not {concepts!r}"
        ) from None
    settings = SweepSettings(
        concepts=counts,
        poisons=PoisonSettings(kind, count, epsilon, shade_steps, clip_threshold),
        finetune=_finetune_settings(steps, batch_size, lr, clean_scenes),
        seeds=seeds,
    )
    records = run_sweep(settings, out, model, device=device)
    summary = write_outputs(records, out)
    record_in_store(out, settings, summary)
    for row in table_rows(records):
        typer.echo("  ".join(f"{key}={value}" for key, value in row.items()))
    for name, trend in summary["trends"].items():
        typer.echo(f"Spearman ρ({name}, C_P) = {trend['rho']:+.3f}, p = {trend['p']:.4f}")
    typer.echo(f"table, curves and grid in {out} (sweep.csv, curves.png, grid.png)")


poison_app.command("make")(make)
poison_app.command("finetune")(finetune)
poison_app.command("measure")(measure)
poison_app.command("sweep")(sweep)
