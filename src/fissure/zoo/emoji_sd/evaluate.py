"""How good emoji-sd is, measured by judges on noise seeds no training step used.

- single objects: "a photo of a <class>" for every class × ``seeds`` seeds; the
  verifier's top-1 (average over classes, and the share of classes ≥ 50%);
- pairs: "a <A> and a <B>" over random class pairs; both in the verifier's top 2;
- CLIP retrieval, text→image top-1 over galleries of one image per class: on
  rendered held-out scenes (the bar: the CLIP pair itself), and on the generated
  single-object images (no bar: how well the samples match their prompts for CLIP).

The bars hold the prompted class only (the ``*_strict`` scores). Some class names
are polysemous in the world by design (:func:`polysemous_class_names`; "mouse" also
names the computer mouse); the scores without ``_strict`` also accept an image of
the other meaning, and are shown without a bar.

Bars (25 DDIM steps, guidance 7.5): average top-1 ≥ 85%, ≥ 50% for ≥ 95% of
classes, pairs ≥ 60%, CLIP retrieval on rendered scenes ≥ 70%. They are measured on
the :data:`EVALUATION` seeds and pairs, which nothing else reads: gates and
calibration probes, which choose recipes and steps, draw from :data:`PROBE`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline
from tqdm.auto import tqdm

from fissure.atomic import write_json
from fissure.digest import image_weights_digest
from fissure.errors import FissureError
from fissure.images import as_saved, to_pil
from fissure.judges.base import Judge
from fissure.judges.pretrained import ClipJudge
from fissure.world import class_names
from fissure.world.grammar import indefinite
from fissure.world.lexicon import mentions
from fissure.zoo.emoji_sd.gates import GATE_SEED, clip_retrieval_scores, scene_retrieval_scores
from fissure.zoo.scene_bank import SceneBank


@dataclass(frozen=True)
class SeedPlan:
    """The noise seeds, class pairs and scenes of a measurement (training draws from others).

    Single ``s`` starts from noise seed ``singles + s``, pair ``i`` from ``pairs + i``;
    ``pair_draw`` chooses which class pairs are asked for; the CLIP bar's rendered
    scenes start at world seed ``scenes`` (see :func:`~fissure.zoo.emoji_sd.gates.gate_bank`).
    """

    name: str
    singles: int
    pairs: int
    pair_draw: int
    scenes: int


#: The bars' evaluation: read by nothing that chooses a recipe, a step or a rule. Until
#: stop 26 the evaluation drew noise seeds 3,000,000,000… and 3,001,000,000… with pair draw
#: 2024, and scored CLIP on the gates' scenes; gates, probes and the choice of the first
#: shipped step read those too, so they are retired (:data:`RETIRED_SEEDS`).
EVALUATION = SeedPlan("held-out", 4_000_000_000, 4_001_000_000, 2026, 1_600_000_000)
#: Gates and calibration probes, which do choose.
PROBE = SeedPlan("probe", 3_500_000_000, 3_501_000_000, 2025, GATE_SEED)
#: Noise seed bases that choices have read: no evaluation may start from them again.
RETIRED_SEEDS = frozenset({3_000_000_000, 3_001_000_000, 3_500_000_000, 3_501_000_000})

#: The evaluation the bars are stated for: ``evaluate_pipeline``'s defaults.
BAR_SETTINGS = {
    "seeds": 20,
    "pairs": 200,
    "steps": 25,
    "guidance": 7.5,
    "verifier": "emoji/verifier",
    "clip_scenes": 3000,
    "dtype": "float32",
    "seed_plan": EVALUATION.name,
    "scheduler": "DDIMScheduler",
    "images": "8-bit",
}

#: How many distinct unordered pairs the classes make (``--pairs`` at most).
PAIRS_POSSIBLE = len(class_names()) * (len(class_names()) - 1) // 2

BARS = {
    "single_top1_strict": 0.85,
    "classes_at_50_strict": 0.95,
    "pairs_top2_strict": 0.60,
    "clip_text_to_image_top1": 0.70,
}

#: Bar settings that records from before they were recorded lack, with the value they had
#: (the bundled v1's scheduler folder is DDIM's). Images are not here: those records read floats.
UNRECORDED_SETTINGS = {"scheduler": "DDIMScheduler"}

#: The verifier's scores of the prompted class: no shipped model may lose any of them.
STRICT_SCORES = ("single_top1_strict", "classes_at_50_strict", "pairs_top2_strict")

#: Slack for a score that is a bar exactly (a float32 mean of 16/20 and 18/20 read 84.999999%).
ROUNDING = 1e-9

#: What each measure is, for tables.
MEASURES = {
    "single_top1_strict": 'verifier top-1 on "a photo of a <class>" is the class, '
    "mean over classes",
    "classes_at_50_strict": "share of classes with verifier top-1 ≥ 50%",
    "pairs_top2_strict": 'the two classes are the verifier\'s top 2 on "a <A> and a <B>"',
    "clip_text_to_image_top1": "CLIP text→image top-1 on rendered held-out scenes",
    "single_top1": "singles, either meaning of a polysemous name",
    "classes_at_50": "share of classes ≥ 50%, either meaning",
    "pairs_top2": "pairs, either meaning",
    "clip_generated_text_to_image_top1": "CLIP text→image top-1 on the generated singles",
}


@dataclass
class Evaluation:
    """Scores of one evaluation, with the settings that made them."""

    single_top1: float
    classes_at_50: float
    pairs_top2: float
    clip_text_to_image_top1: float | None
    clip_generated_text_to_image_top1: float | None
    per_class: dict[str, float]
    """Each class's top-1, either meaning of a polysemous name."""
    seeds: int
    pairs: int
    steps: int
    guidance: float
    seconds: float
    worst_classes: list[str] = field(default_factory=list)
    dtype: str = "float32"
    """The pipeline's weights: bfloat16 samples faster where a CPU computes it natively."""
    single_top1_strict: float | None = None
    classes_at_50_strict: float | None = None
    pairs_top2_strict: float | None = None
    verifier: str = "emoji/verifier"
    """The judge that read the samples."""
    clip_scenes: int = 0
    """Rendered scenes asked for by the CLIP retrieval bar (0: not measured)."""
    clip_scenes_scored: int = 0
    """Of them, the scenes in its galleries: as many rounds as the rarest class has."""
    clip_gallery_classes: int = 0
    """Classes in each gallery: every class of the world unless scenes were too few."""
    seed_plan: str = EVALUATION.name
    prompt_length: int = 0
    """Tokens the pipeline pads prompts to."""
    threads: int = 0
    """CPU threads torch used (float results may differ in their last bits with it)."""
    per_class_strict: dict[str, float] = field(default_factory=dict)
    """Each class's top-1 as the prompted class: what the classes ≥ 50% bar counts."""
    model: str = ""
    """What was measured: the model name or folder given."""
    weights: str = ""
    """A fingerprint of the text encoder, UNet and VAE weights (:func:`~fissure.digest.weights_digest`)."""
    scheduler: str = ""
    """The pipeline's scheduler class (the bars are stated for DDIM)."""
    timestep_spacing: str = ""
    """Its timestep spacing, where it has one."""
    images: str = ""
    """How the judges read the samples: "8-bit", as a PNG keeps them (unrecorded: floats)."""

    def at_the_bars_settings(self) -> bool:
        """Whether this is the evaluation the bars are stated for."""
        return all(getattr(self, name) == value for name, value in BAR_SETTINGS.items())

    def settings(self) -> str:
        """The settings in words, for a table's title and the model card."""
        spacing = f", {self.timestep_spacing} spacing" if self.timestep_spacing else ""
        return (
            f"{self.steps} steps of {self.scheduler or '?'}{spacing}, guidance {self.guidance}, "
            f"{self.dtype}, {self.images or 'float'} images, {self.seeds} seeds per class, "
            f"{self.pairs} pairs, prompts of {self.prompt_length or '?'} tokens, "
            f"seed plan {self.seed_plan}"
        )

    def checks(self) -> dict[str, tuple[float | None, float | None, bool | None]]:
        """Each measure: (score, bar, met); bar and met are None for a measure without a bar."""
        rows = {}
        for name in MEASURES:
            score, bar = getattr(self, name), BARS.get(name)
            met = None if bar is None else score is not None and score >= bar - ROUNDING
            rows[name] = (score, bar, met)
        return rows

    def weakest(self) -> str:
        """The weakest classes with their prompted-class scores: "bat 35%, mouse 40%"."""
        return ", ".join(
            f"{name} {self.per_class_strict[name]:.0%}" if name in self.per_class_strict else name
            for name in self.worst_classes
        )

    def passed(self) -> bool:
        return self.bars_met() == len(BARS)

    def to_dict(self) -> dict:
        """Every score and setting, each check as (score, bar, met), and the verdict."""
        return {
            **asdict(self),
            "checks": {name: list(check) for name, check in self.checks().items()},
            "passed": self.passed(),
        }

    def bars_met(self) -> int:
        return sum(bool(met) for _, bar, met in self.checks().values() if bar is not None)

    def against(self, shipped: Evaluation) -> tuple[bool | None, list[str]]:
        """The shipping rule (training/README.md): a run replaces the shipped model only with
        at least as many bars met and no strict verifier score lower.

        Returns the verdict and a line per measure. The verdict is None where the rule cannot
        tell: the same weights, or the two not both measured at the bars' settings (a record
        from before a setting was recorded counts with its known value,
        :data:`UNRECORDED_SETTINGS`; one that read float images does not, since a rounding
        may flip an image near a class boundary).
        """
        if self.weights and self.weights == shipped.weights:
            return None, ["the shipped weights themselves"]
        lines = [f"bars met: {self.bars_met()} (shipped {shipped.bars_met()})"]
        better = self.bars_met() >= shipped.bars_met()
        for name in STRICT_SCORES:
            new, old = getattr(self, name), getattr(shipped, name)
            if new is None or old is None:  # an evaluation from before strict scores
                lines.append(f"{name}: {new} (shipped {old}): not measured in both")
                better = False
                continue
            lines.append(f"{name}: {new:.2%} (shipped {old:.2%}, {new - old:+.2%})")
            better &= new >= old - ROUNDING
        recorded = {
            name: getattr(shipped, name) or UNRECORDED_SETTINGS.get(name, "")
            for name in BAR_SETTINGS
        }
        differ = [name for name in BAR_SETTINGS if getattr(self, name) != recorded[name]]
        if differ:
            lines.append(
                "measured differently: "
                + "; ".join(
                    f"{name} {recorded[name] or 'unrecorded'} → {getattr(self, name) or 'unrecorded'}"
                    for name in differ
                )
            )
        if not self.at_the_bars_settings():
            lines.append("this evaluation is a look, not at the bars' settings")
        elif differ:
            lines.append("measure the shipped model alike first: `fissure zoo evaluate emoji-sd`")
        return (better if self.at_the_bars_settings() and not differ else None), lines

    def save(self, path: Path) -> None:
        """Write :meth:`to_dict` as ``evaluation.json`` whole (a kill never leaves half)."""
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> Evaluation:
        """An ``evaluation.json`` written by ``fissure zoo evaluate``, or a one-line error."""
        try:
            saved = json.loads(Path(path).read_text(encoding="utf-8"))
            known = {f.name for f in fields(cls)}
            return cls(**{key: value for key, value in saved.items() if key in known})
        except (OSError, ValueError, TypeError, AttributeError) as error:
            raise FissureError(
                f"{path} is not an evaluation.json of `fissure zoo evaluate` ({error})"
            ) from None


