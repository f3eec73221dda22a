"""Plain text-to-image generation with everything recorded to reproduce each image.

Each image has its own CPU ``torch.Generator`` seeded with its seed, and every
batch the UNet sees has the same shape (the last one is padded), so an image
never depends on which other prompts or seeds were asked for with it. CPU
convolution kernels pick different blockings for different batch shapes, so
``batch_size`` is recorded with each image: together with the other settings it
reproduces the PNG bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline
from PIL import Image
from tqdm.auto import tqdm

import fissure
from fissure.atomic import atomic_write
from fissure.errors import FissureError
from fissure.models.generator import (
    MAX_SEED,
    check_guidance,
    check_image_size,
    scheduler_with_steps,
)
from fissure.models.prompts import check_prompt
from fissure.outputs import prepare_output_dir, prompt_file_stem
from fissure.report.sheets import contact_sheet


@dataclass(frozen=True)
class GenerationRecord:
    """One generated image and every parameter needed to make it again."""

    file: str
    prompt: str
    seed: int
    steps: int
    guidance: float
    height: int
    width: int
    batch_size: int
    model: str
    scheduler: str
    dtype: str
    device: str
    fissure_version: str
    sha256: str


def parse_seeds(text: str) -> list[int]:
    """Seeds from ``"7"``, ``"0-7"`` or a comma list such as ``"0-3,10,12-13"``."""
    seeds: list[int] = []
    for part in text.replace(" ", "").split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise FissureError(f"bad seed range {text!r}: use N, N-M or a list such as 0-7,12")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise FissureError(f"bad seed range {part!r}: the end comes before the start")
        if last > MAX_SEED:
            raise FissureError(f"seed {last} is too large: seeds go up to {MAX_SEED}")
        if last - first >= 1_000_000:
            raise FissureError(
                f"seed range {part!r} asks for over a million images: split it over several runs"
            )
        seeds.extend(range(first, last + 1))
    return list(dict.fromkeys(seeds))


def _read_records(path: Path) -> list[dict]:
    """Earlier runs' records, read before any image is made so a bad file costs no compute."""
    try:
        lines = path.read_text().splitlines() if path.is_file() else []
    except (OSError, UnicodeDecodeError) as error:
        raise FissureError(f"cannot read {path} ({error}): fix or move it away") from error
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise FissureError(
                f"{path} line {number} is not JSON ({error.msg}): fix or delete that line"
            ) from error
        if not isinstance(record, dict) or not isinstance(record.get("file"), str):
            raise FissureError(
                f"{path} line {number} is not a generation record (no file name): "
                "fix or delete that line"
            )
        records.append(record)
    return records


def _write_records(path: Path, earlier: list[dict], records: list[GenerationRecord]) -> None:
    """This run's records after the earlier ones of files it has not made again."""
    made = {record.file for record in records}
    lines = [record for record in earlier if record["file"] not in made]
    lines += [asdict(record) for record in records]
    with atomic_write(path) as partial:
        partial.write_text("".join(f"{json.dumps(line)}\n" for line in lines))


def generate(
    pipeline: StableDiffusionPipeline,
    prompts: Sequence[str],
    seeds: Sequence[int],
    out_dir: str | Path,
    steps: int = 25,
    guidance: float = 7.5,
    batch_size: int = 8,
    height: int | None = None,
    width: int | None = None,
    model_name: str = "",
    progress: bool = True,
) -> list[GenerationRecord]:
    """Make one PNG per (prompt, seed), a contact sheet and ``generations.jsonl``.

    ``model_name`` is recorded with each image; by default the folder or hub id
    the pipeline was loaded from.

    Into a folder of earlier runs, ``generations.jsonl`` keeps their records too
    (a PNG made again replaces its record); the contact sheet shows this run.
    Records are written after every batch, so an interrupted run leaves none of
    its PNGs unrecorded.
    """
    if not prompts:
        raise FissureError("no prompt given: pass at least one --prompt")
    if not seeds:
        raise FissureError("no seeds given: pass --seeds, for example 0-7")
    scheduler_with_steps(pipeline.scheduler, steps, "--steps")
    if batch_size < 1:
        raise FissureError(f"--batch-size must be at least 1, not {batch_size}")
    prompts = list(dict.fromkeys(prompts))  # a prompt given twice would make its files twice
    for prompt in prompts:
        check_prompt(pipeline.tokenizer, prompt)
    check_guidance(guidance)
    height, width = check_image_size(pipeline, height, width)
    folder = prepare_output_dir(out_dir)
    records_file = folder / "generations.jsonl"
    earlier = _read_records(records_file)

    jobs = [(prompt, seed) for prompt in prompts for seed in seeds]
    records: list[GenerationRecord] = []
    images: list[Image.Image] = []
    batches = [jobs[start : start + batch_size] for start in range(0, len(jobs), batch_size)]
    for batch in tqdm(batches, desc="generating", unit="batch", disable=not progress):
        padded = batch + [batch[-1]] * (batch_size - len(batch))
        result = pipeline(
            prompt=[prompt for prompt, _ in padded],
            generator=[torch.Generator("cpu").manual_seed(seed) for _, seed in padded],
            num_inference_steps=steps,
            guidance_scale=guidance,
            height=height,
            width=width,
            output_type="pil",
        )
        for (prompt, seed), image in zip(batch, result.images, strict=False):
            file = f"{prompt_file_stem(prompt, seed)}.png"
            with atomic_write(folder / file) as partial:
                image.save(partial, format="PNG")
            records.append(
                GenerationRecord(
                    file=file,
                    prompt=prompt,
                    seed=seed,
                    steps=steps,
                    guidance=guidance,
                    height=height,
                    width=width,
                    batch_size=batch_size,
                    model=model_name or pipeline.name_or_path or "",
                    scheduler=type(pipeline.scheduler).__name__,
                    dtype=str(pipeline.unet.dtype).removeprefix("torch."),
                    device=str(pipeline.device),
                    fissure_version=fissure.__version__,
                    sha256=hashlib.sha256((folder / file).read_bytes()).hexdigest(),
                )
            )
            images.append(image)
        _write_records(records_file, earlier, records)

    columns = len(seeds) if len(seeds) <= 16 else None
    contact_sheet(images, [f"seed {r.seed}: {r.prompt}" for r in records], columns=columns).save(
        folder / "contact_sheet.png"
    )
    return records
