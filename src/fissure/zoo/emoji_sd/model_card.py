"""The model card (README.md) written beside the shipped weights.

It is generated from what the recipe recorded (configs, stage records with
gates, commands, times and machines; the evaluation when there is one), plus
the calibration notes kept in the resume-point folder, so it cannot drift from
the weights it describes.
"""

from __future__ import annotations

import json
from pathlib import Path

from fissure.atomic import atomic_write
from fissure.zoo.emoji_sd.common import StageRecord
from fissure.zoo.emoji_sd.config import EmojiSdConfig
from fissure.zoo.emoji_sd.evaluate import MEASURES, Evaluation, polysemous_class_names


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _gate_line(record: StageRecord) -> str:
    if not record.gate:
        return "none of its own (measured after the next stage)"
    shown = ", ".join(
        f"{key} {value:.3f}" if isinstance(value, float) else f"{key} {value}"
        for key, value in record.gate.items()
    )
    return f"{'passed' if record.passed else 'NOT passed'} ({shown})"


def model_card(
    config: EmojiSdConfig,
    records: dict[str, StageRecord],
    sizes: dict[str, int],
    scaling_factor: float,
    evaluation: Evaluation | None = None,
    calibration: str | None = None,
) -> str:
    lines = [
        f"# {config.name}",
        "",
        "A small latent diffusion model in the diffusers Stable Diffusion layout, trained by",
        "fissure's own recipe (`fissure zoo train emoji-sd`) on the procedurally generated",
        "emoji world. Load it without fissure:",
        "",
        "```python",
        "from diffusers import StableDiffusionPipeline",
        "",
        "pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, safety_checker=None)",
        'image = pipe("a photo of a dog", num_inference_steps=25, guidance_scale=7.5).images[0]',
        "```",
        "",
        "`clip/` holds the CLIP pair (text tower = the pipeline's text encoder) as a",
        "`CLIPModel` for CLIP scores and zero-shot judging (`load_judge('clip:<folder>/clip')`).",
        "Weights are stored in float16 and load in float32.",
        "",
        "## Data",
        "",
        f"{config.data.count:,} Noto emoji scenes (64×64, seeds {config.data.first_seed:,}…, "
        f"object counts cycling {list(config.data.object_counts)}) with their captions. The "
        f"tokenizer's BPE (a vocabulary of about {config.data.vocab_size} tokens) is "
        f"learned from {config.data.tokenizer_captions:,} captions and the class prompts. "
        f"CLIP trains on {config.data.max_length} tokens (captions are at most 30); the "
        f"pipeline reads prompts of {config.prompt_length()} tokens"
        + (
            ", its text encoder's later positions copying the last trained one (causal "
            "attention leaves every output of a shorter prompt, and CLIP's scores, unchanged)"
            if config.prompt_length() > config.data.max_length
            else ""
        )
        + ". Gates and evaluations use seeds no stage trains on.",
        "",
        "## Components",
        "",
        "| component | parameters |",
        "|---|---|",
        *(f"| {name} | {count / 1e6:.2f} M |" for name, count in sizes.items()),
        "",
        f"VAE latents are 16×16×{config.vae.latent_channels}, scaling factor "
        f"{scaling_factor:.4f} (1 / std of posterior samples). Scheduler: DDIM on SD's "
        f"scaled-linear β schedule ({config.unet.beta_start}–{config.unet.beta_end}, "
        f"{config.unet.num_train_timesteps} steps), ε-prediction.",
        "",
        "## Stages, gates, time and machine",
        "",
    ]
    for name, record in records.items():
        lines += [
            f"### {name}",
            "",
            f"- steps: {record.steps}, training time {_hours(record.seconds)}",
            f"- gate: {_gate_line(record)}",
        ]
        for session in record.sessions or [{"machine": record.machine, "command": record.command}]:
            where = (
                f"steps {session['from_step']}→{session['to_step']}, started {session['started']}, "
                if "from_step" in session
                else ""
            )
            lines.append(f"- session: {where}on {session['machine']}: `{session['command']}`")
        lines += [f"- {key}: {value}" for key, value in record.notes.items()]
        lines.append("")
    lines += ["## Recipe", "", "```json", json.dumps(config.to_dict(), indent=2), "```", ""]
    lines += [QUALITY_START, quality_section(evaluation), QUALITY_END, ""]
    if calibration:
        lines.append(calibration_section(calibration))
    return "\n".join(lines)