def check_pair_count(count: int) -> None:
    """Refuse asking for more distinct pairs than the classes make (or none)."""
    if not 1 <= count <= PAIRS_POSSIBLE:
        raise FissureError(f"pairs must be from 1 to {PAIRS_POSSIBLE} (every pair of classes)")


def pair_prompts(count: int, draw: int) -> list[tuple[str, str]]:
    """``count`` distinct unordered pairs of classes, in a random order fixed by ``draw``.

    Ranked by a hash, not by ``random``: the same pairs on every Python version.
    """
    check_pair_count(count)
    names = class_names()

    def rank(a: str, b: str) -> bytes:
        return hashlib.sha256(f"{draw}:{a}:{b}".encode()).digest()

    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    chosen = sorted(pairs, key=lambda pair: rank(*pair))[:count]
    return [(a, b) if rank(a, b)[-1] % 2 else (b, a) for a, b in chosen]


def accepted_classes(prompt: str) -> list[frozenset[str]]:
    """For each class mention of ``prompt``, the classes an image may show to follow it."""
    return [frozenset(mention.classes) for mention in mentions(prompt)]


def class_readings() -> dict[str, frozenset[str]]:
    """Each class name's readings: the classes its words name (two for "mouse")."""
    return {name: frozenset().union(*accepted_classes(name)) for name in class_names()}


