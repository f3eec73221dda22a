"""Measure the emoji judges on scenes from seeds never used in training.

The bars: each judge ≥ 95% top-1 on single objects in the generator's emoji
set (noto) and ≥ 85% in the others; both objects of two-object scenes found in
the top 2 ≥ 85%; the edge classifier, which sees no colour, ≥ 80% throughout.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fissure.judges.base import Judge
from fissure.world import EMOJI_SETS
from fissure.zoo.scene_bank import BankSpec, SceneBank

#: Evaluation seeds start far above every training range.
EVALUATION_SEED = 1_000_000_000
TRAINING_SET = "noto"


def evaluation_banks(
    count: int, cache_dir: str | Path, progress: bool = True
) -> dict[str, SceneBank]:
    """Single-object scenes per emoji set, and two-object scenes in each set."""
    banks = {}
    for index, emoji_set in enumerate(EMOJI_SETS):
        for n_objects in (1, 2):
            spec = BankSpec(
                first_seed=EVALUATION_SEED + (2 * index + n_objects) * 100_000,
                count=count,
                object_counts=(n_objects,),
                emoji_sets=(emoji_set,),
            )
            bank = SceneBank.cached(spec, cache_dir, progress)
            banks[f"{'single' if n_objects == 1 else 'pairs'}/{emoji_set}"] = bank.where(
                n_objects=n_objects
            )
    return banks


@torch.no_grad()
def judge_accuracy(judge: Judge, bank: SceneBank, batch_size: int = 256) -> float:
    """Share of scenes whose k objects are exactly the judge's top k classes."""
    k = int(bank.object_counts[0])
    hits = 0
    for start in range(0, len(bank), batch_size):
        images = bank.images[start : start + batch_size].float() / 255
        top = judge(images).topk(k, dim=-1).indices
        predicted = torch.zeros_like(bank.targets[start : start + batch_size]).scatter_(1, top, 1)
        hits += int((predicted == bank.targets[start : start + batch_size]).all(1).sum())
    return hits / len(bank)


def judge_report(
    judges: dict[str, Judge], banks: dict[str, SceneBank]
) -> dict[str, dict[str, float]]:
    """Accuracy of every judge on every bank: ``{judge: {bank: accuracy}}``."""
    return {
        name: {bank_name: judge_accuracy(judge, bank) for bank_name, bank in banks.items()}
        for name, judge in judges.items()
    }


def bars(judge_name: str) -> dict[str, float]:
    """The issue's floor for each score of a judge; the edge classifier's is 80% throughout."""
    relaxed = judge_name == "edge"
    floors = {f"single/{emoji_set}": 0.85 for emoji_set in EMOJI_SETS}
    floors[f"single/{TRAINING_SET}"] = 0.95
    floors[f"pairs/{TRAINING_SET}"] = 0.85
    return {key: 0.80 if relaxed else floor for key, floor in floors.items()}
