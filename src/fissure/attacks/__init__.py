"""Attacks: a search space, a goal, constraints and a search method, composed by recipes.

``sage_latent`` and the ``random_latent`` baseline are in :mod:`fissure.attacks.recipes`;
:func:`run_attack` runs one over many attempts into the results store (:mod:`fissure.results`).
"""

from fissure.attacks.attack import Attack
from fissure.attacks.constraints import Box
from fissure.attacks.goals import TargetAbsent
from fissure.attacks.recipes import ATTACKS, random_latent, sage_latent
from fissure.attacks.runner import run_attack
from fissure.attacks.search import GradientDescent, RandomSearch
from fissure.attacks.spaces import Attempt, LatentPerturbation
from fissure.attacks.targets import class_attempts, find_target, make_attempts
from fissure.attacks.typicality import typicality
from fissure.attacks.verdicts import Verifiers

__all__ = [
    "ATTACKS",
    "Attack",
    "Attempt",
    "Box",
    "LatentPerturbation",
    "RandomSearch",
    "GradientDescent",
    "TargetAbsent",
    "Verifiers",
    "class_attempts",
    "find_target",
    "make_attempts",
    "random_latent",
    "run_attack",
    "sage_latent",
    "typicality",
]
