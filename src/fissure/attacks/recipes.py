"""Papers' attacks as compositions of parts, found by name."""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping

from fissure.attacks.attack import Attack
from fissure.attacks.constraints import Box, SameNorm
from fissure.attacks.goals import TargetAbsent
from fissure.attacks.search import RandomSearch, SignGradientDescent
from fissure.attacks.spaces import BACKWARD_EVALS_PER_STEP, LatentPerturbation
from fissure.errors import FissureError
from fissure.judges.base import Judge
from fissure.models.generator import (
    Generator,
    GradientMode,
    check_guidance,
    scheduler_with_steps,
)


def sage_latent(
    generator: Generator,
    surrogate: Judge,
    *,
    radius: float = 1.0,
    step: float = 0.05,
    max_iterations: int = 100,
    gradient: GradientMode = "residual",
    k: int = 2,
    steps: int = 25,
    guidance: float = 7.5,
    absent_below: float = 0.1,
    batch_size: int = 8,
    keep_norm: bool = True,
    views: bool = True,
) -> Attack:
    """SAGE's latent attack (Liu et al., arXiv 2306.00974): sign-gradient steps on δ in a box.

    With ``keep_norm`` (default) ``z + δ`` is also kept at the norm of the seed's
    ``z`` (:class:`SameNorm`), so the failure it finds starts from a latent as
    typical as the seed's; the box is projected last and always holds. With
    ``views`` (default) the surrogate must miss the target on flipped, shifted and
    zoomed views too, which doubled the verified failures on emoji-sd
    (docs/sage-latent.md).

    The default gradient is the residual shortcut from the last ``k`` = 2 steps, for 6
    backward UNet evaluations per iteration instead of 75 (exact, 25 steps). Its
    cosine with the exact gradient is 0.94–0.98 on the tiny test models but a median
    of 0.14 on the trained emoji-sd (benchmarks/bench_residual_gradient.py): a cheap,
    weak descent direction (docs/sage-latent.md).
    """
    scheduler_with_steps(generator.scheduler, steps)
    check_sage_latent(
        radius=radius, step=step, max_iterations=max_iterations, gradient=gradient, k=k,
        absent_below=absent_below, batch_size=batch_size, steps=steps, guidance=guidance,
    )  # fmt: skip
    return Attack(
        name="sage-latent",
        space=LatentPerturbation(generator, steps, guidance, gradient, k, batch_size),
        goal=TargetAbsent(surrogate, absent_below, views),
        constraints=(SameNorm(), Box(radius)) if keep_norm else (Box(radius),),
        search=SignGradientDescent(step, max_iterations),
    )


def random_latent(
    generator: Generator,
    surrogate: Judge,
    *,
    budget: int | None = None,
    steps: int = 25,
    guidance: float = 7.5,
    absent_below: float = 0.1,
    batch_size: int = 8,
    views: bool = True,
) -> Attack:
    """The baseline: fresh initial latents within a UNet-evaluation budget.

    The default budget is what :func:`sage_latent`'s defaults spend at most on
    ``steps``: 100 iterations of ``steps`` forward and 6 backward evaluations,
    and the final rendering (3125 at 25 steps).
    """
    scheduler_with_steps(generator.scheduler, steps)
    check_random_latent(
        budget=budget, absent_below=absent_below, batch_size=batch_size, steps=steps,
        guidance=guidance,
    )  # fmt: skip
    budget = budget if budget is not None else sage_latent_budget(steps)
    return Attack(
        name="random-latent",
        space=LatentPerturbation(generator, steps, guidance, "none", 1, batch_size),
        goal=TargetAbsent(surrogate, absent_below, views),
        constraints=(),
        search=RandomSearch(budget),
    )


def sage_latent_budget(steps: int, max_iterations: int = 100, k: int = 2) -> int:
    """The most UNet evaluations :func:`sage_latent` (residual) spends on one attempt."""
    return max_iterations * (steps + BACKWARD_EVALS_PER_STEP * k) + steps


