"""An attack is a composition: a search space, a goal, constraints and a search method.

As in TextAttack, a paper's recipe is a short function that picks the four parts
(see :mod:`fissure.attacks.recipes`); this class only runs them together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from fissure.attacks.constraints import Constraint
from fissure.attacks.distributions import WordDistributions
from fissure.attacks.goals import ClassifierMargin, TargetAbsent
from fissure.attacks.search import SearchMethod, SearchState
from fissure.attacks.spaces import Attempt, LatentPerturbation, PromptExtension
from fissure.digest import weights_digest


@dataclass
class Attack:
    name: str
    space: LatentPerturbation | PromptExtension | WordDistributions
    goal: TargetAbsent | ClassifierMargin
    constraints: tuple[Constraint, ...]
    search: SearchMethod

    def settings(self) -> dict[str, object]:
        """Every choice that decides the outcome, for findings and for resuming a run."""
        return dict(
            attack=self.name,
            surrogate=self.goal.surrogate.source,
            surrogate_weights=weights_digest(self.goal.surrogate),
            **self.space.settings(),
            **self.goal.settings(),
            constraints=[repr(constraint) for constraint in self.constraints],
            **self.search.settings(),
        )

    def run(
        self,
        attempts: Iterable[Attempt],
        on_round: Callable[[Sequence[SearchState]], None] | None = None,
        screen: Callable[[SearchState], bool] | None = None,
    ) -> Iterator[SearchState]:
        """Attack each attempt; finished attempts come out as they finish.

        ``on_round(active)`` runs after each round of the search (for progress);
        ``screen(state)`` says, from its clean image, whether to attack an attempt.
        """
        return self.search.search(
            attempts, self.space, self.goal, self.constraints, on_round, screen
        )
