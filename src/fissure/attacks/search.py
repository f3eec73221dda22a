"""Search methods: how an attack moves through its space towards its goal.

Attempts run in slots of one fixed-size batch: when an attempt finishes, the
next one takes its slot at once, so the UNet always sees full batches (the
cheapest way to attack many attempts on a CPU) and a slow attempt never holds
back the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from fissure.attacks.constraints import Constraint, project_all
from fissure.attacks.goals import ClassifierMargin, GoalEvaluation, TargetAbsent
from fissure.attacks.spaces import (
    Attempt,
    LatentPerturbation,
    LatentStart,
    PromptExtension,
    Rendering,
    WordChoice,
    fresh_seed,
    target_rows,
)
from fissure.attacks.steps import SignStep, StepRule

if TYPE_CHECKING:
    from fissure.attacks.distributions import WordDistributions


@dataclass
class SearchState:
    """One attempt's progress; when ``done``, its outcome."""

    start: LatentStart
    variable: torch.Tensor
    iterations: int = 0
    unet_evals: float = 0  # forward evaluations, and backward ones at their measured cost
    achieved: bool = False
    done: bool = False
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0
    images_before: torch.Tensor | None = None  # 3×H×W, at the first point visited
    probabilities_before: torch.Tensor | None = None  # C, the surrogate's vote there
    images: torch.Tensor | None = None  # at the last point visited
    probabilities: torch.Tensor | None = None
    target_trace: list[float] = field(default_factory=list)  # the vote for the target, per visit
    latent_seed: int | None = None  # random search: the seed of the latent last rendered
    memory: dict[str, torch.Tensor] = field(default_factory=dict)  # an adaptive step's moments
    prompt: str | None = None  # prompt searches: the prompt with the words chosen so far
    candidates: list[WordChoice] = field(default_factory=list)  # words to score exactly
    steps_on_word: int = 0  # prompt searches: gradient steps taken for the current word
    tree: dict[str, Any] = field(default_factory=dict)  # word search: its rendered prompts
    report: dict[str, Any] = field(
        default_factory=dict
    )  # what the search measured, for the finding

    def stop_at_start(self, origin: torch.Tensor) -> None:
        """End the attempt where it began: its clean image is the outcome, δ = 0."""
        self.variable, self.iterations, self.done = origin, 0, True
        self.images, self.probabilities = self.images_before, self.probabilities_before

    @property
    def attempt(self) -> Attempt:
        return self.start.attempt

    def visit(self, images: torch.Tensor, evaluation: GoalEvaluation, row: int) -> None:
        """Record the images and scores of the point just rendered."""
        self.images = images[row].detach().clone()  # not a view that keeps the batch alive
        self.probabilities = evaluation.probabilities[row]
        self.achieved = bool(evaluation.achieved[row])
        self.target_trace.append(float(self.probabilities[self.attempt.target_index]))
        if self.images_before is None:
            self.images_before, self.probabilities_before = self.images, self.probabilities


Screen = Callable[[SearchState], bool]
"""Asked once an attempt's clean image is rendered: whether to attack it."""


class SearchMethod:
    """Moves each attempt's variable, one round at a time, for attempts held in batch slots.

    Subclasses say what one round does to a batch of attempts in :meth:`advance`;
    :meth:`search` keeps up to ``space.batch_size`` attempts in flight and yields
    each as it finishes.
    """

    def settings(self) -> dict[str, object]:
        raise NotImplementedError

    def advance(
        self,
        active: list[SearchState],
        space: LatentPerturbation,
        goal: TargetAbsent,
        constraints: Sequence[Constraint],
        screen: Screen | None = None,
    ) -> None:
        """One round for every active attempt: render, score, mark ``done`` or move.

        Each first visit goes to ``screen`` (see :meth:`search`) before any step is taken.
        """
        raise NotImplementedError

    @staticmethod
    def _visit_all(
        active: list[SearchState],
        rendering: Rendering,
        evaluation: GoalEvaluation,
        space: LatentPerturbation,
        screen: Screen | None,
    ) -> None:
        """Each state records its row; a clean image the screen turns down ends its attempt."""
        for row, state in enumerate(active):
            state.unet_evals += rendering.unet_evals
            state.visit(rendering.images, evaluation, row)
            if screen is not None and len(state.target_trace) == 1 and not screen(state):
                state.stop_at_start(space.origin(state.start))

    def search(
        self,
        attempts: Iterable[Attempt],
        space: LatentPerturbation,
        goal: TargetAbsent,
        constraints: Sequence[Constraint],
        on_round: Callable[[Sequence[SearchState]], None] | None = None,
        screen: Screen | None = None,
    ) -> Iterator[SearchState]:
        """Finished states, in the order they finish.

        ``on_round(active)`` runs after every round: a round of a full batch takes
        seconds to minutes on a CPU, an attempt many rounds, so progress shows there.
        ``screen(state)``, asked once an attempt's clean image is rendered, says
        whether to attack it: a natural failure (held-out judges do not see the
        target) would only spend its budget, so it ends where it began.
        """
        queue = iter(attempts)
        active: list[SearchState] = []
        while True:
            while len(active) < space.batch_size and (attempt := next(queue, None)) is not None:
                start = space.bind(attempt)
                active.append(SearchState(start, space.origin(start)))
            if not active:
                return
            self.advance(active, space, goal, constraints, screen)
            if on_round is not None:
                on_round(active)
            for state in active:
                if state.done:
                    state.seconds = time.perf_counter() - state.started
                    yield state
            active = [state for state in active if not state.done]


