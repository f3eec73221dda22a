"""Step rules: each move's size, Adam's memory and clipping."""

from __future__ import annotations

import torch

from fissure.attacks.steps import AdamStep, NormalisedStep, SignStep, rule_named


def _gradient(seed: int, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_sign_and_normalised_moves_are_as_long_as_a_sign_step():
    gradient = _gradient(0, scale=1e-4)
    assert torch.equal(SignStep().move(gradient, {}), gradient.sign())
    move = NormalisedStep().move(gradient, {})
    assert torch.allclose(move.square().mean(), torch.tensor(1.0))
    assert torch.allclose(move / move.norm(), gradient / gradient.norm())


def test_adams_first_move_is_the_sign_and_its_memory_is_the_attempts_own():
    rule, memory, other = AdamStep(), {}, {}
    first = rule.move(_gradient(1, scale=1e-6), memory)  # tiny gradients: ε does not swamp them
    assert torch.allclose(first, _gradient(1).sign(), atol=1e-4)
    rule.move(_gradient(2), memory)
    assert int(memory["count"]) == 2
    assert torch.allclose(rule.move(_gradient(3), other), _gradient(3).sign(), atol=1e-4)


def test_adam_clips_a_later_spike_to_the_first_gradients_scale():
    rule, memory = AdamStep(clip=1.0), {}
    rule.move(_gradient(4), memory)
    spike = rule.move(_gradient(5, scale=1e6), memory)
    calm = AdamStep(clip=1.0)
    calm_memory: dict = {}
    calm.move(_gradient(4), calm_memory)
    rms = lambda tensor: tensor.square().mean().sqrt()  # noqa: E731
    clipped = _gradient(5) * (rms(_gradient(4)) / rms(_gradient(5)))  # at the first's scale
    assert torch.allclose(spike, calm.move(clipped, calm_memory), atol=1e-5)
    assert spike.abs().max() < 5  # bounded: the moments were not swamped


def test_rules_are_found_by_name():
    assert isinstance(rule_named("adam"), AdamStep)
    assert rule_named("l2").settings() == {"step_rule": "l2"}
