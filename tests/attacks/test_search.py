"""Search methods on a tiny pipeline with a judge whose target the latent can remove."""

from __future__ import annotations

import math

import pytest
import torch

from fissure.attacks import Attempt, random_latent, sage_latent
from fissure.attacks.recipes import check_options, sage_latent_budget
from fissure.errors import FissureError
from fissure.models.generator import evaluation_cost

from .conftest import STEPS, BlurredBrightnessJudge, BrightnessJudge


def _attempts(seeds) -> list[Attempt]:
    return [Attempt("a photo of light", "light", 0, seed) for seed in seeds]


@pytest.mark.parametrize("rule", ["sign", "l2", "adam"])
def test_sage_latent_removes_the_target_within_the_box(generator, surrogate, rule):
    attack = sage_latent(
        generator, surrogate, steps=STEPS, gradient="residual", k=1, step=0.1,
        max_iterations=30, batch_size=2, step_rule=rule,
    )  # fmt: skip
    states = {state.attempt.seed: state for state in attack.run(_attempts(range(3)))}
    cost = evaluation_cost("residual", 1, STEPS)
    assert set(states) == {0, 1, 2}
    for state in states.values():
        assert state.target_trace[0] >= 0.1  # the clean image shows the target
        assert state.achieved, state.target_trace
        assert state.target_trace[-1] < 0.1
        assert 0 < state.iterations <= 30
        assert state.variable.abs().max() <= 1.0 + 1e-6
        assert state.unet_evals == pytest.approx(
            (state.iterations + 1) * STEPS + state.iterations * cost.backward
        )


@pytest.mark.parametrize("blurred", [False, True], ids=["brightness", "convolution"])
def test_an_attempt_does_not_depend_on_its_batch_partners(
    generator, surrogate, blurred, one_thread
):
    judge = BlurredBrightnessJudge(surrogate.threshold) if blurred else surrogate
    attack = sage_latent(
        generator, judge, steps=STEPS, k=1, max_iterations=4, batch_size=3, views=False
    )
    alone = next(iter(attack.run(_attempts([1]))))
    together = {s.attempt.seed: s for s in attack.run(_attempts([0, 1, 2]))}[1]
    assert torch.equal(alone.variable, together.variable)
    assert torch.equal(alone.images, together.images)
    assert torch.equal(alone.probabilities, together.probabilities)
    assert alone.target_trace == together.target_trace
    assert alone.iterations == together.iterations


def test_sage_latent_that_never_succeeds_stops_at_max_iterations(generator):
    always_light = BrightnessJudge(threshold=-10.0)  # the goal never holds
    options = dict(gradient="residual", k=2, max_iterations=2)
    attack = sage_latent(generator, always_light, steps=STEPS, batch_size=2, **options)
    for state in attack.run(_attempts([0, 1])):
        assert (state.iterations, state.achieved, len(state.target_trace)) == (2, False, 3)
        # docs/sage-latent.md: STEPS forward and the backward pass on the k-step path per
        # iteration, then one last rendering; the most sage_latent_budget allows
        spent = 2 * evaluation_cost("residual", 2, STEPS).total + STEPS
        assert state.unet_evals == pytest.approx(spent)
        assert sage_latent_budget(STEPS, **options) == math.ceil(spent)


def test_every_round_is_reported_with_the_attempts_in_flight(generator):
    """Progress shows per round: an attempt of 100 iterations takes 101 of them."""
    always_light = BrightnessJudge(threshold=-10.0)
    attack = sage_latent(generator, always_light, steps=STEPS, k=1, max_iterations=2, batch_size=2)
    rounds: list[tuple[int, list[int]]] = []
    finished = list(
        attack.run(
            _attempts([0, 1, 2]),
            on_round=lambda active: rounds.append(
                (len(active), [state.iterations for state in active])
            ),
        )
    )
    assert len(finished) == 3
    assert rounds == [(2, [1, 1]), (2, [2, 2]), (2, [2, 2]), (1, [1]), (1, [2]), (1, [2])]


def test_random_search_stays_within_its_budget(generator, surrogate):
    always_light = BrightnessJudge(threshold=-10.0)  # the goal never holds
    attack = random_latent(generator, always_light, budget=4 * STEPS + 1, steps=STEPS, batch_size=2)
    for state in attack.run(_attempts([0, 1])):
        assert not state.achieved
        assert state.unet_evals == 4 * STEPS
        assert state.iterations == 3  # candidates 0..3: the seed's own latent, then three fresh


def test_random_search_starts_from_the_seeds_own_latent(generator, surrogate):
    attack = random_latent(generator, surrogate, budget=10 * STEPS, steps=STEPS, batch_size=2)
    state = next(iter(attack.run(_attempts([0]))))
    clean = generator.sample(generator.initial_latents([0]), "a photo of light", steps=STEPS)
    assert torch.allclose(state.images_before, clean.images[0], atol=1e-5)


