"""Verifiers' verdicts, summaries and the findings page, with judges whose answers are fixed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fissure.attacks import Attempt, summarize
from fissure.attacks.findings import attempt_id
from fissure.attacks.verdicts import Verifiers, check_verifier_labels
from fissure.errors import FissureError
from fissure.images import as_saved, to_pil
from fissure.judges.base import Judge
from fissure.report.findings_page import write_findings_page

from .test_findings import _finding

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


def test_attempt_ids_differ_for_prompts_a_slug_would_merge():
    first = Attempt("a photo of a cat", "cat", 0, 3)
    second = Attempt("A photo of a cat!", "cat", 0, 3)
    assert attempt_id(first) != attempt_id(second)
    assert attempt_id(first) == attempt_id(Attempt("a photo of a cat", "cat", 0, 3))


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
    (summary,) = summarize([*findings, unfooled, missed])
    assert (summary.successes, summary.surrogate_missed) == (3, 1)  # not "fooled" by nothing
    (summary,) = summarize([*findings, unfooled])
    assert (summary.attempts, summary.attacked, summary.natural_failures) == (5, 4, 1)
    assert summary.verified == 2 and summary.verified_asr == pytest.approx(2 / 4)
    assert summary.kinds == {"distorted": 1, "unrelated": 1}
    assert summary.typical == 1
    assert not unfooled.verified_failure


def test_findings_page_escapes_prompts(tmp_path):
    finding = _finding(Attempt("a <b>bold</b> cat & co", "cat", 0, 0))
    finding.files = {"before": "images/b.png", "after": "images/a.png", "delta": "d"}
    page = write_findings_page(tmp_path, [finding], {"model": "m"}, "title").read_text()
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt; cat &amp; co" in page


def test_findings_page_names_each_verifier_and_keeps_digests_out_of_the_header(tmp_path):
    """A folder verifier was captioned "final"; the header dumped the weights' digests."""
    finding = _finding(Attempt("a photo of a cat", "cat", 0, 0))
    view = finding.verifier_after["v"]
    finding.verifier_before = finding.verifier_after = {
        "emoji/verifier": view,
        "runs/judges/verifier/final": view,
    }
    finding.files = {"before": "b.png", "after": "a.png", "delta": "d"}
    settings = {"model": "m", "verifier_weights": {"emoji/verifier": "0123abcd"}}
    page = write_findings_page(tmp_path, [finding], settings, "title").read_text()
    assert "before: verifier: cat 50%; runs/judges/verifier/final: cat 50%" in page
    assert "0123abcd" not in page


def test_findings_page_marks_only_failures_the_attack_caused_as_verified(tmp_path):
    caused = _finding(Attempt("a photo of a cat", "cat", 0, 0))
    natural = _finding(Attempt("a photo of a cat", "cat", 0, 1))
    natural.clean_shows_target = False  # the verifiers never saw the cat: nothing was removed
    for finding in (caused, natural):
        finding.files = {"before": "b.png", "after": "a.png", "delta": "d"}
    page = write_findings_page(tmp_path, [natural, caused], {"model": "m"}, "title").read_text()
    assert page.count('class="card verified"') == 1
    assert page.count(">verified</span>") == 1 and page.count(">natural failure</span>") == 1
    assert page.index("seed 0") < page.index("seed 1")  # verified failures first


def test_no_verifier_is_refused():
    """With no judge, every surrogate success counted as a verified failure."""
    with pytest.raises(FissureError, match="no verifier"):
        Verifiers({})
