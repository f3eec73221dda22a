"""Small statistics the tool reports with its figures: intervals for rates and rank
correlations with their p-values (exact where the sample is small, as in a sweep)."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence

from fissure.errors import FissureError

EXACT_UP_TO = 8
"""Rank tests enumerate every permutation up to this many points (8! = 40,320)."""


def wilson_interval(hits: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a rate (95% by default); (0, 1) when nothing was counted."""
    if total == 0:
        return 0.0, 1.0
    rate = hits / total
    centre = (rate + z * z / (2 * total)) / (1 + z * z / total)
    half = z / (1 + z * z / total) * math.sqrt(rate * (1 - rate) / total + z * z / (4 * total**2))
    return max(0.0, centre - half), min(1.0, centre + half)


def ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    result = [0.0] * len(values)
    start = 0
    while start < len(order):
        stop = start
        while stop + 1 < len(order) and values[order[stop + 1]] == values[order[start]]:
            stop += 1
        for i in order[start : stop + 1]:
            result[i] = (start + stop) / 2 + 1
        start = stop + 1
    return result


def _pearson(x: Sequence[float], y: Sequence[float]) -> float:
    mean_x, mean_y = sum(x) / len(x), sum(y) / len(y)
    cov = sum((a - mean_x) * (b - mean_y) for a, b in zip(x, y, strict=True))
    spread = math.sqrt(sum((a - mean_x) ** 2 for a in x) * sum((b - mean_y) ** 2 for b in y))
    return cov / spread if spread else 0.0


def spearman(
    x: Sequence[float], y: Sequence[float], permutations: int = 100_000, seed: int = 0
) -> tuple[float, float]:
    """Spearman's ρ and its two-sided p-value under independence: exact (every permutation
    of ``y``'s ranks) up to :data:`EXACT_UP_TO` points, else ``permutations`` seeded draws."""
    if len(x) != len(y):
        raise FissureError(f"spearman needs paired values: got {len(x)} and {len(y)}")
    if len(x) < 3:
        raise FissureError(f"spearman needs at least 3 points, not {len(x)}")
    rank_x, rank_y = ranks(x), ranks(y)
    rho = _pearson(rank_x, rank_y)
    if len(x) <= EXACT_UP_TO:
        shuffles = itertools.permutations(rank_y)
        count = math.factorial(len(x))
    else:
        draws = random.Random(seed)
        shuffles = (draws.sample(rank_y, len(rank_y)) for _ in range(permutations))
        count = permutations
    extreme = sum(abs(_pearson(rank_x, shuffled)) >= abs(rho) - 1e-12 for shuffled in shuffles)
    return rho, extreme / count
