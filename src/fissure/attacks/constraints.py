"""Constraints: the set an attack's search variable must stay in, enforced by projection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch


class Constraint(Protocol):
    def project(self, variable: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        """The nearest allowed value of ``variable``, a perturbation δ of ``start``."""
        ...


@dataclass(frozen=True)
class Box:
    """Every element within ``±radius`` (an L∞ ball around the start): SAGE's latent bound."""

    radius: float = 1.0

    def project(self, variable: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        return variable.clamp(-self.radius, self.radius)


@dataclass(frozen=True)
class SameNorm:
    """``start + δ`` keeps the norm of ``start``: the latent stays on its seed's Gaussian shell.

    A N(0, I) latent lies, with overwhelming probability, near the sphere of
    radius √d; a sign step adds ±step to every element, and the loss's gradient
    on a diffusion sampler tends to align with the latent itself (more contrast),
    so an unconstrained δ drifts the squared norm out of the χ² band within a few
    steps. Keeping the norm changes only the direction, which is what makes the
    perturbed latent as typical as the seed's (SAGE's "not an outlier" claim).
    """

    def project(self, variable: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        moved = start + variable
        return moved * (start.norm() / moved.norm().clamp_min(1e-12)) - start


def project_all(
    constraints: Sequence[Constraint],
    variable: torch.Tensor,
    start: torch.Tensor,
    rounds: int = 50,
    tolerance: float = 1e-6,
) -> torch.Tensor:
    """A value that meets every constraint, by projecting onto each in turn until none moves it.

    One pass is not enough when the sets meet at an angle: the box's clamp moves
    ``start + δ`` off the norm :class:`SameNorm` set, by up to 3% on 4×16×16 latents.
    Alternating projections converge to a point of the intersection; the last
    constraint is projected last, so it always holds exactly.
    """
    for _ in range(rounds if len(constraints) > 1 else 1):
        before = variable
        for constraint in constraints:
            variable = constraint.project(variable, start)
        if (variable - before).abs().max() <= tolerance:
            break
    return variable
