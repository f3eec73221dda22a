"""The typicality tests against closed forms and samples with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from fissure.attacks.typicality import (
    chi_square_norm_p,
    kolmogorov_survival,
    ks_normal_p,
    neighbour_p,
    typicality,
)


def test_chi_square_p_matches_the_closed_form_for_two_dimensions():
    # χ²(2) has survival exp(-x/2); the two-sided p is twice the smaller tail.
    latent = torch.tensor([1.0, 2.0])  # ‖z‖² = 5
    squared_norm, p = chi_square_norm_p(latent)
    upper = math.exp(-2.5)
    assert squared_norm == pytest.approx(5.0)
    assert p == pytest.approx(2 * min(upper, 1 - upper), rel=1e-9)


@pytest.mark.parametrize(("x", "expected"), [(1.36, 0.0494), (1.63, 0.0098), (0.5, 0.9639)])
def test_kolmogorov_survival_matches_tabulated_values(x, expected):
    assert kolmogorov_survival(x) == pytest.approx(expected, abs=5e-4)


def test_standard_normal_latents_are_typical_at_the_nominal_rate():
    generator = torch.Generator().manual_seed(0)
    verdicts = [typicality(torch.randn(4, 16, 16, generator=generator)).typical for _ in range(200)]
    # Three tests at 1% each: about 3% of true draws are rejected; allow up to 6%.
    assert sum(not v for v in verdicts) <= 12


def test_a_scaled_latent_fails_the_norm_test():
    latent = 1.15 * torch.randn(4, 16, 16, generator=torch.Generator().manual_seed(1))
    result = typicality(latent)
    assert result.chi_square_p < 1e-6
    assert not result.typical


def test_a_unit_variance_uniform_latent_passes_the_norm_but_fails_ks():
    generator = torch.Generator().manual_seed(2)
    latent = (torch.rand(4, 32, 32, generator=generator) * 2 - 1) * math.sqrt(3)
    result = typicality(latent)
    assert result.chi_square_p > 0.01
    assert result.ks_p < 1e-4
    assert not result.typical


def test_ks_statistic_of_a_perfect_grid_is_small():
    n = 2000
    grid = torch.special.ndtri((torch.arange(n, dtype=torch.float64) + 0.5) / n)
    statistic, p = ks_normal_p(grid)
    assert statistic == pytest.approx(0.5 / n, rel=1e-3)
    assert p == pytest.approx(1.0)


def test_a_rearranged_latent_passes_norm_and_ks_but_fails_the_neighbour_test():
    """Sorting each row keeps every value (χ² and KS cannot tell) but makes neighbours alike."""
    latent = torch.randn(4, 16, 16, generator=torch.Generator().manual_seed(3))
    smooth = latent.sort(dim=-1).values
    result, seed = typicality(smooth), typicality(latent)
    assert (result.chi_square_p, result.ks_p) == pytest.approx((seed.chi_square_p, seed.ks_p))
    assert seed.neighbour_p > 0.01 and result.neighbour_p < 1e-6
    assert not result.typical


def test_the_neighbour_statistic_is_standard_normal_for_independent_components():
    generator = torch.Generator().manual_seed(4)
    statistics = torch.tensor(
        [neighbour_p(torch.randn(4, 16, 16, generator=generator))[0] for _ in range(400)]
    )
    assert abs(float(statistics.mean())) < 0.15 and abs(float(statistics.std()) - 1) < 0.1
