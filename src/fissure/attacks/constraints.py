"""Constraints: the set an attack's search variable must stay in, enforced by projection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch


class Constraint(Protocol):
    def project(self, variable: torch.Tensor) -> torch.Tensor:
        """The nearest allowed value."""
        ...


@dataclass(frozen=True)
class Box:
    """Every element within ``±radius`` (an L∞ ball around the start): SAGE's latent bound."""

    radius: float = 1.0

    def project(self, variable: torch.Tensor) -> torch.Tensor:
        return variable.clamp(-self.radius, self.radius)