def polysemous_class_names() -> dict[str, list[str]]:
    """Class names that also name other classes ("mouse"), with those classes."""
    return {
        name: sorted(readings - {name})
        for name, readings in class_readings().items()
        if len(readings) > 1
    }


def pair_found(read: tuple[str, str], accepted: list[frozenset[str]]) -> bool:
    """Whether the two classes read cover the prompt's two mentions, one each."""
    if len(accepted) != 2:
        return False
    (x, y), (first, second) = read, accepted
    return (x in first and y in second) or (y in first and x in second)


def class_means(correct: torch.Tensor, labels: torch.Tensor, names: list[str]) -> dict[str, float]:
    """Each class's mean of ``correct`` over its images (in float64: a bar may fall on it)."""
    return {names[c]: float(correct[labels == c].double().mean()) for c in range(len(names))}


def share_at_50(per_class: dict[str, float]) -> float:
    """The share of classes scoring at least 50%."""
    return sum(score >= 0.5 for score in per_class.values()) / len(per_class)


@torch.no_grad()
def generate(
    pipeline: StableDiffusionPipeline,
    prompts: list[str],
    seeds: list[int],
    steps: int,
    guidance: float,
    batch_size: int = 16,
    progress: bool = True,
    description: str = "generating",
) -> torch.Tensor:
    """Images ``N×3×64×64`` in ``[0, 1]`` at 8 bits per channel (as the PNGs a user keeps),
    one CPU generator per image."""
    out = [torch.empty(0, 3, 64, 64)]
    for start in tqdm(
        range(0, len(prompts), batch_size), desc=description, disable=not progress, mininterval=5
    ):
        chunk = prompts[start : start + batch_size]
        generators = [torch.Generator().manual_seed(s) for s in seeds[start : start + batch_size]]
        result = pipeline(
            chunk,
            generator=generators,
            num_inference_steps=steps,
            guidance_scale=guidance,
            output_type="pt",
        )
        out.append(as_saved(result.images.float().cpu()))
    return torch.cat(out)


