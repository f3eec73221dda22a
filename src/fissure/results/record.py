"""The finding record: everything about one attacked attempt, as every stage reads it.

Attacks make findings, the results store keeps them, reports and exports read them: the
record lives here, below all three, so a report never imports an attack.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field


@dataclass
class Finding:
    """An attack on one (prompt, target, seed) and every judgement of its outcome.

    ``id`` is the attempt's key in the results store (:func:`attempt_key`).
    ``success``: the surrogate's goal holds after the attack. ``verified``: the
    verifiers, which never entered the loss, agree the target is absent.
    ``clean_shows_target``: every verifier read the target first in the clean
    image; an attempt without it is a natural failure, not an attack success.
    ``unet_evals`` counts forward UNet evaluations per image plus each backward
    pass at its measured cost in forward evaluations (the Generator's ``BACKWARD_COST``
    a step, rounded to whole evaluations). ``files``: the before and after PNGs and δ, relative to
    the store's folder.
    """

    id: str
    attack: str
    model: str
    prompt: str
    target: str
    seed: int
    iterations: int
    unet_evals: int
    seconds: float
    success: bool
    verified: bool
    clean_shows_target: bool
    kind: str | None
    unrelated_class: str | None
    typical: bool
    typicality: dict
    delta_linf: float | None  # None for prompt attacks: the latent is the seed's own
    delta_l2: float | None
    surrogate_before: dict
    surrogate_after: dict
    verifier_before: dict
    verifier_after: dict
    files: dict[str, str] = field(default_factory=dict)
    target_trace: list[float] = field(default_factory=list)
    latent_seed: int | None = None
    """Random search: the seed of the fresh latent behind ``after`` (``fissure generate
    --seeds`` redraws it when the attack had no constraints); None for gradient attacks."""
    adversarial_prompt: str | None = None
    """Prompt attacks: the prompt the attack found (``prompt`` with words added), which made
    ``after`` from the seed's own latent; None for latent attacks."""
    perplexity: dict | None = None
    """Prompt attacks: the language model's perplexity of the clean and adversarial prompts."""
    token_effect: dict | None = None
    """Universal tokens: how little the token changes the prompt (``text_cosine``, of the
    text encoder's pooled embeddings with and without it) and the CLIP score of the
    images before and after against the prompt (``clip_before``, ``clip_after``)."""
    scores: dict | None = None
    """What the attack's search measured beyond every finding's fields (ATM: its hard
    draws, how many succeeded, the token error rate, the loss per step)."""

    @property
    def verified_failure(self) -> bool:
        """A failure the attack caused: the clean image showed the target, the attack met
        its goal on the surrogate, and the verifiers agree the target is gone."""
        return self.clean_shows_target and self.success and self.verified


def attempt_key(campaign: str, model: str, attack: str, prompt: str, target: str, seed: int) -> str:
    """The store's key of one campaign item: a hash of everything that names it.

    What else decides its outcome (the attack's settings, the weights, the verifiers) is
    bound to the campaign's (model, attack) once, and a change is refused rather than keyed:
    a resumed campaign never mixes two versions' findings.
    """
    item = json.dumps([campaign, model, attack, prompt, target, seed], ensure_ascii=False)
    return hashlib.sha256(item.encode()).hexdigest()[:20]
