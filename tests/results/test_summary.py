"""The numbers a reader wants first from a store's findings."""

from __future__ import annotations

import pytest

from fissure.attacks import Attempt
from fissure.results import summarize

from .test_writer import _finding


def test_summary_counts_natural_failures_apart():
    attempts = [Attempt("a photo of a cat", "cat", 0, seed) for seed in range(4)]
    findings = [_finding(attempt) for attempt in attempts]
    findings[1].verified, findings[1].kind = False, None
    findings[2].clean_shows_target = False
    findings[3].kind, findings[3].typical = "unrelated", False
    unfooled = _finding(Attempt("a photo of a cat", "cat", 0, 4))
    unfooled.success = False  # the budget ran out; the verifiers happen to miss the cat
    missed = _finding(Attempt("a photo of a cat", "cat", 0, 5))
    missed.iterations, missed.verified = 0, False  # the surrogate never read the cat
    drawn = _finding(Attempt("a photo of a cat and a", "cat", 0, 6))
    drawn.iterations = 0  # a random baseline's draw: no step, another prompt
    drawn.adversarial_prompt = "a photo of a cat and a bird"
    (summary,) = summarize([*findings, unfooled, missed, drawn])
    assert (summary.successes, summary.surrogate_missed) == (4, 1)  # not "fooled" by nothing
    (summary,) = summarize([*findings, unfooled])
    assert (summary.attempts, summary.attacked, summary.natural_failures) == (5, 4, 1)
    assert summary.verified == 2 and summary.verified_asr == pytest.approx(2 / 4)
    assert summary.kinds == {"distorted": 1, "unrelated": 1}
    assert summary.typical == 1
    assert not unfooled.verified_failure
