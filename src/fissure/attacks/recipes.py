"""Papers' attacks as compositions of parts, found by name."""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Literal

from fissure.attacks.attack import Attack
from fissure.attacks.constraints import Box, Constraint, SameNorm, SameSpectrum, SameValues
from fissure.attacks.goals import TargetAbsent
from fissure.attacks.search import GradientDescent, RandomSearch
from fissure.attacks.spaces import LatentPerturbation
from fissure.attacks.steps import STEP_RULES, StepName, rule_named
from fissure.errors import FissureError
from fissure.judges.base import Judge
from fissure.models.generator import (
    Generator,
    GradientMode,
    check_guidance,
    evaluation_cost,
    scheduler_with_steps,
)

#: SAGE's latent attack as the paper describes it (``paper=True``, ``--paper``).
PAPER_SETTINGS: dict[str, object] = dict(
    gradient="residual", k=2, step_rule="sign", step=0.05, max_iterations=100
)
#: The defaults, chosen by measurement on emoji-sd (docs/sage-latent.md).
MEASURED_SETTINGS: dict[str, object] = dict(
    gradient="exact-stored", k=2, step_rule="l2", step=0.4, max_iterations=20
)


#: What the latent keeps of its seed's besides the box: its values and power spectrum
#: (new phases, the values rearranged), its values, its norm, or nothing.
Keep = Literal["spectrum", "values", "norm", "none"]


def latent_constraints(keep: Keep, radius: float) -> tuple[Constraint, ...]:
    """The set δ stays in: what it ``keep``s of the seed's latent, then the ±``radius`` box
    (projected last, so it always holds)."""
    _check_keep(keep)
    kept = {
        "spectrum": (SameSpectrum(), SameValues()),
        "values": (SameValues(),),
        "norm": (SameNorm(),),
        "none": (),
    }[keep]
    return (*kept, Box(radius))


def _check_keep(keep: str) -> None:
    _require(
        keep in typing.get_args(Keep),
        f"keep (--keep) must be one of {', '.join(typing.get_args(Keep))}, not {keep!r}",
    )


def sage_latent_settings(paper: bool = False, **given: object) -> dict[str, object]:
    """The search's settings: those ``given`` (not None), the rest from the paper's or the
    measured defaults."""
    chosen = {name: value for name, value in given.items() if value is not None}
    return {**(PAPER_SETTINGS if paper else MEASURED_SETTINGS), **chosen}


def sage_latent(
    generator: Generator,
    surrogate: Judge,
    *,
    paper: bool = False,
    gradient: GradientMode | None = None,
    k: int | None = None,
    step_rule: StepName | None = None,
    step: float | None = None,
    max_iterations: int | None = None,
    weight: float = 1.0,
    radius: float = 1.0,
    steps: int = 25,
    guidance: float = 7.5,
    absent_below: float = 0.1,
    batch_size: int = 8,
    keep: Keep = "values",
    views: bool = True,
) -> Attack:
    """SAGE's latent attack (Liu et al., arXiv 2306.00974): gradient steps on δ in a box.

    ``paper=True`` takes the paper's search (:data:`PAPER_SETTINGS`: residual gradient
    from the last 2 steps, sign steps of 0.05, 100 iterations); the default is the search
    that measured best on emoji-sd (:data:`MEASURED_SETTINGS`, docs/sage-latent.md).
    Options given override either.

    ``keep="values"`` (default) keeps ``z + δ`` a rearrangement of the seed's ``z``
    (:class:`SameValues`: its norm and its elements' distribution), so the failure it finds
    starts from a latent as typical as the seed's however far the steps go; ``"norm"``
    keeps only the norm (:class:`SameNorm`, the default before large steps bent the
    elements' distribution), ``"none"`` only the ±``radius`` box, which always holds. With
    ``views`` (default) the surrogate must miss the target on flipped, shifted and
    zoomed views too, which doubled the verified failures on emoji-sd.
    """
    scheduler_with_steps(generator.scheduler, steps)
    search = sage_latent_settings(
        paper, gradient=gradient, k=k, step_rule=step_rule, step=step,
        max_iterations=max_iterations,
    )  # fmt: skip
    check_sage_latent(
        radius=radius, weight=weight, absent_below=absent_below, batch_size=batch_size,
        steps=steps, guidance=guidance, keep=keep, **search,
    )  # fmt: skip
    return Attack(
        name="sage-latent",
        space=LatentPerturbation(
            generator, steps, guidance, search["gradient"], search["k"], batch_size, weight
        ),
        goal=TargetAbsent(surrogate, absent_below, views),
        constraints=latent_constraints(keep, radius),
        search=GradientDescent(
            search["step"], search["max_iterations"], rule_named(search["step_rule"])
        ),
    )


