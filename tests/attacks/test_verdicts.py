"""Verifiers' verdicts, with judges whose answers are fixed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fissure.attacks.verdicts import Verifiers, check_verifier_labels
from fissure.errors import FissureError
from fissure.images import as_saved, to_pil
from fissure.judges.base import Judge
from fissure.results import attempt_key

LABELS = ["cat", "dog", "fox"]


BEFORE, AFTER = torch.zeros(3, 8, 8), torch.ones(3, 8, 8)


class FixedJudge(Judge):
    """Says ``before`` for a dark image (:data:`BEFORE`) and ``after`` for a light one."""

    def __init__(self, before: list[float], after: list[float]) -> None:
        super().__init__(LABELS, input_size=8)
        self.rows = torch.tensor([before, after]).log()

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.rows[(images.mean(dim=(1, 2, 3)) > 0.5).long()]


def _verdict(*judges: FixedJudge):
    verifiers = Verifiers({f"v{i}": judge for i, judge in enumerate(judges)})
    return verifiers(BEFORE, AFTER, "cat")


def test_unrelated_needs_every_verifier_confident_in_the_same_class():
    dog = FixedJudge([0.9, 0.05, 0.05], [0.02, 0.9, 0.08])
    also_dog = FixedJudge([0.8, 0.1, 0.1], [0.05, 0.6, 0.35])
    fox = FixedJudge([0.8, 0.1, 0.1], [0.05, 0.15, 0.8])
    verdict = _verdict(dog, also_dog)
    assert verdict.clean_shows_target and verdict.verified
    assert (verdict.kind, verdict.unrelated_class) == ("unrelated", "dog")
    assert _verdict(dog, fox).kind == "distorted"  # they disagree on what is there
    spread = FixedJudge([0.8, 0.1, 0.1], [0.05, 0.5, 0.45])
    assert _verdict(spread).kind == "unrelated"
    assert _verdict(FixedJudge([0.8, 0.1, 0.1], [0.05, 0.49, 0.46])).kind == "distorted"


def test_verified_needs_every_verifier_and_natural_failures_are_marked():
    gone = FixedJudge([0.9, 0.05, 0.05], [0.05, 0.9, 0.05])
    still_there = FixedJudge([0.9, 0.05, 0.05], [0.3, 0.6, 0.1])
    verdict = _verdict(gone, still_there)
    assert not verdict.verified and verdict.kind is None
    natural = _verdict(FixedJudge([0.05, 0.9, 0.05], [0.05, 0.9, 0.05]), gone)
    assert not natural.clean_shows_target and natural.verified


def test_a_clean_image_shows_the_target_only_where_every_verifier_reads_it_first():
    """A cat at 33% behind a dog at 34% was counted as shown, so attacked, before."""
    unclear = FixedJudge([0.33, 0.34, 0.33], [0.05, 0.9, 0.05])
    assert not _verdict(unclear).clean_shows_target
    first = FixedJudge([0.4, 0.3, 0.3], [0.05, 0.9, 0.05])
    assert _verdict(first).clean_shows_target and not _verdict(first, unclear).clean_shows_target


def test_a_clean_target_already_under_the_threshold_is_a_natural_failure():
    """Read first at 9% among many classes, and 'absent' at under 10%: it was counted as an
    attack's verified failure with no perturbation at all."""
    row = [0.09] + [0.91 / 11] * 11  # the cat first, but under absent_below
    many = FixedJudge(row, row)
    many.labels = ["cat", *(f"class{i}" for i in range(11))]
    verdict = Verifiers({"v": many}, absent_below=0.1)(BEFORE, AFTER, "cat")
    assert not verdict.clean_shows_target
    assert not verdict.verified  # still first: not gone, however flat the vote


def test_the_screens_reading_is_the_verdicts():
    """The screen read the clean image alone and the verdict in a pair: at a boundary they
    could disagree; now the verdict takes the screen's reading and reads nothing twice."""
    judge = FixedJudge([0.9, 0.05, 0.05], [0.05, 0.9, 0.05])
    verifiers = Verifiers({"v": judge})
    clean = verifiers.read(BEFORE)
    assert verifiers.shows_target(clean, "cat")
    unclear = {"v": torch.tensor([0.3, 0.4, 0.3])}  # as if the screen had read this
    verdict = verifiers(BEFORE, AFTER, "cat", clean=unclear)
    assert not verdict.clean_shows_target and verdict.before["v"]["target"] == 0.3


def test_a_verdict_is_on_the_image_as_saved(tmp_path):
    """Verifiers read float images, the findings folder keeps 8-bit PNGs: a score near a
    boundary could flip between the verdict and a user's second look at the PNG."""

    class Threshold(FixedJudge):
        def logits(self, images: torch.Tensor) -> torch.Tensor:
            return self.rows[(images.mean(dim=(1, 2, 3)) > 0.499).long()]

    judge = Threshold([0.9, 0.05, 0.05], [0.05, 0.9, 0.05])
    verifiers = Verifiers({"v": judge})
    image = torch.full((3, 8, 8), 0.4995)  # above 0.499 as floats, 127/255 once saved
    assert judge(image[None]).argmax() == 1
    path = tmp_path / "image.png"
    to_pil(image).save(path)
    reloaded = torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32) / 255)
    assert torch.equal(as_saved(image), reloaded.permute(2, 0, 1))
    assert verifiers.read(image)["v"].argmax() == 0
    assert torch.equal(verifiers.read(image)["v"], verifiers.read(reloaded.permute(2, 0, 1))["v"])
    assert verifiers.settings()["verifiers_read"] == "8-bit images"
    half = torch.rand(3, 8, 8).bfloat16()  # an attack in bfloat16: its PNG levels are float32
    to_pil(half).save(path)
    reloaded = torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32) / 255)
    assert torch.equal(as_saved(half), reloaded.permute(2, 0, 1))


def test_verifier_labels_are_checked_before_any_compute():
    with pytest.raises(FissureError, match="the verifier v has no class 'owl'"):
        check_verifier_labels({"v": FixedJudge([1, 0, 0], [1, 0, 0])}, ["cat", "owl"])


def test_attempt_keys_differ_for_prompts_a_slug_would_merge():
    def key(prompt: str) -> str:
        return attempt_key("campaign", "m", "sage-latent", prompt, "cat", 3)

    assert key("a photo of a cat") != key("A photo of a cat!")
    assert key("a photo of a cat") == key("a photo of a cat")


def test_no_verifier_is_refused():
    """With no judge, every surrogate success counted as a verified failure."""
    with pytest.raises(FissureError, match="no verifier"):
        Verifiers({})
