"""Constraints project δ back into the allowed set."""

from __future__ import annotations

import pytest
import torch

from fissure.attacks import Attempt, sage_latent
from fissure.attacks.constraints import Box, SameNorm, SameSpectrum, SameValues, project_all
from fissure.attacks.typicality import typicality

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


def test_same_values_rearranges_the_seeds_elements_nearest_first():
    start = torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(0))
    delta = 0.5 * torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(1))
    projected = SameValues().project(delta, start)
    moved = start + projected
    assert torch.allclose(moved.flatten().sort().values, start.flatten().sort().values, atol=1e-6)
    in_order = moved.flatten()[(start + delta).flatten().argsort()]  # ranks kept
    assert bool((in_order.diff() >= -1e-6).all())
    assert torch.allclose(SameValues().project(projected, start), projected, atol=1e-6)
    # nearer to start + δ than another rearrangement, the seed itself
    assert (moved - start - delta).norm() < delta.norm()
    before, after = typicality(start), typicality(moved)
    assert (after.chi_square_p, after.ks_p) == pytest.approx((before.chi_square_p, before.ks_p))


def test_same_spectrum_keeps_the_fourier_magnitudes_and_is_a_projection():
    start = torch.randn(4, 16, 16, generator=torch.Generator().manual_seed(0))
    delta = torch.randn(4, 16, 16, generator=torch.Generator().manual_seed(1))
    projected = SameSpectrum().project(delta, start)
    magnitude = torch.fft.rfft2(start.double()).abs()
    assert torch.allclose(torch.fft.rfft2((start + projected).double()).abs(), magnitude, atol=1e-4)
    assert torch.allclose(SameSpectrum().project(projected, start), projected, atol=1e-5)
    assert torch.allclose((start + projected).norm(), start.norm(), rtol=1e-5)  # Parseval


def test_spectrum_and_values_keep_a_smooth_push_typical():
    """A smooth δ (what a gradient search adds) fails the neighbour test under SameValues
    alone; with the spectrum kept as well the latent passes all three tests."""
    from fissure.attacks.recipes import latent_constraints

    start = torch.randn(4, 16, 16, generator=torch.Generator().manual_seed(2))
    ramp = torch.linspace(-1, 1, 16)
    smooth = (ramp[:, None] + ramp[None, :]).expand(4, 16, 16)
    values = project_all(latent_constraints("values", 1.0), smooth, start)
    spectrum = project_all(latent_constraints("spectrum", 1.0), smooth, start)
    assert not typicality(start + values).typical
    assert typicality(start + spectrum).typical and spectrum.abs().max() <= 1.0
    assert (spectrum - smooth).norm() < smooth.norm()  # it still moves towards δ


def test_sage_latent_keeps_the_norm_and_the_box(generator, surrogate):
    attack = sage_latent(
        generator, surrogate, steps=STEPS, k=1, step=0.1, max_iterations=30, batch_size=2
    )
    for state in attack.run([Attempt("a photo of light", "light", 0, seed) for seed in (0, 1)]):
        assert state.achieved, state.target_trace
        start = state.start.latent[0]
        assert abs(float((start + state.variable).norm() / start.norm()) - 1) < 0.02
        assert state.variable.abs().max() <= 1.0 + 1e-6


def test_the_norm_and_the_box_hold_together_even_against_the_latent():
    """One pass (norm, then box) let the norm drift 3% when steps oppose z."""
    start = torch.randn(4, 16, 16, generator=torch.Generator().manual_seed(0))
    constraints = (SameNorm(), Box(1.0))
    delta = torch.zeros_like(start)
    for _ in range(100):
        delta = project_all(constraints, delta - 0.05 * start.sign(), start)
    assert delta.abs().max() <= 1.0
    assert abs(float((start + delta).norm() / start.norm()) - 1) < 1e-3
    one_pass = Box(1.0).project(SameNorm().project(delta - 0.05 * start.sign(), start), start)
    assert abs(float((start + one_pass).norm() / start.norm()) - 1) > 1e-3


def test_random_search_draws_inside_the_constraints(generator):
    """RandomSearch read no constraint: a Box(0.1) attack drew δ of about 4."""
    from fissure.attacks import Attack
    from fissure.attacks.goals import TargetAbsent
    from fissure.attacks.search import RandomSearch
    from fissure.attacks.spaces import LatentPerturbation

    from .conftest import BrightnessJudge

    never = BrightnessJudge(threshold=-10.0)
    attack = Attack(
        "random-in-a-box",
        LatentPerturbation(generator, STEPS, 7.5, "none", 1, 2),
        TargetAbsent(never, 0.1, False),
        (Box(0.1),),
        RandomSearch(3 * STEPS),
    )
    (state,) = attack.run([Attempt("a photo of light", "light", 0, 0)])
    assert state.iterations == 2 and 0 < state.variable.abs().max() <= 0.1