def check_sage_latent(
    *,
    radius: float,
    step: float,
    max_iterations: int,
    gradient: str,
    k: int,
    absent_below: float,
    batch_size: int,
    steps: int,
    guidance: float,
    **_: object,
) -> None:
    """:func:`sage_latent`'s checks that need no model: a CLI runs them before it loads one."""
    _check_common(absent_below, batch_size, guidance, steps)
    _require(0 < radius < math.inf, f"radius (--radius) must be a positive number, not {radius}")
    _require(0 < step < math.inf, f"step (--step) must be a positive number, not {step}")
    _require(  # 0 scores the clean images only: natural failures, and the verifiers' reading
        max_iterations >= 0,
        f"max_iterations (--max-iterations) must be 0 or more, not {max_iterations}",
    )
    check_latent_gradient(gradient, k, steps)


def check_random_latent(
    *,
    budget: int | None,
    absent_below: float,
    batch_size: int,
    steps: int,
    guidance: float,
    **_: object,
) -> None:
    """:func:`random_latent`'s checks that need no model."""
    _check_common(absent_below, batch_size, guidance, steps)
    budget = budget if budget is not None else sage_latent_budget(steps)
    _require(
        budget >= 2 * steps,
        f"a budget of {budget} UNet evaluations pays for no image beyond the clean one of "
        f"{steps} steps: give at least {2 * steps}",
    )


def check_latent_gradient(gradient: str, k: int, steps: int) -> None:
    """Refuse a gradient mode that gives the initial latent no gradient, or a k it cannot use."""
    why = " (it gives the initial latent no gradient)" if gradient == "last-k" else ""
    _require(
        gradient in ("residual", "exact", "first-k", "exact-stored"),
        f"gradient {gradient!r} cannot attack a latent{why}: use residual (the last k steps, "
        "then SAGE's shortcut to the latent), first-k (the first k steps, then the sampler's "
        "linear term), exact or exact-stored",
    )
    _require(
        gradient.startswith("exact") or 1 <= k <= steps,
        f"k must be between 1 and the {steps} steps, not {k} (--k)",
    )


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise FissureError(message)


def _check_common(absent_below: float, batch_size: int, guidance: float, steps: int) -> None:
    check_guidance(guidance)
    _require(steps >= 1, f"steps (--steps) must be at least 1, not {steps}")
    _require(
        0 < absent_below < 1,
        f"absent_below (--absent-below) must be between 0 and 1, not {absent_below}",
    )
    _require(batch_size >= 1, f"batch_size (--batch-size) must be at least 1, not {batch_size}")


ATTACKS: dict[str, Callable[..., Attack]] = {
    "sage-latent": sage_latent,
    "random-latent": random_latent,
}
#: Each attack's checks of its options that need no model, by name.
OPTION_CHECKS: dict[str, Callable[..., None]] = {
    "sage-latent": check_sage_latent,
    "random-latent": check_random_latent,
}


def check_options(name: str, options: Mapping[str, object]) -> None:
    """Refuse bad options of the attack ``name`` before any model loads; the recipe's
    defaults stand in for options not given."""
    parameters = inspect.signature(ATTACKS[name]).parameters.values()
    defaults = {p.name: p.default for p in parameters if p.kind is p.KEYWORD_ONLY}
    unknown = sorted(set(options) - set(defaults))
    _require(
        not unknown, f"{name} has no option {', '.join(unknown)}: it takes {', '.join(defaults)}"
    )
    hints = typing.get_type_hints(ATTACKS[name])
    for option, value in options.items():
        if not _is_a(value, hints[option]):
            raise FissureError(
                f"{name}'s option {option} must be {_type_name(hints[option])}, not {value!r}"
            )
    OPTION_CHECKS[name](**{**defaults, **options})


def _is_a(value: object, hint: object) -> bool:
    """Whether a campaign file's value fits an option's type (an int passes for a float)."""
    origin = typing.get_origin(hint)
    if origin is typing.Literal:  # its values: the recipe's own check says which it takes
        return all(isinstance(value, type(choice)) for choice in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return any(_is_a(value, member) for member in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _type_name(hint: object) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return "a string"
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(member) for member in typing.get_args(hint))
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            type(None): "absent"}.get(hint, str(hint))  # fmt: skip
