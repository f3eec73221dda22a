"""Searches over words appended to a prompt: SAGE's gradient-guided choice, and random words.

SAGE (arXiv 2306.00974) appends an adversarial token [x] and a look-ahead token [y]
to "a photo of a <class>", optimises their embeddings under the surrogate loss, and
then commits [x] to a word: among the language model's candidates for that position,
those whose embeddings the gradient says lower the loss most (a first-order score)
are rendered as words, and the best becomes part of the prompt. Repeating this
grows a readable prompt, word by word, until the surrogate no longer sees the class.
Only prompts of words are scored as outcomes: the images of free embeddings steer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from fissure.attacks.constraints import Constraint, project_all
from fissure.attacks.goals import GoalEvaluation, TargetAbsent
from fissure.attacks.search import Screen, SearchMethod, SearchState, state_targets
from fissure.attacks.spaces import PromptExtension, Rendering, WordChoice
from fissure.attacks.steps import NormalisedStep, StepRule
from fissure.models.generator import evaluation_cost


def _render_prompts(
    states: Sequence[SearchState],
    prompts: Sequence[str],
    space: PromptExtension,
    goal: TargetAbsent,
) -> list[tuple[Rendering, GoalEvaluation, int]]:
    """Render and score one prompt per state, in batches of the space's size; for each row
    its batch's rendering and scores, and its row there."""
    rows = []
    for begin in range(0, len(prompts), space.batch_size):
        chunk = slice(begin, begin + space.batch_size)
        starts = [state.start for state in states[chunk]]
        rendering = space.render(starts, prompts[chunk])
        evaluation = goal.evaluate(rendering.images, state_targets(states[chunk], rendering.images))
        rows += [(rendering, evaluation, row) for row in range(len(starts))]
    return rows


def _start(
    states: list[SearchState], space: PromptExtension, goal: TargetAbsent, screen: Screen | None
) -> None:
    """Render each new attempt's clean prompt: its outcome so far, and the screen's input."""
    prompts = [state.attempt.prompt for state in states]
    for state, (rendering, evaluation, row) in zip(
        states, _render_prompts(states, prompts, space, goal), strict=True
    ):
        state.prompt = state.attempt.prompt
        state.unet_evals += rendering.unet_evals
        state.visit(rendering.images, evaluation, row)
        if screen is not None and not screen(state):
            state.stop_at_start(space.origin(state.start))
        state.done = state.done or state.achieved


def word_cost(step_cost: float, iterations: int, rescored: int, steps: int) -> float:
    """UNet evaluations one word of :class:`WordSearch` costs at most: ``iterations`` gradient
    renderings and one more for the first-order scores (``step_cost`` each), and its
    ``rescored`` candidates rendered (``steps`` each)."""
    return (iterations + 1) * step_cost + rescored * steps


