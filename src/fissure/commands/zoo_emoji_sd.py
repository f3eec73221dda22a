"""`fissure zoo train` and `fissure zoo evaluate`: emoji-sd here, emoji-lm in :mod:`.zoo_emoji_lm`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fissure.console import quiet_libraries, require_finite, user_errors

TRAINABLE = ("emoji-sd", "emoji-lm")

ModelName = Annotated[
    str, typer.Argument(help="The bundled model: emoji-sd, or emoji-lm (the language model).")
]
VerifierOption = Annotated[
    str,
    typer.Option(
        help="The held-out judge: emoji/verifier, or a folder holding a saved emoji judge."
    ),
]
ThreadsOption = Annotated[
    int | None, typer.Option(min=1, help="CPU threads for torch (default: torch's choice).")
]


CHECKOUT = Path(__file__).resolve().parents[3]
"""The source checkout this package runs from, when it is installed editable."""


def _check_name(name: str) -> None:
    from fissure.errors import FissureError

    if name not in TRAINABLE:
        raise FissureError(
            f"cannot train or evaluate {name!r}: the recipes here are for {' and '.join(TRAINABLE)}"
        )


def _verifier_loader(spec: str):
    """A loader, so the verifier is read only when a gate needs it."""

    def load():
        from fissure.judges import load_judge

        return load_judge(spec)

    return load


def _command_line(name: str) -> str:
    """This command as typed (with the thread settings that shape its speed)."""
    import os
    import shlex
    import sys

    threads = " ".join(
        f"{name}={os.environ[name]}" for name in ("OMP_NUM_THREADS",) if name in os.environ
    )
    words = ["fissure", *sys.argv[1:]] if sys.argv and "fissure" in sys.argv[0] else None
    typed = shlex.join(words) if words else f"fissure zoo train {name}"
    return f"{threads} {typed}".strip()


def _parse_steps(values: list[str] | None) -> dict[str, int]:
    from fissure.errors import FissureError
    from fissure.zoo.emoji_sd.recipe import STAGES

    steps = {}
    for value in values or []:
        stage, _, count = value.partition("=")
        if stage not in STAGES or not count.isdigit() or int(count) < 1:
            raise FissureError(
                f"bad --steps {value!r}: use STAGE=N with STAGE one of {', '.join(STAGES)}"
            )
        steps[stage] = int(count)
    return steps


@user_errors
def train(
    name: ModelName,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Work folder: scene banks, checkpoints, the trained model (default: runs/NAME)."
        ),
    ] = None,
    resume_point: Annotated[
        Path,
        typer.Option(
            help="Resume-point folder: continued from when present (a path that does not "
            "exist, e.g. none, starts from scratch); --snapshot writes it."
        ),
    ] = Path("training/emoji-sd"),
    snapshot: Annotated[
        bool,
        typer.Option(
            help="Only write the resume point of --out (safe while training runs), then exit."
        ),
    ] = False,
    steps: Annotated[
        list[str] | None,
        typer.Option(
            help="A stage's total steps, STAGE=N, e.g. --steps unet=30000: above its checkpoint "
            "to train on, at it to finish there (repeatable)."
        ),
    ] = None,
    recipe: Annotated[
        Path | None,
        typer.Option(
            help="Train another recipe: a JSON file like a work folder's config.json "
            "(or a folder holding one); default: the shipped recipe."
        ),
    ] = None,
    install: Annotated[
        bool, typer.Option(help="Copy the finished model into the package (weights/emoji-sd).")
    ] = True,
    force: Annotated[
        bool,
        typer.Option(
            help="Go on past a stage whose gate fails; with --snapshot, overwrite a resume "
            "point that is further on than the work folder."
        ),
    ] = False,
    device: Annotated[
        str | None, typer.Option(help="cpu or cuda; default: cuda when present.")
    ] = None,
    verifier: VerifierOption = "emoji/verifier",
    threads: ThreadsOption = None,
    checkpoint_minutes: Annotated[
        float, typer.Option(min=0.0, help="Minutes between checkpoints.")
    ] = 3.0,
    max_minutes: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Checkpoint and stop (exit code 3) after this many minutes; run again to go on.",
        ),
    ] = None,
    tiny: Annotated[bool, typer.Option(hidden=True, help="Toy sizes, for tests.")] = False,
) -> None:
    """Train emoji-sd stage by stage (seeded, resumable, gated), or snapshot a resume point;
    or train emoji-lm (one stage, lm).

    emoji-sd's stages: clip, vae, decoder (the VAE's decoder tuned on its frozen encoder), unet.
    Exit codes: 0 trained, 2 an error or a failed gate, 3 paused by --max-minutes.
    """
    _check_name(name)
    import time

    import torch

    require_finite(checkpoint_minutes=checkpoint_minutes, max_minutes=max_minutes)
    out = out if out is not None else Path("runs") / name
    if name == "emoji-lm":
        from fissure.commands.zoo_emoji_lm import lm_steps, refuse_emoji_sd_options, train_lm

        refuse_emoji_sd_options(
            **{"--snapshot": snapshot, "--recipe": recipe, "--force": force,
               "--verifier": verifier != "emoji/verifier"}
        )  # fmt: skip
        if threads:
            torch.set_num_threads(threads)
        quiet_libraries()
        train_lm(
            out, lm_steps(steps), install, device, checkpoint_minutes, max_minutes, tiny,
            _command_line(name),
        )  # fmt: skip
        return

    from fissure.models.loading import resolve_device
    from fissure.zoo import WEIGHTS_DIR
    from fissure.zoo.emoji_sd.config import (
        EmojiSdConfig,
        default_config,
        tiny_config,
        with_steps,
    )
    from fissure.zoo.emoji_sd.recipe import TrainingPaused, train_emoji_sd, write_resume_point

    if snapshot:
        manifest = write_resume_point(out, resume_point, force=force)
        for stage, entry in manifest["stages"].items():
            state = "finished" if entry["finished"] else "in training"
            typer.echo(f"{stage}: step {entry['step']}/{entry['steps']} ({state})")
        typer.echo(f"wrote the resume point of {out} to {resume_point}")
        return
    stage_steps = _parse_steps(steps)
    if threads:
        torch.set_num_threads(threads)
    quiet_libraries()
    if recipe is not None:
        base = EmojiSdConfig.read(recipe)
    else:
        base = tiny_config() if tiny else default_config()
    config = with_steps(base, **stage_steps)
    deadline = time.monotonic() + 60 * max_minutes if max_minutes is not None else None
    try:
        folder = train_emoji_sd(
            out,
            config,
            device=resolve_device(device) if device else None,
            resume_point=resume_point,
            install=WEIGHTS_DIR / name if install else None,
            verifier=_verifier_loader(verifier),
            force=force,
            checkpoint_seconds=60 * checkpoint_minutes,
            log=typer.echo,
            command=_command_line(name),
            deadline=deadline,
        )
    except TrainingPaused as paused:
        typer.echo(f"{paused}; the checkpoint is saved: run the same command to continue")
        raise typer.Exit(code=3) from None
    typer.echo(f"emoji-sd is trained: {folder}")


def _check_measured_these_weights(evaluation, pipeline, path: Path, source: str) -> None:
    """Refuse to put an evaluation of other weights in ``source``'s model card."""
    from fissure.digest import image_weights_digest
    from fissure.errors import FissureError

    digest = image_weights_digest(pipeline)
    if evaluation.weights != digest:
        raise FissureError(
            f"{path} measured weights {evaluation.weights or '(unrecorded)'}, not {source}'s "
            f"({digest}); measure them with `fissure zoo evaluate`"
        )


