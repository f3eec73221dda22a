"""The recipe that trains the bundled emoji judges: seeded, resumable, GPU when present.

``fissure zoo train-judges`` runs :func:`train_judges`. Each judge checkpoints to
its work folder every couple of minutes; a killed run resumes where it stopped,
and each step's batch and augmentation depend only on (seed, step), so a resumed
run sees the same data as an uninterrupted one.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from fissure.atomic import atomic_folder, write_json
from fissure.errors import FissureError
from fissure.judges.emoji import EmojiJudge
from fissure.judges.registry import EMOJI_JUDGES, JUDGES_DIR
from fissure.models.loading import native_bfloat16
from fissure.world import class_names
from fissure.zoo.augment import StyleAugment
from fissure.zoo.scene_bank import BankSpec, SceneBank
from fissure.zoo.training_loop import Schedule, step_generator, train

#: Scenes the surrogate members learn from, and a disjoint seed range for the verifier.
TRAIN_BANKS = {
    "surrogate": BankSpec(first_seed=0, count=40_000, object_counts=(1, 2, 2, 3, 3)),
    "verifier": BankSpec(first_seed=5_000_000, count=30_000, object_counts=(1, 2, 2, 3, 3)),
}


@dataclass(frozen=True)
class JudgeRecipe:
    """Everything that decides one judge's weights."""

    name: str
    architecture: str
    network_config: dict[str, Any]
    steps: int
    seed: int
    bank: str = "surrogate"
    set_weights: dict[str, float] = field(
        default_factory=lambda: {"noto": 0.5, "twemoji": 0.25, "openmoji": 0.25}
    )
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    augment: StyleAugment = StyleAugment()
    presence_weight: float = 0.1
    """Weight of per-class presence (sigmoid BCE) beside the softmax over the objects' shares:
    the softmax learns fast, the presence term keeps a second object above the distractors."""
    mixed_precision: bool = True
    """bfloat16 autocast (float32 weights, optimiser and loss) where the device computes
    bfloat16 natively, with channels-last convolutions on a CPU: 1.3-2.9× faster steps on
    the development CPU (``benchmarks/bench_judge_training.py``)."""


RECIPES: dict[str, JudgeRecipe] = {
    recipe.name: recipe
    for recipe in (
        JudgeRecipe(
            "resnet",
            "resnet",
            dict(
                embedding_size=32,
                hidden_sizes=[48, 96, 192],
                depths=[1, 1, 1],
                layer_type="basic",
                downsample_in_first_stage=False,
            ),
            steps=4000,
            seed=11,
            # In bfloat16 its pairs top-2 on Noto fell from 87.5% to 83.9% (bar 85%) at
            # equal steps; float32 costs it 4 minutes more.
            mixed_precision=False,
        ),
        JudgeRecipe(
            "vit",
            "vit",
            dict(
                image_size=64,
                patch_size=8,
                hidden_size=128,
                num_hidden_layers=4,
                num_attention_heads=4,
                intermediate_size=256,
                conv_stem=[32, 64, 128],
            ),
            steps=6000,
            seed=12,
            warmup_steps=200,
        ),
        JudgeRecipe(
            "regnet",
            "regnet",
            dict(
                embedding_size=32,
                hidden_sizes=[64, 128, 256],
                depths=[1, 2, 2],
                groups_width=16,
                layer_type="y",
            ),
            steps=4000,
            seed=13,
        ),
        JudgeRecipe(
            "edge",
            "edge",
            dict(channels=[32, 96, 160]),
            steps=6000,
            seed=14,
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
        ),
        JudgeRecipe(
            "verifier",
            "convnet",
            dict(channels=[32, 96, 192]),
            steps=4000,
            seed=15,
            bank="verifier",
            set_weights={"noto": 0.4, "twemoji": 0.3, "openmoji": 0.3},
            augment=StyleAugment(blur=0.5, max_blur_sigma=2.0, noise=0.4),
        ),
    )
}
assert set(RECIPES) == set(EMOJI_JUDGES)

#: Seconds per step, one thread each, two at once on the development CPU (the judge.json
#: train_seconds of ``fissure zoo train-judges``): orders the recipes longest first.
COST_PER_STEP = {"resnet": 0.18, "vit": 0.48, "regnet": 0.24, "edge": 0.15, "verifier": 0.16}


def memory_layout(device: torch.device, bfloat16: bool) -> torch.memory_format:
    """Channels-last where bfloat16 convolutions run on a CPU (oneDNN's fast path)."""
    return torch.channels_last if bfloat16 and device.type == "cpu" else torch.preserve_format


def judge_loss(
    recipe: JudgeRecipe,
    judge: EmojiJudge,
    images: torch.Tensor,
    targets: torch.Tensor,
    bfloat16: bool,
) -> torch.Tensor:
    """One batch's loss: cross-entropy on the objects' shares plus per-class presence."""
    device = judge.mean.device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16):
        logits = judge.logits(images.to(device, memory_format=memory_layout(device, bfloat16)))
    logits, targets = logits.float(), targets.to(device)
    shares = -(targets / targets.sum(1, keepdim=True) * F.log_softmax(logits, dim=-1)).sum(1).mean()
    presence = F.binary_cross_entropy_with_logits(logits, (targets > 0).float()) * logits.shape[1]
    return shares + recipe.presence_weight * presence


