"""Goal functions: what an attack minimises, and when it has succeeded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from fissure.attacks.naming import names_of
from fissure.attacks.views import VIEWS, image_views
from fissure.judges.base import Judge
from fissure.judges.losses import sage_loss, target_column
from fissure.judges.pretrained import ClipJudge


@dataclass
class GoalEvaluation:
    """One batch scored by a goal: per-image loss (with gradient), probabilities, success."""

    loss: torch.Tensor  # B
    probabilities: torch.Tensor  # B×C, the judge's vote (mean over members), detached
    achieved: torch.Tensor  # B, bool


def _member_votes(surrogate: Judge, images: torch.Tensor, views: bool) -> torch.Tensor:
    """Each surrogate member's probabilities (M×V×B×C) on each view of each image."""
    seen = image_views(images) if views else images.unsqueeze(0)  # V×B×3×H×W
    count, batch = seen.shape[:2]
    members = surrogate.member_probabilities(seen.flatten(0, 1))
    return members.unflatten(1, (count, batch))


@dataclass
class TargetAbsent:
    """SAGE's goal: the target class is gone, as the surrogate judge sees it.

    The loss is SAGE's ``-Σ_m (1 - 2·p_m[target])`` over the surrogate's members.
    Success is every member's probability of the target below ``absent_below``
    (0.1 by default; the verifiers use the same threshold), with another class
    first (among many flat classes 9% can still lead): an image that only
    the members' mean calls target-free sits on the ensemble's boundary, where
    held-out judges disagree most often.
    """

    surrogate: Judge
    absent_below: float = 0.1
    views: bool = False
    """Score :func:`~fissure.attacks.views.image_views` too: the loss is their mean, and
    success needs every member below ``absent_below`` on every view."""

    def settings(self) -> dict[str, object]:
        return dict(absent_below=self.absent_below, views=VIEWS if self.views else False)

    def evaluate(self, images: torch.Tensor, targets: torch.Tensor) -> GoalEvaluation:
        members = _member_votes(self.surrogate, images, self.views)
        votes = members.detach()
        absent = (target_column(votes, targets) < self.absent_below) & (
            votes.argmax(dim=-1) != targets
        )  # M×V×B
        return GoalEvaluation(
            loss=sage_loss(members, targets).mean(dim=0),  # SAGE's loss per view, averaged
            probabilities=members[:, 0].mean(dim=0).detach(),
            achieved=absent.flatten(0, 1).all(dim=0),
        )


@dataclass
class TargetPresent:
    """A targeted goal (SAGE's universal token): the target class takes the image over.

    Success is every member reading the target first (on every view with ``views``). The
    loss is ``loss="log"``: the members' summed negative log-probability of the target (its
    gradient does not vanish where the target is unlikely, as a universal token starts), or
    ``"sage"``: SAGE's with the sign turned, ``-Σ_m (2·p_m[target] - 1)``, flat there.
    """

    surrogate: Judge
    views: bool = False
    loss: Literal["log", "sage"] = "log"

    def evaluate(self, images: torch.Tensor, targets: torch.Tensor) -> GoalEvaluation:
        members = _member_votes(self.surrogate, images, self.views)
        first = members.detach().argmax(dim=-1) == targets  # M×V×B
        if self.loss == "log":
            chance = target_column(members, targets)  # only an exact 0 is clamped: -inf
            surprise = -chance.clamp_min(torch.finfo(chance.dtype).tiny).log().sum(dim=0)
        else:
            surprise = -sage_loss(members, targets)
        return GoalEvaluation(
            loss=surprise.mean(dim=0),
            probabilities=members[:, 0].mean(dim=0).detach(),
            achieved=first.flatten(0, 1).all(dim=0),
        )


def atm_success(top_class: str, target: str, prompt: str) -> bool:
    """ATM's success, exactly as its released code counts one: the classifier's top-1 is not
    the class, and the class's name is still in the prompt (as a substring; any of the
    class's names). Attacks, docs and reports all count by this one function."""
    return top_class != target and any(name in prompt for name in names_of(target))


@dataclass
class ClassifierMargin:
    """ATM's goal: the classifier's top-1 is not the target class.

    The loss is the Carlini–Wagner margin ``max(s[target] − max_{j≠target} s[j] + κ, 0)``
    (``loss="cw"``, κ = ``kappa``) or the negative cross-entropy (``"ce"``), over scores
    ``s``: ``100 × cosine`` for CLIP zero-shot (as ATM scales CLIP), logits otherwise.
    """

    surrogate: Judge  # the classifier in the loss (the name every attack's runner reads)
    kappa: float = 30.0
    loss: Literal["cw", "ce"] = "cw"
    absent_below: float = 0.1
    """Not the goal's: the verifiers' threshold for "the class is gone", as for every attack."""

    def settings(self) -> dict[str, object]:
        return dict(loss=self.loss, kappa=self.kappa if self.loss == "cw" else None)

    def scores(self, images: torch.Tensor) -> torch.Tensor:
        if isinstance(self.surrogate, ClipJudge):
            return 100.0 * self.surrogate.similarities(images)
        return self.surrogate.logits(images)

    def evaluate(self, images: torch.Tensor, targets: torch.Tensor) -> GoalEvaluation:
        scores = self.scores(images)
        if self.loss == "cw":
            own = scores.gather(1, targets[:, None])[:, 0]
            others = scores.scatter(1, targets[:, None], float("-inf")).max(dim=1).values
            loss = (own - others + self.kappa).clamp_min(0)
        else:
            loss = -torch.nn.functional.cross_entropy(scores, targets, reduction="none")
        return GoalEvaluation(
            loss=loss,
            probabilities=torch.softmax(scores.detach(), dim=-1),
            achieved=scores.detach().argmax(dim=-1) != targets,
        )