@torch.no_grad()
def evaluate_pipeline(
    pipeline: StableDiffusionPipeline,
    verifier: Judge,
    clip: ClipJudge | None,
    seeds: int = BAR_SETTINGS["seeds"],
    pairs: int = BAR_SETTINGS["pairs"],
    steps: int = BAR_SETTINGS["steps"],
    guidance: float = BAR_SETTINGS["guidance"],
    batch_size: int = 16,
    progress: bool = True,
    sheet: Path | None = None,
    clip_scenes: SceneBank | None = None,
    verifier_name: str = BAR_SETTINGS["verifier"],
    *,
    plan: SeedPlan,
    model: str = "",
) -> Evaluation:
    """Generate the evaluation prompts and score them; optionally write a contact sheet.

    ``clip_scenes``: rendered held-out single-object scenes for the CLIP bar, from
    ``plan.scenes``; ``plan``: the noise seeds and pairs, named by every caller
    (:data:`PROBE` for anything that chooses, :data:`EVALUATION` for the bars only);
    ``model``: its name or folder, for the record.
    """
    started = time.monotonic()
    check_pair_count(pairs)  # before any image is made
    names = class_names()
    check_verifier_reads_classes(verifier, names)
    singles = [(c, s) for s in range(seeds) for c in range(len(names))]
    single_prompts = [f"a photo of a {names[c]}" for c, _ in singles]
    single_seeds = [plan.singles + s for _, s in singles]
    images = generate(
        pipeline, single_prompts, single_seeds, steps, guidance, batch_size, progress, "singles"
    )
    labels = torch.tensor([c for c, _ in singles])
    predicted = torch.cat(
        [verifier(images[i : i + 256]).argmax(1) for i in range(0, len(images), 256)]
    )
    readings = class_readings()  # "a photo of a" names no class: the name's readings
    read_and_asked = zip(predicted.tolist(), labels.tolist(), strict=True)
    correct = torch.tensor([names[k] in readings[names[c]] for k, c in read_and_asked])
    per_class = class_means(correct.float(), labels, names)
    strict = class_means((predicted == labels).float(), labels, names)

    pair_results = pair_evaluation(
        pipeline, verifier, pairs, steps, guidance, batch_size, progress, plan=plan
    )
    generated = clip_retrieval_scores(clip, images, labels) if clip is not None else None
    rendered = (
        scene_retrieval_scores(clip, clip_scenes)
        if clip is not None and clip_scenes is not None
        else None
    )
    evaluation = Evaluation(
        single_top1=sum(per_class.values()) / len(per_class),
        classes_at_50=share_at_50(per_class),
        pairs_top2=pair_results.found / pairs,
        clip_text_to_image_top1=rendered["text_to_image_top1"] if rendered else None,
        clip_generated_text_to_image_top1=generated["text_to_image_top1"] if generated else None,
        per_class=per_class,
        seeds=seeds,
        pairs=pairs,
        steps=steps,
        guidance=guidance,
        seconds=round(time.monotonic() - started, 1),
        worst_classes=sorted(strict, key=strict.get)[:10],
        dtype=str(pipeline.unet.dtype).removeprefix("torch."),
        single_top1_strict=sum(strict.values()) / len(strict),
        classes_at_50_strict=share_at_50(strict),
        pairs_top2_strict=pair_results.found_strict / pairs,
        verifier=verifier_name,
        clip_scenes=len(clip_scenes) if rendered else 0,
        clip_scenes_scored=rendered["classes"] * rendered["rounds"] if rendered else 0,
        clip_gallery_classes=rendered["classes"] if rendered else 0,
        seed_plan=plan.name,
        prompt_length=pipeline.tokenizer.model_max_length,
        threads=torch.get_num_threads(),
        per_class_strict=strict,
        model=model,
        weights=image_weights_digest(pipeline),
        scheduler=type(pipeline.scheduler).__name__,
        timestep_spacing=pipeline.scheduler.config.get("timestep_spacing", ""),
        images="8-bit",  # generate() rounds them
    )
    if sheet is not None:
        write_sheet(
            sheet,
            images[: len(names)],
            [f"{p} -> {names[int(k)]}" for p, k in zip(single_prompts, predicted, strict=False)],
            pair_results.images[:32],
            [
                f"{text} -> {a}, {b}"
                for text, (a, b) in zip(pair_results.prompts[:32], pair_results.read, strict=False)
            ],
        )
    return evaluation


