"""Step rules: how a gradient search turns a gradient into a move of its variable.

SAGE takes fixed sign steps; DOODL, DNO (arXiv 2405.18881) and ReNO optimise initial
noise with normalised or adaptive steps and clip the gradient. Each rule here gives the
move ``m`` for ``δ ← project(δ − step · m)``, scaled so that a first step of every rule
moves δ about as far as a sign step of the same size (each coordinate by ``step`` on
average), so one ``step`` compares across rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch

StepName = Literal["sign", "l2", "adam"]


class StepRule(Protocol):
    def move(self, gradient: torch.Tensor, memory: dict[str, torch.Tensor]) -> torch.Tensor:
        """The direction to subtract, per coordinate about 1 in size; ``memory`` is the
        attempt's own (an adaptive rule's moments live there between iterations)."""
        ...

    def settings(self) -> dict[str, object]: ...


@dataclass(frozen=True)
class SignStep:
    """SAGE's rule: the gradient's sign, every coordinate moved by exactly ``step``."""

    def move(self, gradient: torch.Tensor, memory: dict[str, torch.Tensor]) -> torch.Tensor:
        return gradient.sign()

    def settings(self) -> dict[str, object]:
        return dict(step_rule="sign")


def _rms(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.square().mean().sqrt().clamp_min(1e-30)


@dataclass(frozen=True)
class NormalisedStep:
    """Normalised gradient descent: the gradient's direction, at the length of a sign step
    (its root-mean-square coordinate is 1), so large and small gradients move alike."""

    def move(self, gradient: torch.Tensor, memory: dict[str, torch.Tensor]) -> torch.Tensor:
        return gradient / _rms(gradient)

    def settings(self) -> dict[str, object]:
        return dict(step_rule="l2")


@dataclass(frozen=True)
class AdamStep:
    """Adam (β₁, β₂ as usual) on the gradient clipped to ``clip`` × its first iteration's
    root-mean-square: the first gradient sets the scale, a later spike cannot take over the
    moments. The first move is about the gradient's sign."""

    beta1: float = 0.9
    beta2: float = 0.999
    clip: float = 1.0
    eps: float = 1e-8

    def move(self, gradient: torch.Tensor, memory: dict[str, torch.Tensor]) -> torch.Tensor:
        if not memory:
            memory.update(
                scale=_rms(gradient),
                first=torch.zeros_like(gradient),
                second=torch.zeros_like(gradient),
                count=torch.zeros(()),
            )
        gradient = gradient / memory["scale"]  # clip and ε work in the first gradient's units
        gradient = gradient * (self.clip / _rms(gradient)).clamp(max=1.0)
        memory["count"] += 1
        memory["first"].mul_(self.beta1).add_(gradient, alpha=1 - self.beta1)
        memory["second"].mul_(self.beta2).addcmul_(gradient, gradient, value=1 - self.beta2)
        first = memory["first"] / (1 - self.beta1 ** memory["count"])
        second = memory["second"] / (1 - self.beta2 ** memory["count"])
        return first / (second.sqrt() + self.eps)

    def settings(self) -> dict[str, object]:
        return dict(step_rule="adam", beta1=self.beta1, beta2=self.beta2, clip=self.clip)


STEP_RULES: dict[str, type] = {"sign": SignStep, "l2": NormalisedStep, "adam": AdamStep}


def rule_named(name: str) -> StepRule:
    """The step rule called ``name`` (sign, l2 or adam), with its defaults."""
    return STEP_RULES[name]()