def random_latent(
    generator: Generator,
    surrogate: Judge,
    *,
    budget: int | None = None,
    radius: float | None = None,
    keep: Keep = "values",
    steps: int = 25,
    guidance: float = 7.5,
    absent_below: float = 0.1,
    batch_size: int = 8,
    views: bool = True,
) -> Attack:
    """The baseline: random initial latents within a UNet-evaluation budget.

    Without ``radius``, fresh latents (the seed's own first). With it, random search
    inside SAGE's constraints: each fresh latent's δ from the seed's is projected onto
    what ``keep`` keeps and the ±``radius`` box (:func:`latent_constraints`, as
    :func:`sage_latent`), so the candidates lie in the set a gradient attack searches.
    The default budget is what :func:`sage_latent`'s defaults spend at most on ``steps``
    (:func:`sage_latent_budget`).
    """
    scheduler_with_steps(generator.scheduler, steps)
    check_random_latent(
        budget=budget, radius=radius, absent_below=absent_below, batch_size=batch_size,
        steps=steps, guidance=guidance, keep=keep,
    )  # fmt: skip
    budget = budget if budget is not None else sage_latent_budget(steps)
    return Attack(
        name="random-latent",
        space=LatentPerturbation(generator, steps, guidance, "none", 1, batch_size),
        goal=TargetAbsent(surrogate, absent_below, views),
        constraints=latent_constraints(keep, radius) if radius is not None else (),
        search=RandomSearch(budget),
    )


def sage_latent_budget(steps: int, paper: bool = False, **given: object) -> int:
    """The most UNet evaluations :func:`sage_latent` spends on one attempt: each iteration's
    rendering and backward pass, and the last rendering (rounded up)."""
    search = sage_latent_settings(paper, **given)
    cost = evaluation_cost(search["gradient"], search["k"], steps)
    return math.ceil(search["max_iterations"] * cost.total + steps)


def check_sage_latent(
    *,
    paper: bool = False,
    radius: float,
    step: float | None,
    max_iterations: int | None,
    gradient: str | None,
    k: int | None,
    step_rule: str | None,
    weight: float,
    absent_below: float,
    batch_size: int,
    steps: int,
    guidance: float,
    keep: str = "values",
    **_: object,
) -> None:
    """:func:`sage_latent`'s checks that need no model: a CLI runs them before it loads one."""
    _check_keep(keep)
    search = sage_latent_settings(
        paper, gradient=gradient, k=k, step_rule=step_rule, step=step,
        max_iterations=max_iterations,
    )  # fmt: skip
    _check_common(absent_below, batch_size, guidance, steps)
    _require(0 < radius < math.inf, f"radius (--radius) must be a positive number, not {radius}")
    step = search["step"]
    _require(0 < step < math.inf, f"step (--step) must be a positive number, not {step}")
    _require(math.isfinite(weight), f"weight (--weight) must be a finite number, not {weight}")
    _require(  # 0 scores the clean images only: natural failures, and the verifiers' reading
        search["max_iterations"] >= 0,
        f"max_iterations (--max-iterations) must be 0 or more, not {search['max_iterations']}",
    )
    _require(
        search["step_rule"] in STEP_RULES,
        f"step_rule (--step-rule) must be one of {', '.join(STEP_RULES)}, "
        f"not {search['step_rule']!r}",
    )
    check_latent_gradient(search["gradient"], search["k"], steps)


def check_random_latent(
    *,
    budget: int | None,
    radius: float | None,
    absent_below: float,
    batch_size: int,
    steps: int,
    guidance: float,
    keep: str = "values",
    **_: object,
) -> None:
    """:func:`random_latent`'s checks that need no model."""
    _check_keep(keep)
    _check_common(absent_below, batch_size, guidance, steps)
    _require(
        radius is None or 0 < radius < math.inf,
        f"radius (--radius) must be a positive number, not {radius}",
    )
    budget = budget if budget is not None else sage_latent_budget(steps)
    _require(
        budget >= 2 * steps,
        f"a budget of {budget} UNet evaluations pays for no image beyond the clean one of "
        f"{steps} steps: give at least {2 * steps}",
    )


#: The Generator's gradient modes that reach the initial latent.
LATENT_GRADIENTS = tuple(
    mode for mode in typing.get_args(GradientMode) if mode not in ("none", "last-k")
)
LATENT_GRADIENT_HELP = (
    "short-chain (the full render's loss carried back by a k-step DDIM chain), residual (the "
    "last k steps, then SAGE's shortcut to the latent), residual-added (exact plus weight × "
    "that shortcut), first-k (the first k steps, then the sampler's linear term), exact, or "
    "exact-stored (exact without checkpoints)"
)


def check_latent_gradient(gradient: str, k: int, steps: int) -> None:
    """Refuse a gradient mode that gives the initial latent no gradient, or a k it cannot use."""
    why = " (it gives the initial latent no gradient)" if gradient == "last-k" else ""
    _require(
        gradient in LATENT_GRADIENTS,
        f"gradient {gradient!r} cannot attack a latent{why}: use {LATENT_GRADIENT_HELP}",
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