CALIBRATION_HEADING = "## Calibration runs"


def calibration_section(notes: str) -> str:
    """The card's last section: the calibration notes of the resume-point folder."""
    return f"{CALIBRATION_HEADING}\n\n{notes.strip()}\n"


def update_calibration(folder: Path, notes: str) -> bool:
    """Replace (or add) the calibration section of the model card in ``folder``.

    The notes grow by hand between trainings; this keeps the shipped card in step
    without retraining. False if ``folder`` has no card.
    """
    path = Path(folder) / "README.md"
    if not path.is_file():
        return False
    head = path.read_text(encoding="utf-8").split(CALIBRATION_HEADING, 1)[0].rstrip("\n")
    write_model_card(folder, f"{head}\n\n{calibration_section(notes)}")
    return True


QUALITY_START, QUALITY_END = "<!-- quality:start -->", "<!-- quality:end -->"


def quality_section(evaluation: Evaluation | None) -> str:
    """The "Measured quality" section: the evaluation's bars, or how to measure them."""
    if evaluation is None:
        return "## Measured quality\n\nNot measured yet: run `fissure zoo evaluate emoji-sd`."
    at_the_bars = evaluation.at_the_bars_settings()
    lines = [
        "## Measured quality",
        "",
        f"`fissure zoo evaluate emoji-sd`: {evaluation.settings()}; judged by the held-out "
        f"verifier (`{evaluation.verifier}`) and this model's CLIP ({evaluation.seconds:.0f} s; "
        f"weights `{evaluation.weights or '?'}`).",
        "",
    ]
    if not at_the_bars:
        lines += [
            "Not the bars' settings: a look, not their measurement; no bar is called met.",
            "",
        ]
    lines += ["| measure | score | bar | met |", "|---|---|---|---|"]
    for name, (score, bar, met) in evaluation.checks().items():
        shown = "–" if score is None else f"{score:.2%}"  # 84.99% never reads as 85.0%
        verdict = "" if met is None or not at_the_bars else "yes" if met else "no"
        lines.append(
            f"| {MEASURES[name]} (`{name}`) | {shown} | {'' if bar is None else f'{bar:.0%}'} "
            f"| {verdict} |"
        )
    lines += [
        "",
        "Some class names are polysemous in the emoji world by design ("
        + "; ".join(
            f'"{name}" also names the {" and the ".join(other)}'
            for name, other in polysemous_class_names().items()
        )
        + "). The bars hold the prompted class only (the `_strict` rows); the rows without "
        "a bar also accept an image of the other meaning.",
        "",
        f"Weakest classes (prompted class only): {evaluation.weakest()}",
    ]
    return "\n".join(lines)


def update_quality(folder: Path, evaluation: Evaluation) -> bool:
    """Replace the quality section of the model card in ``folder``; False if it has none."""
    path = Path(folder) / "README.md"
    if not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    if QUALITY_START not in text or QUALITY_END not in text:
        return False
    head, rest = text.split(QUALITY_START, 1)
    _, tail = rest.split(QUALITY_END, 1)
    write_model_card(
        folder,
        head + QUALITY_START + "\n" + quality_section(evaluation) + "\n" + QUALITY_END + tail,
    )
    return True


def write_model_card(folder: Path, text: str) -> None:
    """Write README.md whole: a kill mid-write never leaves the shipped card cut short."""
    with atomic_write(Path(folder) / "README.md") as partial:
        partial.write_text(text, encoding="utf-8")