@dataclass(frozen=True)
class WordSearch(SearchMethod):
    """SAGE's prompt search: per word, ``iterations`` gradient steps on the free tokens, then
    the ``rescored`` best of the language model's ``candidates`` words by first-order score,
    rendered as words; the best of those joins the prompt. Up to ``words`` words.

    After an appended word, [y] becomes the next [x] (it was optimised to come next). Where
    a prompt can grow no further (``words`` reached, or no candidate keeps it fluent), the
    search returns to the best prompt it rendered and did not take (best-first), while
    ``budget`` (UNet evaluations an attempt; None: one chain only) pays for another word.
    """

    words: int = 3
    iterations: int = 4
    step: float = 0.01
    candidates: int = 50
    rescored: int = 4
    rule: StepRule = field(default_factory=NormalisedStep)
    budget: float | None = None

    def settings(self) -> dict[str, object]:
        return dict(
            search="words", words=self.words, iterations=self.iterations, step=self.step,
            candidates=self.candidates, rescored=self.rescored, budget=self.budget,
            **self.rule.settings(),
        )  # fmt: skip

    def _word_cost(self, space: PromptExtension) -> float:
        step_cost = evaluation_cost(space.gradient, space.k, space.steps).total
        return word_cost(step_cost, self.iterations, self.rescored, space.steps)

    def _go_on(self, state: SearchState, space: PromptExtension, can_grow: bool) -> None:
        """After a word, or a prompt with no word to go on with: stop at a success; else go
        on growing the prompt if it ``can_grow``, or from the best one rendered and not
        taken, while the budget pays for another word."""
        affordable = self.budget is None or (
            state.unet_evals + self._word_cost(space) <= self.budget
        )
        if state.achieved or not affordable:
            state.done = True
            return
        if can_grow:
            return
        returns = [
            index
            for index, (_, prompt, _, _) in enumerate(state.frontier)
            if self._added(prompt, state) < self.words
        ]
        if self.budget is None or not returns:
            state.done = True
            return
        best = min(returns, key=lambda index: state.frontier[index][0])
        _, state.prompt, state.images, state.probabilities = state.frontier.pop(best)
        state.variable = space.origin(state.start)
        state.candidates, state.steps_on_word, state.memory = [], 0, {}

    @staticmethod
    def _added(prompt: str, state: SearchState) -> int:
        """Words ``prompt`` adds to the attempt's clean prompt."""
        return len(prompt.split()) - len(state.attempt.prompt.split())

    def advance(
        self,
        active: list[SearchState],
        space: PromptExtension,
        goal: TargetAbsent,
        constraints: Sequence[Constraint],
        screen: Screen | None = None,
    ) -> None:
        # each attempt's part of the round, decided before any part moves it
        new = [state for state in active if state.prompt is None]
        scoring = [state for state in active if state.prompt is not None and state.candidates]
        stepping = [
            state
            for state in active
            if state.prompt is not None and not state.candidates and not state.done
        ]
        if new:
            _start(new, space, goal, screen)
        if scoring:
            self._choose_words(scoring, space, goal)
        if stepping:
            self._step(stepping, space, goal, constraints)

    def _step(
        self,
        states: list[SearchState],
        space: PromptExtension,
        goal: TargetAbsent,
        constraints: Sequence[Constraint],
    ) -> None:
        """One gradient step on each state's free tokens; after the last, its candidate words."""
        free = torch.stack([state.variable for state in states]).requires_grad_(True)
        prompts = [state.prompt for state in states]
        rendering = space.render([state.start for state in states], prompts, free, True)
        evaluation = goal.evaluate(rendering.images, state_targets(states, rendering.images))
        (gradient,) = torch.autograd.grad(evaluation.loss[: len(states)].sum(), free)
        for row, state in enumerate(states):
            state.unet_evals += rendering.unet_evals + rendering.backward_evals
            if state.steps_on_word < self.iterations:
                move = self.rule.move(gradient[row], state.memory)
                moved = state.variable - self.step * move
                state.variable = project_all(constraints, moved, state.variable).detach()
                state.steps_on_word += 1
                state.iterations += 1
            else:
                state.candidates = self._ranked(space, state, gradient[row])
                if not state.candidates:  # no word to go on with: back to another prompt
                    self._go_on(state, space, can_grow=False)

    def _ranked(
        self, space: PromptExtension, state: SearchState, gradient: torch.Tensor
    ) -> list[WordChoice]:
        """The ``rescored`` candidate words whose embeddings the first-order expansion of the
        loss around the free token of their place scores lowest: ``gradient · (e_word − x)``."""
        choices = space.candidates(state.start, state.prompt, self.candidates)
        if not choices:
            return []
        device = space.vocabulary.device
        embeddings = space.vocabulary.detach()[
            torch.tensor([choice.token_id for choice in choices], device=device)
        ].float()
        places = torch.tensor([space.free_row(choice) for choice in choices], device=device)
        scores = ((embeddings - state.variable[places]) * gradient[places]).sum(dim=-1)
        return [choices[i] for i in scores.argsort()[: self.rescored].tolist()]

    def _choose_words(
        self, states: list[SearchState], space: PromptExtension, goal: TargetAbsent
    ) -> None:
        """Render every state's candidate words; each keeps its best (a success first, then
        the lowest loss) and goes on to the next word, or ends."""
        rows = [
            (state, choice, space.placed(state.start, state.prompt, choice))
            for state in states
            for choice in state.candidates
        ]
        scored = _render_prompts([s for s, _, _ in rows], [p for _, _, p in rows], space, goal)
        for state in states:
            mine = [
                (choice, prompt, outcome)
                for (owner, choice, prompt), outcome in zip(rows, scored, strict=True)
                if owner is state
            ]
            for _, _, (rendering, _, _) in mine:
                state.unet_evals += rendering.unet_evals
            choice, prompt, (rendering, evaluation, row) = min(
                mine,
                key=lambda item: (
                    not bool(item[2][1].achieved[item[2][2]]),
                    float(item[2][1].loss[item[2][2]]),
                ),
            )
            state.prompt = prompt
            state.visit(rendering.images, evaluation, row)
            state.frontier += [
                (float(e.loss[r]), p, rd.images[r].detach().clone(), e.probabilities[r])
                for _, p, (rd, e, r) in mine
                if p != prompt
            ]
            state.candidates = []
            state.steps_on_word, state.memory = 0, {}
            state.variable = self._next_tokens(space, state, choice)
            self._go_on(state, space, can_grow=self._added(prompt, state) < self.words)

    @staticmethod
    def _next_tokens(
        space: PromptExtension, state: SearchState, choice: WordChoice
    ) -> torch.Tensor:
        """The free tokens after ``choice`` joins the prompt: a word before the noun frees
        [m] to start again; an appended word makes [y] the next [x] (it was optimised to
        come next) and a fresh [y]."""
        fresh = space.origin(state.start)
        variable = state.variable.clone()
        if choice.before_noun:
            variable[0] = fresh[0]
            return variable
        x = space.free_row(choice)
        return torch.cat([variable[:x], variable[x + 1 :], fresh[:1]])


