"""Plain text-to-image generation with everything recorded to reproduce each image.

Each image has its own CPU ``torch.Generator`` seeded with its seed, and every
batch the UNet sees has the same shape (the last one is padded), so an image
does not depend on which other prompts or seeds were asked for with it. CPU
convolution kernels pick different blockings for different batch shapes and
thread counts, so ``batch_size`` and ``threads`` are recorded with each image:
with the other settings, on the same kind of machine, they reproduce the PNG bit
for bit.
"""

from __future__ import annotations

import hashlib
import json
import os
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
    check_seeds,
    scheduler_with_steps,
)
from fissure.models.prompts import check_prompt
from fissure.outputs import prepare_output_dir, prompt_file_stem
from fissure.report.sheets import contact_sheet, tile


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
    threads: int
    fissure_version: str
    sha256: str


#: Images a run may ask for at most (prompts × seeds), and shown on its contact sheet.
MAX_IMAGES = 1_000_000
SHEET_IMAGES = 256


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
        if len(seeds) + last - first >= MAX_IMAGES:
            raise FissureError(
                f"seeds {text!r} ask for over {MAX_IMAGES:,} images: split them over several runs"
            )
        seeds.extend(range(first, last + 1))
    return list(dict.fromkeys(seeds))


def _read_records(path: Path) -> list[dict]:
    """Earlier runs' records, read before any image is made so a bad file costs no compute."""
    try:
        text = path.read_text() if path.is_file() else ""
    except (OSError, UnicodeDecodeError) as error:
        raise FissureError(f"cannot read {path} ({error}): fix or move it away") from error
    lines = text.splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines) and not text.endswith("\n"):
                continue  # a kill cut the last append short; that PNG was replaced, not recorded
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


def _compact_records(path: Path) -> None:
    """Rewrite ``path`` with one record per file, its last: a file made again is the new one."""
    latest = {record["file"]: record for record in _read_records(path)}
    with atomic_write(path) as partial:
        partial.write_text("".join(f"{json.dumps(record)}\n" for record in latest.values()))


def _append_records(path: Path, records: list[GenerationRecord]) -> None:
    """Append a batch's records, on disk before the next batch starts."""
    with open(path, "a", encoding="utf-8") as file:
        file.write("".join(f"{json.dumps(asdict(record))}\n" for record in records))
        file.flush()
        os.fsync(file.fileno())


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
    (a PNG made again replaces its record); the contact sheet shows this run's
    first 256 images. Records are appended after every batch, so an interrupted
    run leaves none of its PNGs unrecorded (a PNG it made again then has two
    records, the last its own, until the next run into the folder).
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    seeds = [seeds] if isinstance(seeds, int) else seeds
    if not prompts:
        raise FissureError("no prompt given: pass at least one --prompt")
    if not seeds:
        raise FissureError("no seeds given: pass --seeds, for example 0-7")
    seeds = list(dict.fromkeys(check_seeds(seeds)))  # a seed given twice would be made twice
    if len(prompts) * len(seeds) > MAX_IMAGES:
        raise FissureError(
            f"{len(prompts)} prompts × {len(seeds)} seeds is over {MAX_IMAGES:,} images: "
            "split them over several runs"
        )
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
    jobs = [(prompt, seed) for prompt in prompts for seed in seeds]
    _compact_records(records_file)  # reads it first: a bad file costs no compute

    records: list[GenerationRecord] = []
    thumbnails: list[Image.Image] = []
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
        made = []
        for (prompt, seed), image in zip(batch, result.images, strict=False):
            file = f"{prompt_file_stem(prompt, seed)}.png"
            with atomic_write(folder / file) as partial:
                image.save(partial, format="PNG")
            made.append(
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
                    threads=torch.get_num_threads(),
                    fissure_version=fissure.__version__,
                    sha256=hashlib.sha256((folder / file).read_bytes()).hexdigest(),
                )
            )
            if len(thumbnails) < SHEET_IMAGES:  # a 512-pixel run keeps 16× less in memory
                thumbnails.append(tile(image))
        _append_records(records_file, made)
        records += made
    _compact_records(records_file)  # until here, an image made again has two records

    columns = len(seeds) if len(seeds) <= 16 else None
    captions = [f"seed {r.seed}: {r.prompt}" for r in records[: len(thumbnails)]]
    contact_sheet(thumbnails, captions, columns=columns).save(folder / "contact_sheet.png")
    return records
