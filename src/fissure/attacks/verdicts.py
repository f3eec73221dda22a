"""Verdicts: does a judge that never entered the loss agree the target is gone, and how?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from fissure.errors import FissureError
from fissure.images import as_saved
from fissure.judges.base import Judge

Kind = Literal["distorted", "unrelated"]


def judge_view(labels: list[str], probabilities: torch.Tensor, target: str, top: int = 3) -> dict:
    """What one judge says about one image: the target's probability and its top classes."""
    values, indices = probabilities.topk(min(top, len(labels)))
    return {
        "target": round(float(probabilities[labels.index(target)]), 4),
        "top": [[labels[i], round(float(v), 4)] for v, i in zip(values, indices, strict=True)],
    }


@dataclass(frozen=True)
class Verdict:
    """The verifiers' reading of an attempt's images before and after the attack.

    ``clean_shows_target``: every verifier reads the target first in the clean image, and
    not below ``absent_below`` (else the clean image already counts as target-free).
    ``verified``: every verifier gives the target under ``absent_below`` after, and
    another class first.

    ``kind`` follows SAGE's two latent properties: ``unrelated`` when every
    verifier is confident in the same other class, ``distorted`` otherwise; None
    while the verifiers still see the target.
    """

    clean_shows_target: bool
    verified: bool
    kind: Kind | None
    unrelated_class: str | None
    before: dict[str, dict]
    after: dict[str, dict]


def check_verifier_labels(judges: Mapping[str, Judge], targets: Sequence[str]) -> None:
    """A clear error, before any compute, when a verifier cannot name a target."""
    for name, judge in judges.items():
        for target in dict.fromkeys(targets):
            if target not in judge.labels:
                raise FissureError(
                    f"the verifier {name} has no class {target!r}: choose verifiers whose "
                    "labels include the targets (--verifier; in Python, a CLIP verifier takes "
                    "the surrogate's: load_judge(name, labels=surrogate.labels))"
                )
            prompts = getattr(judge, "prompts", None)  # CLIP: one prompt per label
            column = judge.labels.index(target)
            if prompts is not None and prompts.count(prompts[column]) > 1:
                raise FissureError(
                    f"the verifier {name} prompts {prompts[column]!r} for {target!r} and for "
                    "another class of the same name: CLIP cannot tell them apart; attack "
                    "another class or verify with a classifier"
                )


Reading = dict[str, torch.Tensor]
"""Each verifier's class probabilities for one image, by verifier name."""


class Verifiers:
    """Held-out judges that decide whether a failure is real: all must agree.

    Each verifier looks the target up in its own labels, so judges with different
    label lists (an emoji classifier, CLIP over the same names) can vote together.
    Every image is read on its own (a batch of one): CPU kernels may change a score's
    last bits with the batch shape, and the screen's reading of a clean image must be
    the verdict's. And it is read as saved, 8 bits per channel: the PNGs in the findings
    folder, read again, give the verdict it records.
    """

    def __init__(
        self, judges: Mapping[str, Judge], absent_below: float = 0.1, confident: float = 0.5
    ) -> None:
        if not judges:
            raise FissureError("no verifier: a failure needs at least one judge outside the loss")
        self.judges = dict(judges)
        self.absent_below = absent_below
        self.confident = confident

    def settings(self) -> dict[str, object]:
        """What decides a verdict besides the judges' weights, for a run folder to bind."""
        return dict(
            verifiers=sorted(self.judges),
            verifier_absent_below=self.absent_below,  # the goal's absent_below is its own
            confident=self.confident,
            verifiers_read="8-bit images",
        )

    @torch.no_grad()
    def read(self, image: torch.Tensor) -> Reading:
        """Every verifier's probabilities for one 3×H×W image."""
        return {
            name: judge(as_saved(image)[None].to(judge.mean.device))[0].cpu()
            for name, judge in self.judges.items()
        }

    def shows_target(self, clean: Reading, target: str) -> bool:
        """Whether every verifier reads ``target`` first in a clean image's reading, and not
        under ``absent_below``: what an attack needs of a clean image to have something to remove."""
        return all(
            self._reads_first(clean[name], judge, target) for name, judge in self.judges.items()
        )

    def _reads_first(self, probabilities: torch.Tensor, judge: Judge, target: str) -> bool:
        column = judge.labels.index(target)
        return (
            int(probabilities.argmax()) == column
            and float(probabilities[column]) >= self.absent_below
        )

    def _absent(self, probabilities: torch.Tensor, judge: Judge, target: str) -> bool:
        """Under ``absent_below`` and not first: among 1,000 flat classes 9% can still lead."""
        column = judge.labels.index(target)
        return (
            float(probabilities[column]) < self.absent_below
            and int(probabilities.argmax()) != column
        )

    def __call__(
        self,
        before: torch.Tensor,
        after: torch.Tensor,
        target: str,
        clean: Reading | None = None,
    ) -> Verdict:
        """Verdict for one attempt; ``before`` and ``after`` are 3×H×W images in [0, 1].

        ``clean``: the reading of ``before`` already made (by the screen), not made again.
        """
        clean = clean if clean is not None else self.read(before)
        attacked = self.read(after)
        other_best: list[tuple[float, str]] = []
        for name, judge in self.judges.items():
            others = attacked[name].clone()
            others[judge.labels.index(target)] = -1
            other_best.append((float(others.max()), judge.labels[int(others.argmax())]))
        verified = all(
            self._absent(attacked[name], judge, target) for name, judge in self.judges.items()
        )
        kind, unrelated = None, None
        if verified:
            agreed = {label for _, label in other_best}
            confident = all(probability >= self.confident for probability, _ in other_best)
            if confident and len(agreed) == 1:
                kind, unrelated = "unrelated", agreed.pop()
            else:
                kind = "distorted"
        return Verdict(
            clean_shows_target=self.shows_target(clean, target),
            verified=verified,
            kind=kind,
            unrelated_class=unrelated,
            before={n: judge_view(j.labels, clean[n], target) for n, j in self.judges.items()},
            after={n: judge_view(j.labels, attacked[n], target) for n, j in self.judges.items()},
        )

    def appears(self, after: torch.Tensor, target: str, clean: Reading) -> Verdict:
        """A targeted verdict: every verifier reads ``target`` first in ``after`` (a universal
        token's success); ``clean_shows_target`` says whether ``clean`` showed it already."""
        attacked = self.read(after)
        return Verdict(
            clean_shows_target=self.shows_target(clean, target),
            verified=self.shows_target(attacked, target),
            kind=None,
            unrelated_class=None,
            before={n: judge_view(j.labels, clean[n], target) for n, j in self.judges.items()},
            after={n: judge_view(j.labels, attacked[n], target) for n, j in self.judges.items()},
        )
