"""The recipe that trains the bundled emoji judges: seeded, resumable, GPU when present.

``fissure zoo train-judges`` runs :func:`train_judges`. Each judge checkpoints to
its work folder every couple of minutes; a killed run resumes where it stopped,
and each step's batch and augmentation depend only on (seed, step), so a resumed
run sees the same data as an uninterrupted one.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from fissure.judges.emoji import EmojiJudge
from fissure.judges.registry import EMOJI_JUDGES, JUDGES_DIR
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


def _batch(
    recipe: JudgeRecipe, bank: SceneBank, weights: torch.Tensor, step: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The augmented images and multi-hot targets of one step: a function of (seed, step)."""
    generator = step_generator(recipe.seed, step)
    indices = torch.multinomial(weights, recipe.batch_size, replacement=True, generator=generator)
    return recipe.augment(bank.images[indices].float() / 255, generator), bank.targets[indices]


def train_judge(
    recipe: JudgeRecipe,
    bank: SceneBank,
    work_dir: Path,
    device: torch.device,
    progress: bool = True,
    checkpoint_seconds: float = 120.0,
) -> EmojiJudge:
    """Train (or resume, or just load) one judge; returns it in eval mode."""
    folder = work_dir / recipe.name
    final = folder / "final"
    if (final / "judge.json").is_file():
        return EmojiJudge.from_pretrained(final)
    torch.manual_seed(recipe.seed)
    judge = EmojiJudge(
        class_names(), recipe.architecture, recipe.network_config, mean=recipe.mean, std=recipe.std
    ).to(device)
    optimizer = torch.optim.AdamW(
        judge.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay
    )
    weights = torch.tensor([recipe.set_weights.get(s, 0.0) for s in bank.emoji_sets])

    def step_loss(step: int) -> torch.Tensor:
        images, targets = _batch(recipe, bank, weights, step)
        logits, targets = judge.logits(images.to(device)), targets.to(device)
        shares = (
            -(targets / targets.sum(1, keepdim=True) * F.log_softmax(logits, dim=-1)).sum(1).mean()
        )
        presence = (
            F.binary_cross_entropy_with_logits(logits, (targets > 0).float()) * logits.shape[1]
        )
        return shares + recipe.presence_weight * presence

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
    )
    judge.eval()
    judge.metadata = {
        "recipe": {key: value for key, value in asdict(recipe).items() if key != "augment"},
        "augment": asdict(recipe.augment),
        "bank": asdict(TRAIN_BANKS[recipe.bank]),
        "train_seconds": round(seconds, 1),
        "device": str(device),
        "torch": torch.__version__,
        "command": "fissure zoo train-judges",
    }
    judge.save_pretrained(final)
    return judge


def train_judges(
    work_dir: str | Path,
    names: list[str] | None = None,
    device: torch.device | None = None,
    install: bool = True,
    progress: bool = True,
) -> dict[str, EmojiJudge]:
    """Train the named judges (default: all), then copy their weights into the package."""
    work_dir = Path(work_dir)
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    judges = {}
    for name in names or list(RECIPES):
        recipe = RECIPES[name]
        bank = SceneBank.cached(TRAIN_BANKS[recipe.bank], work_dir / "banks", progress)
        judges[name] = train_judge(recipe, bank, work_dir, device, progress)
        if install:
            target = JUDGES_DIR / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(work_dir / name / "final", target)
    (work_dir / "recipes.json").write_text(
        json.dumps({n: asdict(RECIPES[n]) for n in RECIPES}, indent=2, default=str)
    )
    return judges