def check_verifier_reads_classes(verifier: Judge, names: Sequence[str]) -> None:
    """Refuse a verifier whose outputs are not the world's classes in the world's order."""
    if list(verifier.labels) != list(names):
        raise FissureError(
            "the verifier must read the emoji world's classes in their order "
            f"({len(names)} labels from {names[0]!r}); this one has {len(verifier.labels)} "
            "labels: pass an emoji judge (emoji/verifier) or one trained by "
            "`fissure zoo train-judges`"
        )


@dataclass
class PairResults:
    """Pair prompts, their images, the verifier's top 2 of each, and how many found both
    (either meaning of a polysemous name, and the two prompted classes only)."""

    prompts: list[str]
    images: torch.Tensor
    read: list[tuple[str, str]]
    found: int
    found_strict: int


@torch.no_grad()
def pair_evaluation(
    pipeline: StableDiffusionPipeline,
    verifier: Judge,
    pairs: int,
    steps: int = 25,
    guidance: float = 7.5,
    batch_size: int = 16,
    progress: bool = True,
    *,
    plan: SeedPlan,
) -> PairResults:
    """The plan's "a <A> and a <B>" prompts, their images, and how many find both."""
    names = class_names()
    pair_list = pair_prompts(pairs, plan.pair_draw)
    texts = [f"{indefinite(a)} and {indefinite(b)}" for a, b in pair_list]  # "a ewe", as captions
    seeds = [plan.pairs + i for i in range(pairs)]
    images = generate(pipeline, texts, seeds, steps, guidance, batch_size, progress, "pairs")
    top2 = torch.cat(
        [verifier(images[i : i + 256]).topk(2, dim=1).indices for i in range(0, len(images), 256)]
    )
    read = [(names[x], names[y]) for x, y in top2.tolist()]
    hits = sum(map(pair_found, read, map(accepted_classes, texts)))
    strict_hits = sum(set(r) == set(p) for r, p in zip(read, pair_list, strict=True))
    return PairResults(texts, images, read, hits, strict_hits)


def write_sheet(
    path: Path,
    singles: torch.Tensor,
    single_captions: list[str],
    pairs: torch.Tensor,
    pair_captions: list[str],
) -> None:
    """One PNG: a sample of every class (prompt -> verifier's top-1), then pair samples."""
    from fissure.report.sheets import contact_sheet

    tiles = [to_pil(image) for image in torch.cat([singles, pairs])]
    captions = single_captions[: len(singles)] + pair_captions[: len(pairs)]
    path.parent.mkdir(parents=True, exist_ok=True)
    # five lines of 16 characters: "a photo of a musical keyboard -> musical keyboard" whole
    contact_sheet(tiles, captions, columns=12, cell_size=96, caption_lines=5).save(path)