def _batch(
    recipe: JudgeRecipe, bank: SceneBank, weights: torch.Tensor, step: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The augmented images and multi-hot targets of one step: a function of (seed, step)."""
    generator = step_generator(recipe.seed, step)
    indices = torch.multinomial(weights, recipe.batch_size, replacement=True, generator=generator)
    return recipe.augment(bank.images[indices].float() / 255, generator), bank.targets[indices]


def _claim_folder(folder: Path, recipe: JudgeRecipe) -> None:
    """Record ``recipe`` in ``folder``, or refuse a folder another recipe trains in."""
    path = folder / "recipe.json"
    wanted = json.loads(json.dumps(asdict(recipe)))
    if path.is_file():
        recorded = json.loads(path.read_text())
        changed = sorted(k for k in wanted if k != "steps" and recorded.get(k) != wanted[k])
        if changed:
            raise FissureError(
                f"{folder} trains judge {recipe.name} with another recipe ({', '.join(changed)}): "
                "delete that folder to start again, or use another --out"
            )
    folder.mkdir(parents=True, exist_ok=True)
    write_json(path, wanted)


def train_judge(
    recipe: JudgeRecipe,
    bank: SceneBank,
    work_dir: Path,
    device: torch.device,
    progress: bool = True,
    checkpoint_seconds: float = 120.0,
    position: int | None = None,
) -> EmojiJudge:
    """Train (or resume, or just load) one judge; returns it in eval mode.

    More ``steps`` than a finished judge had continue its training; any other
    change of recipe needs a fresh folder.
    """
    folder = work_dir / recipe.name
    final = folder / "final"
    _claim_folder(folder, recipe)
    if (final / "judge.json").is_file():
        judge = EmojiJudge.from_pretrained(final)
        trained_steps = judge.metadata["recipe"]["steps"]
        if trained_steps == recipe.steps:
            return judge
        if trained_steps > recipe.steps:
            raise FissureError(
                f"judge {recipe.name} in {folder} is trained for {trained_steps} steps, more "
                f"than the {recipe.steps} asked for: ask for at least {trained_steps}, or use "
                "a new folder"
            )
    torch.manual_seed(recipe.seed)
    judge = EmojiJudge(
        class_names(), recipe.architecture, recipe.network_config, mean=recipe.mean, std=recipe.std
    ).to(device)
    optimizer = torch.optim.AdamW(
        judge.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay
    )
    weights = torch.tensor([recipe.set_weights.get(s, 0.0) for s in bank.emoji_sets])
    bfloat16 = recipe.mixed_precision and native_bfloat16(device)
    judge.network.to(memory_format=memory_layout(device, bfloat16))

    def step_loss(step: int) -> torch.Tensor:
        return judge_loss(recipe, judge, *_batch(recipe, bank, weights, step), bfloat16)

    schedule = Schedule(recipe.learning_rate, recipe.steps, recipe.warmup_steps)
    _, seconds = train(
        {"network": judge.network},
        optimizer,
        step_loss,
        schedule,
        folder,
        f"judge {recipe.name}",
        progress,
        checkpoint_seconds,
        position=position,
    )
    judge.eval()
    judge.metadata = {
        "recipe": {key: value for key, value in asdict(recipe).items() if key != "augment"},
        "augment": asdict(recipe.augment),
        "bank": asdict(bank.spec) if bank.spec else None,
        "train_seconds": round(seconds, 1),
        "device": str(device),
        "bfloat16": bfloat16,
        "torch": torch.__version__,
        "command": "fissure zoo train-judges",
    }
    judge.save_pretrained(final)
    return judge


def _train_in_worker(
    recipe: JudgeRecipe, spec: BankSpec, work_dir: Path, threads: int, progress: bool, position: int
) -> Path:
    """One judge in a worker process with ``threads`` torch threads; returns its final folder."""
    torch.set_num_threads(threads)
    bank = SceneBank.cached(spec, work_dir / "banks", progress=False)
    train_judge(recipe, bank, work_dir, torch.device("cpu"), progress, position=position)
    return work_dir / recipe.name / "final"


def train_judges(
    work_dir: str | Path,
    names: list[str] | None = None,
    device: torch.device | None = None,
    install: bool = True,
    progress: bool = True,
    jobs: int = 1,
    recipes: dict[str, JudgeRecipe] = RECIPES,
    bank_specs: dict[str, BankSpec] = TRAIN_BANKS,
) -> dict[str, EmojiJudge]:
    """Train the named judges (default: all), then copy their weights into the package.

    With ``jobs`` > 1 on a CPU, that many judges train at once in worker processes
    that share the cores, the longest recipes first so that the last to finish is
    a short one. Each judge's weights are the same either way.
    """
    work_dir = Path(work_dir)
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    names = list(dict.fromkeys(names or recipes))  # a name given twice trains once
    specs = {name: bank_specs[recipes[name].bank] for name in names}
    if jobs > 1 and device.type == "cpu":
        for spec in set(specs.values()):  # rendered once, here, before the workers read them
            SceneBank.cached(spec, work_dir / "banks", progress)
        threads = max(1, torch.get_num_threads() // jobs)
        longest_first = sorted(names, key=lambda n: -recipes[n].steps * COST_PER_STEP.get(n, 1.0))
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [
                pool.submit(
                    _train_in_worker, recipes[name], specs[name], work_dir, threads, progress, line
                )
                for line, name in enumerate(longest_first)
            ]
            for future in as_completed(futures):  # a worker's error shows at once
                future.result()
        judges = {name: EmojiJudge.from_pretrained(work_dir / name / "final") for name in names}
    else:
        judges = {
            name: train_judge(
                recipes[name],
                SceneBank.cached(specs[name], work_dir / "banks", progress),
                work_dir,
                device,
                progress,
            )
            for name in names
        }
    if install:
        for name in names:  # a kill mid-copy leaves the judge installed before
            with atomic_folder(JUDGES_DIR / name) as staging:
                shutil.copytree(work_dir / name / "final", staging, dirs_exist_ok=True)
    (work_dir / "recipes.json").write_text(
        json.dumps({n: asdict(recipes[n]) for n in recipes}, indent=2, default=str)
    )
    return judges
