"""Is a latent a plausible draw from N(0, I)? SAGE claims its adversarial latents are.

Three tests, all against the sampler's own distribution, standard normal:

- the **chi-square test** of the squared norm: ``‖z‖² ~ χ²(d)`` for ``z ~ N(0, I_d)``;
  a perturbation that inflates or shrinks the latent shows here (two-sided p-value);
- the **Kolmogorov–Smirnov test** of the d components as a sample of N(0, 1): a
  perturbation that keeps the norm but bends the shape of the distribution (for
  example pushes components to the edge of a box) shows here;
- the **neighbour test**: independent components are uncorrelated with their
  neighbours (along the last two axes, the latent's height and width). A perturbation
  that keeps every value but moves them into smooth patches (a rearrangement, which
  the first two tests cannot see) shows here (two-sided p-value of the normalised
  sum of neighbour products, which is about N(0, 1) for independent components).

A latent is *typical* when no test rejects at level ``alpha``. The p-values
use torch only (regularised incomplete gamma; Kolmogorov's series), so no SciPy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Typicality:
    """Both tests' statistics and p-values, and the verdict at ``alpha``."""

    squared_norm: float
    dimensions: int
    chi_square_p: float
    ks_statistic: float
    ks_p: float
    neighbour_z: float
    neighbour_p: float
    alpha: float

    @property
    def typical(self) -> bool:
        return min(self.chi_square_p, self.ks_p, self.neighbour_p) >= self.alpha


def chi_square_norm_p(latent: torch.Tensor) -> tuple[float, float]:
    """``‖z‖²`` and its two-sided p-value under ``χ²(d)``, d = number of elements."""
    values = latent.detach().double().flatten()
    squared_norm = values.square().sum()
    half_dof = torch.tensor(values.numel() / 2, dtype=torch.float64)
    lower = torch.special.gammainc(half_dof, squared_norm / 2)
    upper = torch.special.gammaincc(half_dof, squared_norm / 2)
    return float(squared_norm), float(torch.clamp(2 * torch.minimum(lower, upper), max=1.0))


def kolmogorov_survival(x: float, terms: int = 100) -> float:
    """``P(K > x)`` for Kolmogorov's distribution: ``2 Σ (-1)^(k-1) exp(-2 k² x²)``."""
    if x < 0.2:  # the series converges slowly there, and the value is 1 to 1e-10
        return 1.0
    total = sum((-1) ** (k - 1) * math.exp(-2 * k * k * x * x) for k in range(1, terms + 1))
    return min(1.0, max(0.0, 2 * total))


def ks_normal_p(latent: torch.Tensor) -> tuple[float, float]:
    """The KS statistic of the elements against N(0, 1), and its p-value.

    The p-value uses Stephens' (1970) small-sample correction of the asymptotic
    distribution, accurate to a few percent for n ≥ 5.
    """
    values = latent.detach().double().flatten().sort().values
    n = values.numel()
    cdf = 0.5 * (1 + torch.special.erf(values / math.sqrt(2)))
    ranks = torch.arange(1, n + 1, dtype=torch.float64, device=values.device)
    statistic = float(torch.maximum(ranks / n - cdf, cdf - (ranks - 1) / n).max())
    root = math.sqrt(n)
    return statistic, kolmogorov_survival((root + 0.12 + 0.11 / root) * statistic)


def neighbour_p(latent: torch.Tensor) -> tuple[float, float]:
    """The normalised sum of neighbour products and its two-sided p-value.

    For independent zero-mean components, ``S = Σ x_a x_b`` over the m neighbouring
    pairs has mean 0 and variance ``m · E[x²]²`` (products of distinct pairs are
    uncorrelated), so ``S / (√m · mean(x²))`` is about N(0, 1). Neighbours are along
    the last axis and, for latents of two or more axes, the second to last.
    """
    values = latent.detach().double()
    products = [(values[..., 1:] * values[..., :-1]).flatten()]
    if values.dim() >= 2:
        products.append((values[..., 1:, :] * values[..., :-1, :]).flatten())
    pairs = torch.cat(products)
    statistic = float(pairs.sum() / (math.sqrt(pairs.numel()) * values.square().mean()))
    return statistic, math.erfc(abs(statistic) / math.sqrt(2))


def typicality(latent: torch.Tensor, alpha: float = 0.01) -> Typicality:
    """Test one latent (any shape; all its elements are one sample)."""
    squared_norm, chi_square_p = chi_square_norm_p(latent)
    ks_statistic, ks_p = ks_normal_p(latent)
    neighbour_z, neighbour_p_value = neighbour_p(latent)
    return Typicality(
        squared_norm, latent.numel(), chi_square_p, ks_statistic, ks_p,
        neighbour_z, neighbour_p_value, alpha,
    )  # fmt: skip