def test_exact_gradient_also_removes_the_target(generator, surrogate):
    attack = sage_latent(
        generator, surrogate, steps=STEPS, gradient="exact", step=0.1, max_iterations=30
    )
    state = next(iter(attack.run(_attempts([0]))))
    assert state.achieved and state.iterations > 0
    assert state.unet_evals == pytest.approx(
        (state.iterations + 1) * STEPS
        + state.iterations * evaluation_cost("exact", 1, STEPS).backward
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"gradient": "last-k"}, "gives the initial latent no gradient"),
        ({"gradient": "residual", "k": 4}, "k must be between 1 and the 3 steps"),
        ({"radius": 0}, r"radius \(--radius\) must be a positive number"),
    ],
)
def test_options_that_cannot_work_are_refused_before_any_compute(
    generator, surrogate, options, message
):
    with pytest.raises(FissureError, match=message):
        sage_latent(generator, surrogate, steps=STEPS, **options)


def test_options_are_checked_without_a_model_the_recipe_defaults_filling_in():
    check_options("sage-latent", {"max_iterations": 50})  # the demo's: the rest default
    check_options("random-latent", {})
    for name, options, message in [
        ("sage-latent", {"step": 0}, r"step \(--step\) must be a positive number"),
        ("sage-latent", {"step": float("inf")}, "step .* not inf"),  # δ became NaN
        ("sage-latent", {"radius": float("nan")}, "radius .* not nan"),
        ("sage-latent", {"steps": 0}, r"steps \(--steps\) must be at least 1"),  # blamed --k
        ("random-latent", {"steps": 0}, r"steps \(--steps\) must be at least 1"),
        ("sage-latent", {"bogus": 1}, "sage-latent has no option bogus"),
        ("random-latent", {"budget": 3, "steps": 25}, "give at least 50"),
    ]:
        with pytest.raises(FissureError, match=message):
            check_options(name, options)


def test_a_random_budget_that_buys_no_fresh_latent_is_refused(generator, surrogate):
    """It ran 0 random tries without a word: the budget paid only for the clean image."""
    with pytest.raises(FissureError, match=f"give at least {2 * STEPS}"):
        random_latent(generator, surrogate, budget=2 * STEPS - 1, steps=STEPS)


def test_a_random_search_finding_names_the_seed_that_redraws_it(generator):
    never = BrightnessJudge(threshold=-10.0)
    attack = random_latent(generator, never, budget=3 * STEPS, steps=STEPS, batch_size=2)
    (state,) = attack.run(_attempts([5]))
    assert state.iterations == 2 and state.latent_seed not in (None, 5)
    drawn = generator.initial_latents([state.latent_seed])
    rendered = attack.space.latent(attack.space.bind(state.attempt), state.variable)
    assert torch.equal(rendered.to(drawn.dtype), drawn[0])  # z + δ was 1e-7 off before
    redrawn = generator.sample(drawn, "a photo of light", steps=STEPS)
    assert torch.allclose(state.images, redrawn.images[0], atol=1e-5)  # batch 2 vs batch 1


def test_constrained_random_search_draws_inside_sage_latents_set(generator):
    never = BrightnessJudge(threshold=-10.0)
    attack = random_latent(generator, never, budget=4 * STEPS, steps=STEPS, radius=0.5, keep="norm")
    (state,) = attack.run(_attempts([2]))
    start = attack.space.bind(state.attempt).latent[0]
    assert state.iterations == 3 and state.variable.abs().max() <= 0.5 + 1e-6
    assert torch.allclose((start + state.variable).norm().float(), start.norm(), rtol=1e-4)
    assert state.variable.abs().max() > 0.4  # a random point of the set, not the seed's


def test_constrained_random_search_keeps_the_seeds_values_by_default(generator):
    """Fresh latents are float64 differences: SameValues once failed on them (dtype)."""
    never = BrightnessJudge(threshold=-10.0)
    attack = random_latent(generator, never, budget=4 * STEPS, steps=STEPS, radius=1.0)
    (state,) = attack.run(_attempts([2]))
    start = attack.space.bind(state.attempt).latent[0]
    moved = (start + state.variable).flatten().sort().values.float()
    assert state.iterations == 3
    assert (moved - start.flatten().sort().values).abs().median() < 0.01
    assert state.variable.abs().max() > 0.4


def test_the_papers_settings_are_one_flag_away(generator, surrogate):
    paper = sage_latent(generator, surrogate, steps=STEPS, paper=True).settings()
    assert (paper["gradient"], paper["k"], paper["step_rule"], paper["step"]) == (
        "residual", 2, "sign", 0.05,
    )  # fmt: skip
    assert paper["max_iterations"] == 100
    overridden = sage_latent(generator, surrogate, steps=STEPS, paper=True, k=1).settings()
    assert overridden["k"] == 1 and overridden["gradient"] == "residual"
