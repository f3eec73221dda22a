"""The findings page: rendered from the store's records and bindings only."""

from __future__ import annotations

from fissure.attacks import Attempt
from fissure.report.findings_page import render_findings_page

from ..results.test_writer import _finding

#: A one-attack campaign's binding, as the store gives it to the page.
BINDING = {"campaign": "sage-latent", "attack": "sage-latent", "model": "m"}


def test_findings_page_escapes_prompts():
    finding = _finding(Attempt("a <b>bold</b> cat & co", "cat", 0, 0))
    finding.files = {"before": "images/b.png", "after": "images/a.png", "delta": "d"}
    page = render_findings_page([finding], [BINDING], "title")
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt; cat &amp; co" in page


def test_findings_page_names_each_verifier_and_keeps_digests_out_of_the_header():
    """A folder verifier was captioned "final"; the header dumped the weights' digests."""
    finding = _finding(Attempt("a photo of a cat", "cat", 0, 0))
    view = finding.verifier_after["v"]
    finding.verifier_before = finding.verifier_after = {
        "emoji/verifier": view,
        "runs/judges/verifier/final": view,
    }
    finding.files = {"before": "b.png", "after": "a.png", "delta": "d"}
    binding = {**BINDING, "verifier_weights": {"emoji/verifier": "0123abcd"}}
    page = render_findings_page([finding], [binding], "title")
    assert "before: verifier: cat 50%; runs/judges/verifier/final: cat 50%" in page
    assert "0123abcd" not in page


def test_findings_page_marks_only_failures_the_attack_caused_as_verified():
    caused = _finding(Attempt("a photo of a cat", "cat", 0, 0))
    natural = _finding(Attempt("a photo of a cat", "cat", 0, 1))
    natural.clean_shows_target = False  # the verifiers never saw the cat: nothing was removed
    for finding in (caused, natural):
        finding.files = {"before": "b.png", "after": "a.png", "delta": "d"}
    page = render_findings_page([natural, caused], [BINDING], "title")
    assert page.count('class="card verified"') == 1
    assert page.count(">verified</span>") == 1 and page.count(">natural failure</span>") == 1
    assert page.index("seed 0") < page.index("seed 1")  # verified failures first
