"""Constraints project δ back into the allowed set."""

from __future__ import annotations

import torch

from fissure.attacks import Attempt, sage_latent
from fissure.attacks.constraints import Box, SameNorm

from .conftest import STEPS


def test_box_clamps_each_element():
    delta = torch.tensor([-3.0, -0.5, 0.2, 2.0])
    expected = torch.tensor([-1.0, -0.5, 0.2, 1.0])
    assert torch.equal(Box(1.0).project(delta, torch.zeros(4)), expected)


def test_same_norm_keeps_the_latents_norm_and_only_turns_it():
    start = torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(0))
    delta = 0.3 * torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(1))
    projected = SameNorm().project(delta, start)
    assert torch.allclose((start + projected).norm(), start.norm())
    direction = torch.nn.functional.cosine_similarity
    assert torch.allclose(
        direction((start + projected).flatten(), (start + delta).flatten(), dim=0), torch.ones(())
    )


def test_sage_latent_keeps_the_norm_and_the_box(generator, surrogate):
    attack = sage_latent(
        generator, surrogate, steps=STEPS, k=1, step=0.1, max_iterations=30, batch_size=2
    )
    for state in attack.run([Attempt("a photo of light", "light", 0, seed) for seed in (0, 1)]):
        assert state.achieved, state.target_trace
        start = state.start.latent[0]
        assert abs(float((start + state.variable).norm() / start.norm()) - 1) < 0.02
        assert state.variable.abs().max() <= 1.0 + 1e-6
