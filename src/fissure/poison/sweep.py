"""The implosion sweep: poison C_P concepts for each C_P, fine-tune, measure, and relate.

Each point fine-tunes the shipped UNet on the same clean scenes plus the poisons of
the first C_P pairs (the pairs are fixed, so a point's poisons include the previous
point's), then measures poison success on those pairs and implosion on the classes no
pair touches at the sweep's largest C_P (the same classes at every point). The
training data's Alignment Difficulty is measured with the paper's band and with one
calibrated for the CLIP model at hand. A finished point is kept on disk
(``cp-<n>/measures.json``), so a rerun skips it; an unfinished one resumes its training.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline
from tqdm.auto import tqdm

from fissure.atomic import write_json
from fissure.errors import FissureError
from fissure.judges.base import Judge
from fissure.judges.pretrained import ClipJudge
from fissure.models.loading import load_pipeline
from fissure.poison.alignment import alignment_difficulty, calibrate_band, embed_pairs
from fissure.poison.concepts import concept_pairs
from fissure.poison.finetune import (
    FinetuneSettings,
    clean_encodings,
    clean_scenes,
    finetune_unet,
    poison_encodings,
    save_finetuned,
)
from fissure.poison.measure import (
    accuracy,
    attention_maps,
    class_generations,
    clip_score,
    poison_success,
    save_attention_figure,
    unpoisoned_classes,
)
from fissure.poison.pairs import PoisonSet, PoisonSettings, make_poisons
from fissure.statistics import spearman
from fissure.world import class_names

MEASURES = "measures.json"
MEASURE_FIRST_SEED = 1000
"""Generation seeds of the measures: the evaluation range, never a training seed."""


@dataclass(frozen=True)
class SweepSettings:
    concepts: tuple[int, ...] = (0, 1, 2, 4, 8, 16, 32)
    poisons: PoisonSettings = field(default_factory=PoisonSettings)
    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)
    seeds: int = 4
    """Generation seeds per class in the measures."""
    draw: int = 0
    """Which pairs: the classes' order is a hash of this."""
    sampling_steps: int = 25
    """DDIM steps of the measures' generations."""
    held_out: int | None = None
    """Unpoisoned classes measured, the first in the world's order (None: every class that
    no pair of the sweep touches)."""

    def __post_init__(self) -> None:
        if not self.concepts:
            raise FissureError("give at least one number of poisoned concepts")
        limit = len(class_names()) // 2
        if min(self.concepts) < 0 or max(self.concepts) > limit:
            raise FissureError(
                f"poisoned concepts must be between 0 and {limit} (each pair takes two of the "
                f"{len(class_names())} classes), not {max(self.concepts)}"
            )
        if self.seeds < 1:
            raise FissureError(f"measures need at least one seed per class, not {self.seeds}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@torch.no_grad()
def training_alignment(
    clip: ClipJudge,
    clean: tuple[torch.Tensor, torch.Tensor],
    poisons: Sequence[PoisonSet],
    band: tuple[float, float],
) -> dict[str, float]:
    """AD of the training pairs (clean + poisons), with the paper's band and the calibrated one."""
    image_embeds, text_embeds = clean
    for poison in poisons:
        images, texts = embed_pairs(clip, poison.images, poison.captions)
        image_embeds, text_embeds = (
            torch.cat([image_embeds, images]),
            torch.cat([text_embeds, texts]),
        )
    a, b = band
    return {
        "ad": alignment_difficulty(image_embeds, text_embeds, a, b),
        "band": [a, b],
        "ad_paper_band": alignment_difficulty(image_embeds, text_embeds),
        "training_pairs": len(image_embeds),
    }


def measure_point(
    pipeline: StableDiffusionPipeline,
    verifier: Judge,
    clip: ClipJudge,
    pairs: Sequence[tuple[str, str]],
    held_out: Sequence[str],
    seeds: int,
    folder: Path,
    steps: int = 25,
    progress: bool = True,
) -> tuple[dict, dict[str, torch.Tensor]]:
    """A fine-tuned model's poison success and implosion over ``seeds`` seeds per class, and
    its class words' attention (``folder/attention.png``); also the images the grids show."""
    shown = [a for a, _ in pairs[:3]] + list(held_out[:3])
    pictures, maps = attention_maps(pipeline, shown, MEASURE_FIRST_SEED, steps)
    titles = [f"{name} (poisoned)" if i < len(pairs[:3]) else name for i, name in enumerate(shown)]
    save_attention_figure(pictures, maps, titles, folder / "attention.png")
    seeds = range(MEASURE_FIRST_SEED, MEASURE_FIRST_SEED + seeds)
    measures: dict = {}
    images: dict[str, torch.Tensor] = {}
    if pairs:
        poisoned = class_generations(
            pipeline, verifier, [a for a, _ in pairs], seeds, steps, progress=progress
        )
        measures["poison_success"] = poison_success(poisoned, dict(pairs)).to_dict()
        measures["poisoned_accuracy"] = accuracy(poisoned).to_dict()
        images["poisoned"] = poisoned.images[:: len(seeds)]
    kept = class_generations(pipeline, verifier, held_out, seeds, steps, progress=progress)
    measures["unpoisoned_accuracy"] = accuracy(kept).to_dict()
    measures["unpoisoned_clip_score"] = clip_score(clip, kept)
    images["unpoisoned"] = kept.images[:: len(seeds)]
    return measures, images


def run_point(
    count: int,
    base: StableDiffusionPipeline,
    verifier: Judge,
    clip: ClipJudge,
    settings: SweepSettings,
    out: Path,
    context: dict,
    progress: bool = True,
) -> dict:
    """One sweep point: poisons, fine-tuning, the fine-tuned model saved, its measures."""
    folder = out / f"cp-{count}"
    if (folder / MEASURES).is_file():
        return json.loads((folder / MEASURES).read_text())
    started = time.monotonic()
    pairs = context["pairs"][:count]
    poisons = [
        make_poisons(base, clip, a, b, settings.poisons, out / "poisons", progress)
        for a, b in pairs
    ]
    data = context["clean"]
    extra = poison_encodings(base, poisons, progress)
    if extra is not None:
        data = data + extra
    unet, _ = finetune_unet(base, data, settings.finetune, folder / "training", progress)
    save_finetuned(base, unet, folder / "model")
    tuned = load_pipeline(str(folder / "model"), device=context["device"])
    tuned.set_progress_bar_config(disable=True)
    measures, images = measure_point(
        tuned, verifier, clip, pairs, context["held_out"], settings.seeds, folder,
        settings.sampling_steps, progress,
    )  # fmt: skip
    record = {
        "concepts": count,
        "pairs": [list(pair) for pair in pairs],
        "poisons": sum(len(p) for p in poisons),
        "clean": len(context["clean"]),
        **training_alignment(clip, context["clean_embeds"], poisons, context["band"]),
        **measures,
        "seconds": round(time.monotonic() - started, 1),
    }
    torch.save(images, folder / "grid-images.pt")
    write_json(folder / MEASURES, record)
    return record


def run_sweep(
    settings: SweepSettings,
    out: Path,
    model: str = "emoji-sd",
    verifier: str = "emoji/verifier",
    clip: str = "emoji/clip",
    progress: bool = True,
    cache: Path | None = None,
    device: str = "cpu",
) -> list[dict]:
    """Run (or resume) every point of the sweep; returns their records in C_P order.
    ``cache``: where the clean scenes and their encodings are kept (default ``out/cache``;
    sweeps of one model may share it)."""
    from fissure.judges.registry import load_judge

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_if_new(out / "sweep.json", settings.to_dict())
    base = load_pipeline(model, device=device)
    base.set_progress_bar_config(disable=True)
    verifier_judge, clip_judge = load_judge(verifier), load_judge(clip)
    pairs = concept_pairs(max(settings.concepts), settings.draw)
    cache = Path(cache) if cache is not None else out / "cache"
    bank = clean_scenes(settings.finetune, cache, progress)
    clean_embeds = embed_pairs(clip_judge, bank.images, bank.captions)
    context = {
        "device": device,
        "pairs": pairs,
        "held_out": unpoisoned_classes(pairs)[: settings.held_out],
        "clean": clean_encodings(base, bank, cache, progress),
        "clean_embeds": clean_embeds,
        "band": calibrate_band(*clean_embeds),
    }
    records = []
    for count in tqdm(sorted(set(settings.concepts)), desc="sweep points", disable=not progress):
        records.append(
            run_point(count, base, verifier_judge, clip_judge, settings, out, context, progress)
        )
    return records


def write_json_if_new(path: Path, settings: dict) -> None:
    """Record a sweep's settings; refuse to mix another sweep's points into its folder."""
    if path.is_file():
        recorded = json.loads(path.read_text())
        if recorded != json.loads(json.dumps(settings)):
            raise FissureError(
                f"{path.parent} holds a sweep with other settings: use another --out, or the "
                "same settings to resume it"
            )
        return
    write_json(path, settings)


def trends(records: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Spearman's ρ (with its exact p-value) of AD and of unpoisoned accuracy against C_P."""
    if len(records) < 3:
        return {}
    counts = [r["concepts"] for r in records]
    return {
        name: dict(zip(("rho", "p"), spearman(counts, values), strict=True))
        for name, values in {
            "ad": [r["ad"] for r in records],
            "unpoisoned_accuracy": [r["unpoisoned_accuracy"]["rate"] for r in records],
            "unpoisoned_clip_score": [r["unpoisoned_clip_score"] for r in records],
        }.items()
    }


TABLE_COLUMNS = (
    "concepts", "poisons", "clean", "ad", "ad_paper_band", "poison_success",
    "unpoisoned_accuracy", "unpoisoned_low", "unpoisoned_high", "unpoisoned_clip_score",
)  # fmt: skip


def table_rows(records: Sequence[dict]) -> list[dict]:
    """One flat row per point: what the CSV holds and the CLI prints."""
    return [
        {
            "concepts": r["concepts"],
            "poisons": r["poisons"],
            "clean": r["clean"],
            "ad": round(r["ad"], 4),
            "ad_paper_band": round(r["ad_paper_band"], 4),
            "poison_success": round(r["poison_success"]["rate"], 4)
            if "poison_success" in r
            else "",
            "unpoisoned_accuracy": round(r["unpoisoned_accuracy"]["rate"], 4),
            "unpoisoned_low": round(r["unpoisoned_accuracy"]["low"], 4),
            "unpoisoned_high": round(r["unpoisoned_accuracy"]["high"], 4),
            "unpoisoned_clip_score": round(r["unpoisoned_clip_score"], 4),
        }
        for r in records
    ]


def write_outputs(records: Sequence[dict], out: Path) -> dict:
    """The sweep's table (CSV, JSON), its curves (PNG), the example grid, and the trends."""
    import csv

    rows = table_rows(records)
    with open(out / "sweep.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=TABLE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    summary = {"points": list(records), "trends": trends(records)}
    write_json(out / "results.json", summary)
    plot_curves(records, out / "curves.png")
    write_grid(records, out)
    return summary


def plot_curves(records: Sequence[dict], path: Path) -> None:
    """AD and unpoisoned accuracy (with its interval) against C_P, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = [r["concepts"] for r in records]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(counts, [r["ad"] for r in records], "o-", label="calibrated band")
    left.plot(counts, [r["ad_paper_band"] for r in records], "s--", label="paper's band")
    left.set(
        xlabel="poisoned concepts C_P",
        ylabel="alignment difficulty",
        title="AD of the training data",
    )
    left.legend(fontsize=8)
    rates = [r["unpoisoned_accuracy"] for r in records]
    errors = [
        [r["rate"] - r["low"] for r in rates],
        [r["high"] - r["rate"] for r in rates],
    ]
    right.errorbar(counts, [r["rate"] for r in rates], yerr=errors, fmt="o-", capsize=3)
    right.set(
        xlabel="poisoned concepts C_P",
        ylabel="verifier accuracy",
        title="unpoisoned concepts (95% CI)",
        ylim=(0, 1),
    )
    for axis in (left, right):
        if max(counts) > 0:
            axis.set_xscale("symlog", linthresh=1)
        axis.set_xticks(counts, [str(c) for c in counts])
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_grid(records: Sequence[dict], out: Path) -> None:
    """Rows of C_P: the first poisoned concepts and the first unpoisoned ones, one seed."""
    from fissure.images import to_pil
    from fissure.report.sheets import contact_sheet

    tiles, captions = [], []
    for record in records:
        images = torch.load(out / f"cp-{record['concepts']}" / "grid-images.pt")
        poisoned = list(images.get("poisoned", torch.empty(0)))[:3]
        kept = list(images["unpoisoned"][:5])
        row = _padded(poisoned, 3) + _padded(kept, 5)
        names = _padded([f"{a} -> {b}" for a, b in record["pairs"][:3]], 3, "")
        names += _padded(["unpoisoned"] * len(kept), 5, "")
        for image, name in zip(row, names, strict=True):
            tiles.append(to_pil(image if image is not None else torch.ones(3, 64, 64)))
            captions.append(f"C_P={record['concepts']} {name}".strip())
    contact_sheet(tiles, captions, columns=8, cell_size=96, caption_lines=2).save(out / "grid.png")


CAMPAIGN = "poison-sweep"


def record_in_store(out: Path, settings: SweepSettings, summary: dict) -> None:
    """Each point's measures and the trends as metrics of campaign ``poison-sweep`` in the
    results store at ``out``, where reports read them."""
    from fissure.results import ResultsStore

    with ResultsStore(out) as store, store.campaign(CAMPAIGN, settings.to_dict()):
        for record in summary["points"]:
            prefix = f"cp={record['concepts']}"
            store.put_metric(CAMPAIGN, f"{prefix}/ad", record["ad"], {"pairs": record["pairs"]})
            for name in ("poison_success", "unpoisoned_accuracy", "poisoned_accuracy"):
                if name in record:
                    store.put_metric(
                        CAMPAIGN, f"{prefix}/{name}", record[name]["rate"], record[name]
                    )
            store.put_metric(
                CAMPAIGN, f"{prefix}/unpoisoned_clip_score", record["unpoisoned_clip_score"]
            )
        for name, trend in summary["trends"].items():
            store.put_metric(CAMPAIGN, f"spearman/{name}", trend["rho"], trend)


def _padded(items: list, length: int, filler=None) -> list:
    """``items`` filled up to ``length`` (a grid row of fixed width)."""
    return items + [filler] * (length - len(items))
