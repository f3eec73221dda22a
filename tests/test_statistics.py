"""Intervals and rank correlations against hand values and their definitions."""

from __future__ import annotations

import itertools
import math

import pytest

from fissure.errors import FissureError
from fissure.statistics import ranks, spearman, wilson_interval


def test_wilson_interval_matches_a_hand_computation():
    low, high = wilson_interval(8, 10)
    # Wilson (1927): centre (p + z²/2n)/(1 + z²/n), half-width z/(1 + z²/n)·√(p(1−p)/n + z²/4n²)
    z = 1.96
    centre = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z / (1 + z * z / 10) * math.sqrt(0.8 * 0.2 / 10 + z * z / 400)
    assert (low, high) == pytest.approx((centre - half, centre + half))
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0


def test_ties_share_their_mean_rank():
    assert ranks([10, 20, 20, 5]) == [2.0, 3.5, 3.5, 1.0]


def test_a_perfect_trend_has_the_smallest_exact_p_value():
    rho, p = spearman([0, 1, 2, 4, 8], [0.1, 0.2, 0.25, 0.3, 0.9])
    assert rho == pytest.approx(1.0)
    assert p == pytest.approx(2 / math.factorial(5))  # the order and its reverse
    rho, _ = spearman([0, 1, 2, 4], [4, 3, 2, 1])
    assert rho == pytest.approx(-1.0)


def test_the_exact_p_value_counts_permutations_at_least_as_extreme():
    x, y = [1, 2, 3, 4, 5, 6], [2, 1, 4, 3, 6, 5]
    rho, p = spearman(x, y)
    assert rho == pytest.approx(1 - 6 * 6 / (6 * 35))  # 1 − 6Σd²/(n(n²−1)), Σd² = 6
    as_extreme = sum(
        abs(1 - 6 * sum((a - b) ** 2 for a, b in zip(x, perm, strict=True)) / 210) >= rho - 1e-12
        for perm in itertools.permutations(y)
    )
    assert p == pytest.approx(as_extreme / math.factorial(6))


def test_large_samples_are_drawn_and_reproducible():
    x = list(range(12))
    y = [v + (3 if v % 2 else -3) for v in x]
    first = spearman(x, y, permutations=2000)
    assert first == spearman(x, y, permutations=2000)
    assert first[1] < 0.05


def test_spearman_refuses_what_it_cannot_rank():
    with pytest.raises(FissureError, match="paired"):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(FissureError, match="at least 3"):
        spearman([1, 2], [1, 2])
