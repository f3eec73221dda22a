"""The numbers a reader wants first from a run of findings."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from fissure.results.record import Finding


@dataclass(frozen=True)
class Summary:
    """Counts and rates of one attack's findings.

    Rates are over the *attacked* attempts: those whose clean image every verifier
    read the target in first. Attempts without it are natural failures, counted
    apart. ``successes`` counts the surrogate fooled by at least one step;
    ``surrogate_missed`` the attacked attempts it missed the target in before any
    (the verifiers read it; nothing to attack). ``verified`` counts
    :attr:`Finding.verified_failure`.
    """

    attack: str
    attempts: int
    attacked: int
    natural_failures: int
    successes: int
    surrogate_missed: int
    verified: int
    kinds: dict[str, int]
    typical: int
    mean_iterations: float
    median_unet_evals_verified: float | None
    median_perplexity_verified: tuple[float, float] | None = None
    """Prompt attacks: the median perplexity of the verified prompts found, and of their
    clean prompts."""

    @property
    def verified_asr(self) -> float | None:
        """Verified failures per attacked attempt; None when every attempt was a natural failure."""
        return self.verified / self.attacked if self.attacked else None


def summarize(findings: Sequence[Finding]) -> list[Summary]:
    """One summary per attack present in ``findings``, in order of appearance."""
    summaries = []
    for attack in dict.fromkeys(f.attack for f in findings):
        mine = [f for f in findings if f.attack == attack]
        attacked = [f for f in mine if f.clean_shows_target]
        verified = [f for f in attacked if f.verified_failure]
        summaries.append(
            Summary(
                attack=attack,
                attempts=len(mine),
                attacked=len(attacked),
                natural_failures=len(mine) - len(attacked),
                successes=sum(f.success and not _at_start(f) for f in attacked),
                surrogate_missed=sum(f.success and _at_start(f) for f in attacked),
                verified=len(verified),
                kinds=dict(Counter(f.kind for f in verified)),
                typical=sum(f.typical for f in verified),
                mean_iterations=statistics.fmean(f.iterations for f in attacked)
                if attacked
                else 0.0,
                median_unet_evals_verified=(
                    statistics.median(f.unet_evals for f in verified) if verified else None
                ),
                median_perplexity_verified=_median_perplexity(verified),
            )
        )
    return summaries


def _at_start(finding: Finding) -> bool:
    """Whether the outcome is the attempt's own input: no step taken, the prompt unchanged."""
    return finding.iterations == 0 and finding.adversarial_prompt in (None, finding.prompt)


def _median_perplexity(verified: Sequence[Finding]) -> tuple[float, float] | None:
    scored = [f.perplexity for f in verified if f.perplexity]
    if not scored:
        return None
    return (
        statistics.median(p["adversarial"] for p in scored),
        statistics.median(p["clean"] for p in scored),
    )