def word_seed(seed: int, attempt: int, word: int) -> int:
    """The seed of the ``word``-th random word of the ``attempt``-th try for seed ``seed``."""
    digest = hashlib.sha256(f"fissure-random-word:{seed}:{attempt}:{word}".encode()).digest()
    return int.from_bytes(digest[:7], "big")


@dataclass(frozen=True)
class RandomWords(SearchMethod):
    """The baseline: random words from the same candidate lists, within a budget.

    Each try appends 1, 2, … ``words`` words (cycling) to the clean prompt, each drawn
    uniformly from the language model's ``candidates`` next words that the word search
    chooses among; it stops before a try would take it over ``budget`` UNet evaluations.
    """

    budget: int
    words: int = 3
    candidates: int = 50

    def settings(self) -> dict[str, object]:
        return dict(
            search="random-words", budget=self.budget, words=self.words,
            candidates=self.candidates,
        )  # fmt: skip

    def _random_prompt(self, space: PromptExtension, state: SearchState) -> str:
        prompt, index = state.attempt.prompt, state.iterations
        for count in range(1 + (index - 1) % self.words):
            choices = space.candidates(state.start, prompt, self.candidates)
            if not choices:
                break
            generator = torch.Generator().manual_seed(word_seed(state.attempt.seed, index, count))
            pick = int(torch.randint(len(choices), (1,), generator=generator))
            prompt = space.placed(state.start, prompt, choices[pick])
        return prompt

    @torch.no_grad()
    def advance(
        self,
        active: list[SearchState],
        space: PromptExtension,
        goal: TargetAbsent,
        constraints: Sequence[Constraint],
        screen: Screen | None = None,
    ) -> None:
        new = [state for state in active if state.prompt is None]
        trying = [state for state in active if state.prompt is not None and not state.done]
        if new:
            _start(new, space, goal, screen)
        for state in trying:
            state.iterations += 1
        prompts = [self._random_prompt(space, state) for state in trying]
        cost = space.steps  # until a try is rendered: the sampler's steps
        if trying:
            scored = _render_prompts(trying, prompts, space, goal)
            cost = scored[0][0].unet_evals
            for state, prompt, (rendering, evaluation, row) in zip(
                trying, prompts, scored, strict=True
            ):
                state.prompt = prompt
                state.unet_evals += rendering.unet_evals
                state.visit(rendering.images, evaluation, row)
                state.done = state.achieved
        for state in active:
            state.done = state.done or state.unet_evals + cost > self.budget
