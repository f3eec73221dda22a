"""The `fissure` command line: a thin layer over the Python API.

Each command parses options, calls one library function and prints its result.
Heavy imports (torch, diffusers) happen inside commands so `--help` is instant.
Errors the user can fix are printed as one line, with exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fissure.commands import judges as judges_cli
from fissure.commands import universal, zoo_emoji_sd
from fissure.commands.attack import attack_app
from fissure.commands.campaign import campaign_app
from fissure.commands.options import Device, Dtype
from fissure.commands.poison import poison_app
from fissure.commands.world import world_app
from fissure.console import counted, quiet_libraries, user_errors

app = typer.Typer(
    name="fissure",
    help="Find, verify and explain the failures of text-to-image diffusion models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
zoo_app = typer.Typer(help="Bundled models and judges: where they are, how they are trained.")
app.add_typer(zoo_app, name="zoo")
app.add_typer(world_app, name="world")
app.add_typer(attack_app, name="attack")
attack_app.command("universal-token")(universal.universal_token)
app.add_typer(campaign_app, name="campaign")
app.add_typer(poison_app, name="poison")
app.command("judge")(judges_cli.judge)
zoo_app.command("train-judges")(judges_cli.train_judges)
zoo_app.command("evaluate-judges")(judges_cli.evaluate_judges)
zoo_app.command("train")(zoo_emoji_sd.train)
zoo_app.command("evaluate")(zoo_emoji_sd.evaluate)

ModelOption = Annotated[
    str, typer.Option("--model", "-m", help="emoji-sd (bundled), a diffusers folder, or a hub id.")
]


def _version(value: bool) -> None:
    if value:
        import fissure

        typer.echo(f"fissure {fissure.__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Find, verify and explain the failures of text-to-image diffusion models."""


@app.command()
@user_errors
def generate(
    prompt: Annotated[list[str], typer.Option("--prompt", "-p", help="A prompt; repeat for more.")],
    out: Annotated[
        Path, typer.Option(help="Folder for PNGs, contact sheet and generations.jsonl.")
    ],
    model: ModelOption = "emoji-sd",
    seeds: Annotated[str, typer.Option(help="Seeds: N, N-M or a list such as 0-7,12.")] = "0-7",
    steps: Annotated[int, typer.Option(help="Denoising steps.")] = 25,
    guidance: Annotated[float, typer.Option(help="Classifier-free guidance scale.")] = 7.5,
    batch_size: Annotated[
        int,
        typer.Option(
            help="Images per UNet batch; the last batch is padded to it, so an image does not "
            "depend on what else was asked (for one image, --batch-size 1 is faster)."
        ),
    ] = 8,
    height: Annotated[
        int | None, typer.Option(help="Image height in pixels (default: the model's own).")
    ] = None,
    width: Annotated[
        int | None, typer.Option(help="Image width in pixels (default: the model's own).")
    ] = None,
    device: Device = "cpu",
    dtype: Dtype = "float32",
) -> None:
    """Generate one image per (prompt, seed), reproducibly."""
    from fissure.generate import generate as generate_images
    from fissure.generate import parse_seeds
    from fissure.models import load_pipeline
    from fissure.models.generator import check_guidance
    from fissure.models.loading import model_label
    from fissure.outputs import check_output_dir

    seed_list = parse_seeds(seeds)
    check_guidance(guidance)
    check_output_dir(out)  # made once the prompts are known good: a refusal leaves no folder
    quiet_libraries()
    pipeline = load_pipeline(model, device=device, dtype=dtype)
    records = generate_images(
        pipeline,
        prompt,
        seed_list,
        out,
        steps=steps,
        guidance=guidance,
        batch_size=batch_size,
        height=height,
        width=width,
        model_name=model_label(model),
    )
    typer.echo(
        f"wrote {counted(len(records), 'image')}, contact_sheet.png and generations.jsonl to {out}"
    )


#: The demo's classes: animals, food, vehicles, plants and sport, 8 × 2 seeds.
DEMO_CLASSES = "dog,cat,red apple,pizza,bicycle,airplane,sunflower,soccer ball"


@app.command()
@user_errors
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo's outputs.")] = Path("demo-out"),
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m", help="emoji-sd (bundled) or a folder of another emoji-world model."
        ),
    ] = "emoji-sd",
    device: Device = "cpu",
    dtype: Dtype = "float32",
) -> None:
    """SAGE's latent attack on the bundled model, verified, with a page.

    8 classes × 2 seeds, with sage-latent's defaults (exact gradient, normalised steps,
    at most 20 iterations each); a rerun resumes.
    """
    from fissure.commands.attack import run_attack_command
    from fissure.errors import FissureError, RunFolderMismatch

    quiet_libraries()
    try:
        run_attack_command(
            "sage-latent",
            {},
            classes=DEMO_CLASSES,
            seeds="0-1",
            out=out / "sage-latent",
            model=model,
            device=device,
            dtype=dtype,
        )
    except RunFolderMismatch as error:  # new weights or a newer fissure: the demo starts over
        raise FissureError(
            f"{out} holds an earlier demo, made with other weights or settings "
            f"({', '.join(error.changed)}): remove it (`make clean`) and run the demo again"
        ) from None


@zoo_app.command("path")
@user_errors
def zoo_path(name: Annotated[str, typer.Argument(help="A bundled model, e.g. emoji-sd.")]) -> None:
    """Print the folder of a bundled model."""
    from fissure.zoo import bundled_model_path

    typer.echo(str(bundled_model_path(name)))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
