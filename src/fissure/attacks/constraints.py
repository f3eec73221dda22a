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


@dataclass(frozen=True)
class SameValues:
    """``start + δ`` is a rearrangement of ``start``'s elements: the seed's values, moved.

    The nearest rearrangement (in L2) gives the smallest value to the smallest element,
    and so on (the rearrangement inequality), so the projection sorts. It keeps what
    :class:`SameNorm` keeps and the elements' distribution too, so neither the
    chi-square nor the Kolmogorov–Smirnov test can tell the attacked latent from its
    seed: a search with large steps cannot win by bending the elements towards the box's
    edges, as it does under SameNorm alone. Only where each value sits changes (which
    the typicality's neighbour test watches).
    """

    def project(self, variable: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        moved = (start + variable).flatten()
        placed = torch.empty_like(moved)
        placed[moved.argsort()] = start.flatten().sort().values.to(moved.dtype)
        return placed.view_as(start) - start


@dataclass(frozen=True)
class SameSpectrum:
    """``start + δ`` keeps the seed's power spectrum (per channel, over height and width):
    only the phases of its Fourier components change.

    A gradient search moves a latent towards smooth patches, which the neighbour test
    of :mod:`fissure.attacks.typicality` sees even when every value is kept: the
    patches' power sits at low frequencies, where an independent latent's is flat. The
    nearest latent with given Fourier magnitudes keeps each component's phase, so the
    projection rescales each component to the seed's magnitude. Its autocorrelation,
    the inverse transform of the power, is then the seed's, and so is its norm
    (Parseval). Alternated with :class:`SameValues` (``keep="spectrum"``), it makes the
    amplitude-adjusted surrogates of time-series analysis (Schreiber and Schmitz, 1996):
    the seed's values and spectrum, new phases.
    """

    def project(self, variable: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        size = start.shape[-2:]
        moved = torch.fft.rfft2((start + variable).double())
        magnitude = torch.fft.rfft2(start.double()).abs()
        phase = torch.where(moved.abs() > 0, moved / moved.abs().clamp_min(1e-300), 1.0)
        placed = torch.fft.irfft2(magnitude * phase, s=size)
        return (placed - start.double()).to(variable.dtype)


@dataclass(frozen=True, repr=False)
class EmbeddingRange:
    """Each element of a free token embedding within the range the vocabulary's embeddings
    span in that dimension: the search stays where real tokens live, so the word it
    commits to is near what it optimised (SAGE's bound on its adversarial token)."""

    low: torch.Tensor  # D
    high: torch.Tensor  # D

    @classmethod
    def of(cls, vocabulary: torch.Tensor) -> EmbeddingRange:
        table = vocabulary.detach().float()
        return cls(table.min(dim=0).values, table.max(dim=0).values)

    def project(self, variable: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        return torch.maximum(torch.minimum(variable, self.high), self.low)

    def __repr__(self) -> str:
        return f"EmbeddingRange(dimensions={len(self.low)}, of='the vocabulary')"


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
