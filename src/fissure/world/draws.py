"""Seeded random draws that stay the same across Python versions.

Python promises a stable stream only for ``Random.random()`` (not for ``choice``
or ``randint``), so every draw here is built on it: a scene made from a seed
today is the same scene on every later Python.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


class Draws:
    """Uniform, integer, choice and coin draws from one named, seeded stream."""

    def __init__(self, seed: int, stream: str) -> None:
        # String seeds are hashed with SHA-512, so streams of one seed are independent.
        self._random = random.Random(f"fissure.world/{stream}/{seed}").random

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self._random()

    def integer(self, low: int, high: int) -> int:
        """An integer in ``[low, high]``, both ends included."""
        return low + min(int(self._random() * (high - low + 1)), high - low)

    def choice(self, options: Sequence[T]) -> T:
        return options[self.integer(0, len(options) - 1)]

    def chance(self, probability: float) -> bool:
        return self._random() < probability

    def weighted(self, options: Sequence[T], weights: Sequence[float]) -> T:
        target = self._random() * sum(weights)
        for option, weight in zip(options, weights, strict=True):
            target -= weight
            if target < 0:
                return option
        return options[-1]
