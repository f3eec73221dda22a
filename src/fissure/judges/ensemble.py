"""An ensemble of judges: SAGE's surrogate is several architectures voting together."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fissure.errors import FissureError
from fissure.judges.base import Judge


class Ensemble(Judge):
    """Averages the probabilities of its members; exposes each member for SAGE's loss."""

    def __init__(self, members: Sequence[Judge], names: Sequence[str] | None = None) -> None:
        if not members:
            raise FissureError("an ensemble needs at least one member")
        labels = members[0].labels
        if any(member.labels != labels for member in members):
            raise FissureError("ensemble members must share one label list")
        super().__init__(labels, members[0].input_size)
        self.members = nn.ModuleList(members)
        self.names = (
            list(names) if names is not None else [f"member{i}" for i in range(len(members))]
        )

    def member_probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """``M×B×C``: each member's probabilities."""
        return torch.stack([member(images) for member in self.members])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.member_probabilities(images).mean(dim=0)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Log of the mean probability, so softmax of it gives the ensemble's vote."""
        return self(images).clamp_min(1e-12).log()
