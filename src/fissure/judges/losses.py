"""Judge-based losses that attacks minimise."""

from __future__ import annotations

import torch


def _target_index(scores: torch.Tensor, target: torch.Tensor | int) -> torch.Tensor:
    """The target class of each image, broadcast to ``scores.shape[:-1]``."""
    per_image = torch.as_tensor(target, device=scores.device).expand(scores.shape[-2])
    return per_image.expand(*scores.shape[:-1])


def target_column(scores: torch.Tensor, target: torch.Tensor | int) -> torch.Tensor:
    """Each image's score for its target: ``scores`` ``…×B×C`` to ``…×B``."""
    return scores.gather(-1, _target_index(scores, target).unsqueeze(-1)).squeeze(-1)


def sage_loss(member_probabilities: torch.Tensor, target: torch.Tensor | int) -> torch.Tensor:
    """SAGE's robust surrogate, ``-Σ_m (1 - 2·p_m[target])``, one value per image.

    ``member_probabilities`` is ``M×B×C`` (see :meth:`Ensemble.member_probabilities`),
    or ``M×…×B×C`` with the extra dimensions kept in the result.
    Minimising it drives every member's belief in the target below one half, so
    a failure must fool all architectures at once rather than one.
    """
    return -(1 - 2 * target_column(member_probabilities, target)).sum(dim=0)


def margin_loss(
    scores: torch.Tensor, target: torch.Tensor | int, margin: float = 0.0
) -> torch.Tensor:
    """ATM's margin loss: ``max(s[target] - max_{j≠target} s[j], -margin)`` per image.

    ``scores`` is ``B×C`` (CLIP similarities or logits). It reaches its floor once
    another class beats the target by ``margin``, and stops pushing there.
    """
    target_scores = target_column(scores, target)
    mask = torch.zeros_like(scores, dtype=torch.bool)
    mask.scatter_(-1, _target_index(scores, target).unsqueeze(-1), True)
    best_other = scores.masked_fill(mask, float("-inf")).amax(dim=-1)
    return torch.clamp(target_scores - best_other, min=-margin)
