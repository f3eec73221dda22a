"""Goal functions: what an attack minimises, and when it has succeeded."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fissure.judges.base import Judge
from fissure.judges.ensemble import Ensemble
from fissure.judges.losses import sage_loss


def member_probabilities(judge: Judge, images: torch.Tensor) -> torch.Tensor:
    """``M×B×C``: each ensemble member's probabilities, or one judge's as M = 1."""
    if isinstance(judge, Ensemble):
        return judge.member_probabilities(images)
    return judge(images).unsqueeze(0)


@dataclass
class GoalEvaluation:
    """One batch scored by a goal: per-image loss (with gradient), probabilities, success."""

    loss: torch.Tensor  # B
    probabilities: torch.Tensor  # B×C, the judge's vote (mean over members), detached
    achieved: torch.Tensor  # B, bool


@dataclass
class TargetAbsent:
    """SAGE's goal: the target class is gone, as the surrogate judge sees it.

    The loss is SAGE's ``-Σ_m (1 - 2·p_m[target])`` over the surrogate's members.
    Success is every member's probability of the target below ``absent_below``
    (0.1 by default; the verifiers use the same threshold): an image that only
    the members' mean calls target-free sits on the ensemble's boundary, where
    held-out judges disagree most often.
    """

    surrogate: Judge
    absent_below: float = 0.1

    def evaluate(self, images: torch.Tensor, targets: torch.Tensor) -> GoalEvaluation:
        members = member_probabilities(self.surrogate, images)
        index = targets.view(1, -1, 1).expand(members.shape[0], -1, 1)
        member_targets = members.detach().gather(2, index).squeeze(2)  # M×B
        return GoalEvaluation(
            loss=sage_loss(members, targets),
            probabilities=members.mean(dim=0).detach(),
            achieved=(member_targets < self.absent_below).all(dim=0),
        )