def state_targets(states: Sequence[SearchState], images: torch.Tensor) -> torch.Tensor:
    """The states' target indices, padded like ``images``' rows."""
    return target_rows([state.attempt.target_index for state in states], images)


def score_prompts(
    states: Sequence[SearchState],
    prompts: Sequence[str],
    space: PromptExtension | WordDistributions,
    goal: TargetAbsent | ClassifierMargin,
) -> list[tuple[Rendering, GoalEvaluation, int]]:
    """Render and score one prompt per state (from its start's latent), in batches of the
    space's size; for each row its batch's rendering and scores, and its row there."""
    rows = []
    for begin in range(0, len(prompts), space.batch_size):
        chunk = slice(begin, begin + space.batch_size)
        starts = [state.start for state in states[chunk]]
        rendering = space.render(starts, prompts[chunk])
        evaluation = goal.evaluate(rendering.images, state_targets(states[chunk], rendering.images))
        rows += [(rendering, evaluation, row) for row in range(len(starts))]
    return rows


@dataclass(frozen=True)
class GradientDescent(SearchMethod):
    """Gradient steps ``δ ← project(δ − step · move(∇δ loss))`` until the goal holds.

    The step rule makes the move (:mod:`fissure.attacks.steps`): SAGE's sign steps by
    default, normalised or Adam steps otherwise. Each iteration renders the current δ
    (with the space's gradient path: a cheap estimator may steer, but the goal is
    always checked on the full render), stops the attempt if the goal holds, and
    otherwise takes one step. ``iterations`` is the number of steps taken;
    ``max_iterations`` steps are followed by one last rendering to score the final δ.
    """

    step: float = 0.05
    max_iterations: int = 100
    rule: StepRule = field(default_factory=SignStep)

    def settings(self) -> dict[str, object]:
        return dict(
            search="gradient", step=self.step, max_iterations=self.max_iterations,
            **self.rule.settings(),
        )  # fmt: skip

    def advance(
        self,
        active: list[SearchState],
        space: LatentPerturbation,
        goal: TargetAbsent,
        constraints: Sequence[Constraint],
        screen: Screen | None = None,
    ) -> None:
        deltas = torch.stack([state.variable for state in active]).requires_grad_(True)
        rendering = space.render([state.start for state in active], deltas, differentiable=True)
        evaluation = goal.evaluate(rendering.images, state_targets(active, rendering.images))
        self._visit_all(active, rendering, evaluation, space, screen)
        stepping = []
        for row, state in enumerate(active):
            state.done = state.done or state.achieved or state.iterations >= self.max_iterations
            if not state.done:
                stepping.append(row)
        if not stepping:
            return
        (gradient,) = torch.autograd.grad(evaluation.loss[stepping].sum(), deltas)
        for row in stepping:
            state = active[row]
            move = self.rule.move(gradient[row], state.memory)
            variable = state.variable - self.step * move
            state.variable = project_all(constraints, variable, state.start.latent[0]).detach()
            state.iterations += 1
            state.unet_evals += rendering.backward_evals


@dataclass(frozen=True)
class RandomSearch(SearchMethod):
    """The baseline: fresh initial latents (the seed's own first) until the goal holds.

    Each fresh latent is projected onto the constraints (as a δ from the seed's),
    so a constrained random search draws inside the set a gradient attack searches.

    It stops before a candidate would take it over ``budget`` UNet evaluations,
    so it is compared with a gradient attack at an equal evaluation budget.
    """

    budget: int

    def settings(self) -> dict[str, object]:
        return dict(search="random", budget=self.budget)

    @torch.no_grad()
    def advance(
        self,
        active: list[SearchState],
        space: LatentPerturbation,
        goal: TargetAbsent,
        constraints: Sequence[Constraint],
        screen: Screen | None = None,
    ) -> None:
        deltas = torch.stack(
            [
                project_all(
                    constraints, space.fresh(state.start, state.iterations), state.start.latent[0]
                )
                for state in active
            ]
        )
        for state in active:
            state.latent_seed = fresh_seed(state.attempt.seed, state.iterations)
        rendering = space.render([state.start for state in active], deltas, differentiable=False)
        evaluation = goal.evaluate(rendering.images, state_targets(active, rendering.images))
        for row, state in enumerate(active):
            state.variable = deltas[row]
        self._visit_all(active, rendering, evaluation, space, screen)
        for state in active:
            over = state.unet_evals + rendering.unet_evals > self.budget
            state.done = state.done or state.achieved or over
            if not state.done:
                state.iterations += 1
