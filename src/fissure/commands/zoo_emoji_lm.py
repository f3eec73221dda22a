"""`fissure zoo train emoji-lm` and `fissure zoo evaluate emoji-lm`: the bundled language model.

`fissure zoo train` and `fissure zoo evaluate` hand over here for emoji-lm; the emoji-sd
recipe's own options (stages, resume points, gates) are refused rather than ignored.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from fissure.errors import FissureError

STAGE = "lm"


def lm_steps(steps: list[str] | None) -> int | None:
    """``--steps lm=N`` (or plain N): the total steps to train to."""
    if not steps:
        return None
    if len(steps) > 1:
        raise FissureError("emoji-lm has one stage: give --steps once (lm=N)")
    count = steps[0].removeprefix(f"{STAGE}=")
    if not count.isdigit() or int(count) < 1:
        raise FissureError(f"bad --steps {steps[0]!r}: use lm=N with N a positive number")
    return int(count)


def refuse_emoji_sd_options(**given: object) -> None:
    """Refuse emoji-sd's recipe options with emoji-lm (``given``: those set, by flag name)."""
    used = [flag for flag, value in given.items() if value]
    if used:
        raise FissureError(f"{', '.join(used)} belong to the emoji-sd recipe, not emoji-lm")


def train_lm(
    out: Path,
    steps: int | None,
    install: bool,
    device: str | None,
    checkpoint_minutes: float,
    max_minutes: float | None,
    tiny: bool,
    command: str,
) -> None:
    """Train emoji-lm in ``out`` (resuming there); exit code 3 when ``max_minutes`` paused it."""
    import dataclasses

    from fissure.models.language import LanguageModel
    from fissure.models.loading import resolve_device
    from fissure.zoo import WEIGHTS_DIR, bundled_model_path
    from fissure.zoo.emoji_lm import EmojiLmConfig, train_emoji_lm

    config = EmojiLmConfig().tiny() if tiny else EmojiLmConfig()
    if steps is not None:
        config = dataclasses.replace(config, steps=steps)
    deadline = time.monotonic() + 60 * max_minutes if max_minutes is not None else None
    folder = train_emoji_lm(
        out,
        bundled_model_path("emoji-sd") / "tokenizer",
        config,
        device=resolve_device(device),
        install=WEIGHTS_DIR / config.name if install else None,
        checkpoint_seconds=60 * checkpoint_minutes,
        deadline=deadline,
        command=command,
    )
    if folder is None:
        typer.echo(
            "paused by --max-minutes; the checkpoint is saved: run the same command to go on"
        )
        raise typer.Exit(code=3)
    language_model = LanguageModel.from_pretrained(str(folder))  # loads as users will
    typer.echo(
        f"emoji-lm is trained: {folder} ({language_model.model.num_parameters():,} parameters)"
    )


def evaluate_lm(source: str, held_out: int) -> None:
    """Print a causal LM's perplexity on the held-out captions and the class prompts."""
    from fissure.models.language import LanguageModel
    from fissure.zoo.emoji_lm import HELD_OUT_SEEDS, measure

    started = time.monotonic()
    scores = measure(LanguageModel.from_pretrained(source), held_out)
    typer.echo(
        f"{source}: perplexity {scores['held_out_perplexity']:.2f} on {held_out:,} held-out "
        f"captions (world seeds from {HELD_OUT_SEEDS:,}), {scores['class_prompt_perplexity']:.2f} "
        f"on the class prompts ({time.monotonic() - started:.0f} s)"
    )
