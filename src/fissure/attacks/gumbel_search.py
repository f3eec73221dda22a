"""ATM's search: Adam on word log-coefficients through Gumbel-softmax draws, then hard draws.

Each step draws a relaxed prompt (a Gumbel-softmax mixture of token embeddings at every
free position), renders it with the space's gradient path, adds the soft constraints'
terms (similarity, fluency) to the goal's loss, and takes an Adam step on the
log-coefficients. After the last step, ``samples`` hard draws are prompts of words, each
rendered from the seed's latent; a draw succeeds by :func:`~fissure.attacks.goals.atm_success`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import groupby

import torch

from fissure.attacks.constraints import Constraint
from fissure.attacks.distributions import WordDistributions, gumbel_softmax
from fissure.attacks.goals import ClassifierMargin, atm_success
from fissure.attacks.penalties import Penalty
from fissure.attacks.search import (
    Screen,
    SearchMethod,
    SearchState,
    score_prompts,
    state_targets,
)
from fissure.attacks.steps import AdamStep, StepRule


def draw_seed(seed: int, step: int) -> int:
    """The seed of the Gumbel noise of an attempt's ``step``-th draw (-1: its hard draws)."""
    digest = hashlib.sha256(f"fissure-gumbel:{seed}:{step}".encode()).digest()
    return int.from_bytes(digest[:7], "big")


@dataclass(frozen=True)
class GumbelSearch(SearchMethod):
    """ATM's search, with its released code's defaults: ``iterations`` Adam steps of
    ``step`` on the log-coefficients, one Gumbel-softmax draw of ``temperature`` a step;
    then ``samples`` hard draws, each a prompt rendered and judged (identical prompts are
    rendered once: the same words from the same latent make the same image).

    An attempt whose clean image the classifier already misreads is not attacked (ATM's
    code skips it): it ends at its start, no success, reported as ``clean_misclassified``.
    The outcome is the first draw that succeeds, else the draw the classifier reads the
    class in least (the lowest loss).
    """

    iterations: int = 100
    step: float = 0.3
    samples: int = 100
    temperature: float = 1.0
    rule: StepRule = field(default_factory=AdamStep)

    def settings(self) -> dict[str, object]:
        return dict(
            search="gumbel-softmax", iterations=self.iterations, step=self.step,
            samples=self.samples, temperature=self.temperature, **self.rule.settings(),
        )  # fmt: skip

    def advance(
        self,
        active: list[SearchState],
        space: WordDistributions,
        goal: ClassifierMargin,
        constraints: Sequence[Constraint | Penalty],
        screen: Screen | None = None,
    ) -> None:
        new = [state for state in active if state.prompt is None]
        stepping = [s for s in active if s.prompt is not None and s.iterations < self.iterations]
        drawing = [s for s in active if s.prompt is not None and s.iterations >= self.iterations]
        if new:
            self._start(new, space, goal)
        penalties = [c for c in constraints if isinstance(c, Penalty)]
        width = lambda state: len(state.start.positions)  # noqa: E731 - rows batch by width
        for _, group in groupby(sorted(stepping, key=width), key=width):
            group = list(group)
            for begin in range(0, len(group), space.batch_size):
                self._step(group[begin : begin + space.batch_size], space, goal, penalties)
        for state in drawing:
            self._draw(state, space, goal)

    @staticmethod
    def _start(states: list[SearchState], space: WordDistributions, goal: ClassifierMargin) -> None:
        """Render each new attempt's clean prompt; skip those the classifier misreads."""
        prompts = [state.attempt.prompt for state in states]
        with torch.no_grad():
            scored = score_prompts(states, prompts, space, goal)
        for state, prompt, (rendering, evaluation, row) in zip(
            states, prompts, scored, strict=True
        ):
            state.prompt = prompt
            state.unet_evals += rendering.unet_evals
            state.visit(rendering.images, evaluation, row)
            if state.achieved:  # a natural failure to ATM: never attacked, never a success
                state.stop_at_start(space.origin(state.start))
                state.achieved = False
                state.report["clean_misclassified"] = True

    def _step(
        self,
        states: list[SearchState],
        space: WordDistributions,
        goal: ClassifierMargin,
        penalties: list[Penalty],
    ) -> None:
        """One Adam step on each state's log-coefficients, through one Gumbel-softmax draw."""
        logits = torch.stack([state.variable for state in states]).requires_grad_(True)
        noise = [
            torch.Generator().manual_seed(draw_seed(state.attempt.seed, state.iterations))
            for state in states
        ]
        coefficients = torch.stack(
            [
                gumbel_softmax(row, self.temperature, generator)
                for row, generator in zip(logits, noise, strict=True)
            ]
        )
        starts = [state.start for state in states]
        rendering = space.render(starts, [state.prompt for state in states], coefficients, True)
        evaluation = goal.evaluate(rendering.images, state_targets(states, rendering.images))
        loss = evaluation.loss[: len(states)]
        for penalty in penalties:
            loss = loss + penalty.penalty(space, starts, coefficients)
        (gradient,) = torch.autograd.grad(loss.sum(), logits)
        for row, state in enumerate(states):
            state.unet_evals += rendering.unet_evals + rendering.backward_evals
            state.target_trace.append(
                float(evaluation.probabilities[row, state.attempt.target_index])
            )
            state.report.setdefault("losses", []).append(round(float(loss[row].detach()), 4))
            move = self.rule.move(gradient[row], state.memory)
            state.variable = (state.variable - self.step * move).detach()
            state.iterations += 1

    def _draw(self, state: SearchState, space: WordDistributions, goal: ClassifierMargin) -> None:
        """The hard draws: each a prompt rendered and judged; the attempt's outcome."""
        generator = torch.Generator().manual_seed(draw_seed(state.attempt.seed, -1))
        drawn = [
            space.words(
                state.start, gumbel_softmax(state.variable, 1.0, generator, True).argmax(-1)
            )
            for _ in range(self.samples)
        ]
        prompts = [space.text(state.start, tokens) for tokens in drawn]
        unique = list(dict.fromkeys(prompts))
        target, labels = state.attempt.target, goal.surrogate.labels
        with torch.no_grad():
            scored = score_prompts([state] * len(unique), unique, space, goal)
        judged: dict[str, tuple[bool, float, torch.Tensor, torch.Tensor]] = {}
        for prompt, (rendering, evaluation, row) in zip(unique, scored, strict=True):
            state.unet_evals += rendering.unet_evals
            top = labels[int(evaluation.probabilities[row].argmax())]
            judged[prompt] = (
                atm_success(top, target, prompt),
                float(evaluation.loss[row]),
                rendering.images[row].clone(),
                evaluation.probabilities[row],
            )
        successes = [prompt for prompt in prompts if judged[prompt][0]]
        outcome = successes[0] if successes else min(unique, key=lambda p: judged[p][1])
        achieved, _, images, probabilities = judged[outcome]
        state.prompt, state.images, state.probabilities = outcome, images, probabilities
        state.achieved, state.done = achieved, True
        state.report.update(
            samples=self.samples,
            successful_samples=len(successes),
            distinct_prompts=len(unique),
            token_error_rate=round(
                sum(map(space.token_error_rate, drawn, prompts)) / len(drawn), 4
            ),
        )
