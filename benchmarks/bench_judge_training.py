"""Measure a training step of every judge recipe in float32 and in its mixed precision.

    python benchmarks/bench_judge_training.py [--steps 12] [--threads 1]

Times forward, backward and AdamW on a recipe-sized batch (median of the steps
after two warm-up steps) with the recipe's network, in float32 and with bfloat16
autocast plus channels-last convolutions (what ``train_judge`` uses where the CPU
computes bfloat16 natively). Projects each recipe's training time and the wall
time of ``fissure zoo train-judges`` on two cores (two judges at once, one thread
each, longest first), and writes the "Judge training" section of BENCHMARKS.md.
The target: the whole command in under an hour on two cores.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from common import machine, median_step_seconds, publish

from fissure.judges.emoji import EmojiJudge
from fissure.models.loading import native_bfloat16
from fissure.world import class_names
from fissure.zoo.judge_training import RECIPES, JudgeRecipe, judge_loss, memory_layout

TARGET_SECONDS = 3600.0


def seconds_per_step(recipe: JudgeRecipe, mixed: bool, steps: int) -> float:
    torch.manual_seed(0)
    judge = EmojiJudge(
        class_names(), recipe.architecture, recipe.network_config, mean=recipe.mean, std=recipe.std
    ).train()
    judge.network.to(memory_format=memory_layout(torch.device("cpu"), mixed))
    optimizer = torch.optim.AdamW(judge.parameters(), lr=1e-3)
    images = torch.rand(recipe.batch_size, 3, 64, 64)
    targets = F.one_hot(torch.arange(recipe.batch_size) % len(class_names()), len(class_names()))

    def step() -> None:
        loss = judge_loss(recipe, judge, images, targets.float(), mixed)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return median_step_seconds(step, steps)


def two_core_wall(seconds: dict[str, float]) -> float:
    """Wall time of two workers taking the recipes longest first (as ``train_judges`` does)."""
    workers = [0.0, 0.0]
    for cost in sorted(seconds.values(), reverse=True):
        workers[workers.index(min(workers))] += cost
    return max(workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="Timed steps per recipe.")
    parser.add_argument("--threads", type=int, default=1, help="Torch threads (a worker's).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    mixed_available = native_bfloat16(torch.device("cpu"))
    rows, totals = [], {"float32": {}, "recipe": {}}
    for name, recipe in RECIPES.items():
        plain = seconds_per_step(recipe, False, args.steps)
        mixed = seconds_per_step(recipe, True, args.steps) if mixed_available else plain
        used = mixed if recipe.mixed_precision else plain
        totals["float32"][name] = plain * recipe.steps
        totals["recipe"][name] = used * recipe.steps
        rows.append(
            f"| {name} | {recipe.steps:,} | {plain:.3f} | {mixed:.3f} | {plain / mixed:.2f}× "
            f"| {'mixed' if recipe.mixed_precision else 'float32'}, "
            f"{used * recipe.steps / 60:.0f} min |"
        )
        print(rows[-1], flush=True)
    walls = {kind: two_core_wall(costs) for kind, costs in totals.items()}
    verdict = "meets" if walls["recipe"] < TARGET_SECONDS else "MISSES"
    text = "\n".join(
        [
            "## Judge training",
            "",
            f"`python benchmarks/bench_judge_training.py --threads {args.threads}` — one training "
            f"step (forward, backward, AdamW; median of {args.steps}) per recipe; machine: "
            f"{machine(threads=args.threads)}; bfloat16 native: {mixed_available}.",
            "",
            "| judge | steps | float32 s/step | bf16 + channels-last s/step | speed-up | recipe |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            f"Projected `fissure zoo train-judges` on two cores (two judges at once, longest "
            f"first), network steps only: {walls['float32'] / 60:.0f} min all in float32, "
            f"{walls['recipe'] / 60:.0f} min as the recipes train — {verdict} the one-hour target "
            "(augmentation and checkpoints add to it; the measured run is in the issue notes).",
        ]
    )
    publish("judge-training", text)


if __name__ == "__main__":
    main()