def _compare_with_the_shipped_model(evaluation, folder: Path) -> None:
    """Print the shipping rule's verdict on another model against the bundled one's record."""
    from fissure.errors import FissureError
    from fissure.zoo import bundled_model_path
    from fissure.zoo.emoji_sd.evaluate import Evaluation

    shipped_folder = bundled_model_path("emoji-sd")
    if folder.resolve() == shipped_folder.resolve():
        return
    record = shipped_folder / "evaluation.json"
    try:
        verdict, lines = evaluation.against(Evaluation.load(record))
    except FissureError as error:  # the measurement is written: say why there is no verdict
        typer.echo(f"no verdict against the shipped emoji-sd: {error}")
        return
    said = {
        True: "may replace it",
        False: "does not replace it",
        None: "cannot tell",
    }[verdict]
    typer.echo(f"against the shipped emoji-sd ({record}): {said}")
    for line in lines:
        typer.echo(f"  {line}")


@user_errors
def evaluate(
    name: ModelName,
    model: Annotated[
        Path | None,
        typer.Option(help="A pipeline (or language model) folder (default: the bundled one)."),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Folder for the contact sheet and evaluation.json.")
    ] = Path("runs/emoji-sd-evaluation"),
    seeds_per_class: Annotated[
        int, typer.Option(min=1, help="Seeds per class prompt (the held-out plan's first N).")
    ] = 20,
    pairs: Annotated[
        int, typer.Option(min=1, help="Random two-class prompts (distinct pairs).")
    ] = 200,
    steps: Annotated[int, typer.Option(min=1, help="DDIM steps.")] = 25,
    guidance: Annotated[float, typer.Option(help="Classifier-free guidance scale.")] = 7.5,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per pipeline call.")] = 16,
    clip_scenes: Annotated[
        int, typer.Option(min=1, help="Rendered held-out scenes for the CLIP retrieval bar.")
    ] = 3000,
    verifier: VerifierOption = "emoji/verifier",
    threads: ThreadsOption = None,
    dtype: Annotated[
        str,
        typer.Option(
            help="float32 (the bars' setting) or bfloat16 (faster on a CPU with native "
            "bfloat16, AVX512-BF16 or AMX); the evaluation runs on the CPU."
        ),
    ] = "float32",
    update_card: Annotated[
        bool | None,
        typer.Option(
            help="Write the scores into the model's README.md (model card). Default: update "
            "it only when this evaluation is at the bars' settings (20 seeds, 200 pairs, 25 "
            "DDIM steps, guidance 7.5, float32, 8-bit images, the emoji verifier, 3000 CLIP "
            "scenes, the held-out seed plan)."
        ),
    ] = None,
    calibration: Annotated[
        Path | None,
        typer.Option(
            help="Calibration notes to put in the model card too; default: the checkout's "
            "training/emoji-sd/CALIBRATION.md, for the bundled model only."
        ),
    ] = None,
    card_from: Annotated[
        Path | None,
        typer.Option(
            help="Generate nothing: print this evaluation.json and write it into the model "
            "card (at the bars' settings, or with --update-card), if it measured these very "
            "weights (a run's pipeline, once installed)."
        ),
    ] = None,
) -> None:
    """Measure emoji-sd with the held-out verifier and its CLIP; print the bars. For emoji-lm:
    its perplexity on held-out captions (only --model and --threads apply)."""
    _check_name(name)
    if name == "emoji-lm":
        from fissure.commands.zoo_emoji_lm import evaluate_lm
        from fissure.zoo.emoji_lm import EmojiLmConfig

        if threads:
            import torch

            torch.set_num_threads(threads)
        quiet_libraries()
        evaluate_lm(str(model) if model is not None else name, EmojiLmConfig().held_out)
        return

    import torch
    from rich.console import Console
    from rich.table import Table

    from fissure.judges import ClipJudge
    from fissure.models import load_pipeline
    from fissure.models.generator import check_guidance
    from fissure.models.loading import resolve_model_source
    from fissure.outputs import check_output_dir, prepare_output_dir
    from fissure.zoo.emoji_sd.evaluate import (
        EVALUATION,
        MEASURES,
        Evaluation,
        check_pair_count,
        evaluate_pipeline,
    )
    from fissure.zoo.emoji_sd.gates import clip_judge, gate_bank
    from fissure.zoo.emoji_sd.model_card import update_calibration, update_quality

    check_guidance(guidance)
    check_pair_count(pairs)  # before the model loads
    check_output_dir(out)
    if threads:
        torch.set_num_threads(threads)
    quiet_libraries()
    source = str(model) if model is not None else name
    pipeline = load_pipeline(source, dtype=dtype)
    folder = Path(resolve_model_source(source))
    if card_from is not None:
        evaluation = Evaluation.load(card_from)
        _check_measured_these_weights(evaluation, pipeline, card_from, source)
        out = card_from.parent
    else:
        clip_folder = folder / "clip"
        clip: ClipJudge | None = None
        if (clip_folder / "config.json").is_file():
            from transformers import CLIPModel

            clip = clip_judge(CLIPModel.from_pretrained(clip_folder).float(), pipeline.tokenizer)
        judge = _verifier_loader(verifier)()
        prepare_output_dir(out)
        for stale in ("evaluation.json", "contact_sheet.png"):  # never mistaken for this run's
            (out / stale).unlink(missing_ok=True)
        evaluation = evaluate_pipeline(
            pipeline,
            judge,
            clip,
            seeds=seeds_per_class,
            pairs=pairs,
            steps=steps,
            guidance=guidance,
            batch_size=batch_size,
            sheet=out / "contact_sheet.png",
            clip_scenes=(
                gate_bank(clip_scenes, 1, out / "scenes", first_seed=EVALUATION.scenes)
                if clip is not None
                else None
            ),
            verifier_name=str(verifier),
            plan=EVALUATION,
            model=source,
        )
        evaluation.save(out / "evaluation.json")
    if update_card is None:
        update_card = evaluation.at_the_bars_settings()
        if not update_card:
            typer.echo("model card left as it is: not the bars' settings (--update-card to force)")
    if update_card and update_quality(folder, evaluation):
        evaluation.save(folder / "evaluation.json")  # the card's measurement
        typer.echo("updated the model card's quality section (and its evaluation.json)")
        if calibration is None and model is None:
            calibration = CHECKOUT / "training" / "emoji-sd" / "CALIBRATION.md"
        if calibration and calibration.is_file():
            update_calibration(folder, calibration.read_text(encoding="utf-8"))
            typer.echo(f"updated the model card's calibration section from {calibration}")
    table = Table(title=f"{source}: {evaluation.settings()}")
    for column in ("measure", "what it counts", "score", "bar", "met"):
        table.add_column(column, justify="right" if column in ("score", "bar", "met") else "left")
    for measure, (score, bar, met) in evaluation.checks().items():
        shown = "–" if score is None else f"{score:.2%}"  # 84.97% must not read 85.0%
        verdict = "" if met is None else "yes" if met else "[red]no[/red]"
        bar_shown = "" if bar is None else f"{bar:.0%}"
        table.add_row(measure, MEASURES[measure], shown, bar_shown, verdict)
    Console().print(table)
    typer.echo(f"weakest classes (prompted class only): {evaluation.weakest()}")
    _compare_with_the_shipped_model(evaluation, folder)
    verdict = "all bars met" if evaluation.passed() else "some bars not met"
    if not evaluation.at_the_bars_settings():
        verdict += " (not at the bars' settings: a look, not the measurement)"
    typer.echo(
        f"{verdict}; contact sheet and evaluation.json in {out} ({evaluation.seconds:.0f} s)"
    )
