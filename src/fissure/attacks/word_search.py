"""Searches over words added to a prompt: SAGE's gradient-guided choice, and random words.

SAGE (arXiv 2306.00974) appends an adversarial token [x] and a look-ahead token [y]
to "a photo of a <class>", optimises their embeddings under the surrogate loss, and
then commits [x] to a word: among the language model's candidates for that position,
those whose embeddings the gradient says lower the loss most (a first-order score)
are rendered as words, and the best becomes part of the prompt. fissure also lets a
word go just before the class's name (a free token [m] there), and searches the
prompts it renders best-first rather than as one chain, within a budget.
Only prompts of words are scored as outcomes: the images of free embeddings steer.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from fissure.attacks.constraints import Constraint, project_all
from fissure.attacks.goals import GoalEvaluation, TargetAbsent
from fissure.attacks.search import (
    Screen,
    SearchMethod,
    SearchState,
    score_prompts,
    state_targets,
)
from fissure.attacks.spaces import PromptExtension, Rendering, WordChoice
from fissure.attacks.steps import NormalisedStep, StepRule
from fissure.models.generator import evaluation_cost


def visit_words(
    state: SearchState,
    space: PromptExtension,
    prompt: str,
    scored: tuple[Rendering, GoalEvaluation, int],
) -> None:
    """Record a rendered prompt of words: the goal holds only if the prompt also reads as
    fluently as the space asks of an outcome."""
    rendering, evaluation, row = scored
    state.prompt = prompt
    state.unet_evals += rendering.unet_evals
    state.visit(rendering.images, evaluation, row)
    state.achieved = state.achieved and space.readable(state.start, [prompt])[0]


def _start(
    states: list[SearchState], space: PromptExtension, goal: TargetAbsent, screen: Screen | None
) -> None:
    """Render each new attempt's clean prompt: its outcome so far, and the screen's input."""
    prompts = [state.attempt.prompt for state in states]
    for state, scored in zip(states, score_prompts(states, prompts, space, goal), strict=True):
        visit_words(state, space, state.attempt.prompt, scored)
        if screen is not None and not screen(state):
            state.stop_at_start(space.origin(state.start))
        state.done = state.done or state.achieved


def word_cost(step_cost: float, iterations: int, rescored: int, steps: int) -> float:
    """UNet evaluations one word of :class:`WordSearch` costs at most: ``iterations`` gradient
    renderings and one more for the first-order scores (``step_cost`` each), and its
    ``rescored`` candidates rendered (``steps`` each)."""
    return (iterations + 1) * step_cost + rescored * steps


@dataclass
class _Node:
    """A prompt the word search rendered: its images and scores, the free tokens its own
    words start from, and, once the gradient has ranked them, its candidate words."""

    prompt: str
    vote: float  # the surrogate's vote for the target: best-first goes on from the lowest
    images: torch.Tensor
    probabilities: torch.Tensor
    tokens: torch.Tensor
    ranking: list[WordChoice] | None = None
    open: bool = True  # not ranked yet, or words of its ranking not yet rendered


@dataclass(frozen=True)
class WordSearch(SearchMethod):
    """SAGE's prompt search, best-first: take the rendered prompt the surrogate sees the
    target least in; the first time, ``iterations`` gradient steps on its free tokens rank
    the language model's ``candidates`` words for it by first-order score; render its
    ``rescored`` best words not yet rendered as prompts. Until a prompt succeeds, the
    ``budget`` (UNet evaluations an attempt) runs out, or no prompt of fewer than ``words``
    added words has words left.

    A prompt's words start from its parent's optimised tokens: after an appended word, [y]
    becomes the next [x] (SAGE's look-ahead token, optimised to come next).
    """

    words: int = 3
    iterations: int = 4
    step: float = 0.01
    candidates: int = 50
    rescored: int = 4
    rule: StepRule = field(default_factory=NormalisedStep)
    budget: float = math.inf
    finished_first: bool = True
    """Rank the words that leave a prompt fluent enough to be an outcome before those that
    need more words (each group in the gradient's order): the gradient alone prefers
    unfinished function words ("and a"), which move the image most but never succeed."""

    def settings(self) -> dict[str, object]:
        return dict(
            search="words, best-first", words=self.words, iterations=self.iterations,
            step=self.step, candidates=self.candidates, rescored=self.rescored,
            budget=self.budget, finished_first=self.finished_first, **self.rule.settings(),
        )  # fmt: skip

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
            for state in new:
                state.tree[state.prompt] = self._node(state, state.variable)
        if scoring:
            self._render_words(scoring, space, goal)
        if stepping:
            self._step(stepping, space, goal, constraints)

    @staticmethod
    def _node(state: SearchState, tokens: torch.Tensor) -> _Node:
        """The prompt just visited, as a node of the search whose words start from ``tokens``."""
        vote = float(state.probabilities[state.attempt.target_index])
        return _Node(state.prompt, vote, state.images, state.probabilities, tokens.detach())

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
                node = state.tree[state.prompt]
                node.ranking = self._ranked(space, state, gradient[row])
                node.tokens = state.variable
                self._next_words(state, space)

    def _ranked(
        self, space: PromptExtension, state: SearchState, gradient: torch.Tensor
    ) -> list[WordChoice]:
        """The candidate words, those whose embeddings the first-order expansion of the loss
        around the free token of their place scores lowest first: ``gradient · (e_word − x)``."""
        choices = space.candidates(state.start, state.prompt, self.candidates)
        if not choices:
            return []
        device = space.vocabulary.device
        embeddings = space.vocabulary.detach()[
            torch.tensor([choice.token_id for choice in choices], device=device)
        ].float()
        places = torch.tensor([space.free_row(choice) for choice in choices], device=device)
        scores = ((embeddings - state.variable[places]) * gradient[places]).sum(dim=-1)
        ranked = [choices[i] for i in scores.argsort().tolist()]
        if self.finished_first:  # stable: the gradient's order within each group
            placed = [space.placed(state.start, state.prompt, choice) for choice in ranked]
            finished = space.readable(state.start, placed)
            ranked = [ranked[i] for i in sorted(range(len(ranked)), key=lambda i: not finished[i])]
        return ranked

    def _next_words(self, state: SearchState, space: PromptExtension) -> None:
        """The current prompt's best ``rescored`` words not yet rendered, to render next; if
        none are left, the search goes on from another prompt."""
        node = state.tree[state.prompt]
        untried = [
            choice
            for choice in node.ranking
            if space.placed(state.start, node.prompt, choice) not in state.tree
        ]
        state.candidates = untried[: self.rescored]
        if not state.candidates:
            node.open = False
            self._go_on(state, space)

    def _go_on(self, state: SearchState, space: PromptExtension) -> None:
        """Stop at a success; else go on from the open prompt the surrogate sees the target
        least in, if the budget pays for its next words."""
        clean = len(state.attempt.prompt.split())
        choices = [
            node
            for node in state.tree.values()
            if node.open and len(node.prompt.split()) - clean < self.words
        ]
        if state.achieved or not choices:
            state.done = True
            return
        best = min(choices, key=lambda node: node.vote)
        ranked = best.ranking is not None  # its words only need rendering
        step_cost = 0.0 if ranked else evaluation_cost(space.gradient, space.k, space.steps).total
        if state.unet_evals + word_cost(step_cost, self.iterations, self.rescored, space.steps) > (
            self.budget
        ):
            state.done = True
            return
        state.prompt, state.images = best.prompt, best.images
        state.probabilities = best.probabilities
        state.variable, state.steps_on_word, state.memory = best.tokens, 0, {}
        if ranked:
            self._next_words(state, space)

    def _render_words(
        self, states: list[SearchState], space: PromptExtension, goal: TargetAbsent
    ) -> None:
        """Render every state's candidate words as prompts: each becomes a node of its
        search; a success ends it, else it goes on best-first."""
        rows = [
            (state, choice, space.placed(state.start, state.prompt, choice))
            for state in states
            for choice in state.candidates
        ]
        renderings = score_prompts([s for s, _, _ in rows], [p for _, _, p in rows], space, goal)
        for (state, choice, prompt), scored in zip(rows, renderings, strict=True):
            if state.achieved:
                state.unet_evals += scored[0].unet_evals
                continue  # an earlier word of this round already succeeded
            visit_words(state, space, prompt, scored)
            state.tree[prompt] = self._node(state, self._next_tokens(space, state.variable, choice))
        for state in states:
            state.candidates = []
            self._go_on(state, space)

    @staticmethod
    def _next_tokens(
        space: PromptExtension, tokens: torch.Tensor, choice: WordChoice
    ) -> torch.Tensor:
        """The free tokens the prompt with ``choice`` starts its own words from: a word
        before the noun frees [m] to start again; an appended word makes [y] the next [x]
        (it was optimised to come next) and a fresh [y]."""
        fresh = space.mean_embedding
        if choice.before_noun:
            return torch.cat([fresh, tokens[1:]])
        x = space.free_row(choice)
        return torch.cat([tokens[:x], tokens[x + 1 :], fresh])


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
            renderings = score_prompts(trying, prompts, space, goal)
            cost = renderings[0][0].unet_evals
            for state, prompt, scored in zip(trying, prompts, renderings, strict=True):
                visit_words(state, space, prompt, scored)
                state.done = state.achieved
        for state in active:
            state.done = state.done or state.unet_evals + cost > self.budget
