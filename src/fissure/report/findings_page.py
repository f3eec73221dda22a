"""A static HTML page of a results store's findings: before/after pairs with their scores.

It reads the store only (:mod:`fissure.results`), never an attack.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from jinja2 import Environment, PackageLoader

from fissure.atomic import atomic_write
from fissure.results import Finding, ResultsStore, summarize

#: Settings the page's header names apart, or leaves out (weights' digests say nothing to a reader).
HEADER_APART = ("campaign", "model", "surrogate", "verifiers", "attack", "verifier_weights")


def short_judge(name: str) -> str:
    """A judge's name as a caption shows it: "emoji/verifier" → "verifier"; others whole,
    since the last part of a folder ("runs/judges/verifier/final") names nothing."""
    return name.removeprefix("emoji/")


def render_findings_page(findings: Sequence[Finding], bindings: Sequence[dict], title: str) -> str:
    """The page's HTML: one header line per (campaign, model, attack), a summary table, and
    a card per finding, verified failures first (image paths relative to the store)."""
    environment = Environment(loader=PackageLoader("fissure.report", "templates"), autoescape=True)
    environment.filters["short_judge"] = short_judge
    ordered = sorted(findings, key=lambda f: (not f.verified_failure, f.prompt, f.seed))
    return environment.get_template("findings.html.j2").render(
        title=title,
        bindings=bindings,
        apart=HEADER_APART,
        summaries=summarize(findings),
        findings=ordered,
    )


def write_findings_page(store: ResultsStore, title: str, campaign: str | None = None) -> Path:
    """Write ``index.html`` into the store's folder: every finding (of ``campaign``)."""
    page = render_findings_page(store.findings(campaign), store.bindings(campaign), title)
    path = store.folder / "index.html"
    with atomic_write(path) as partial:  # a page open in a browser is never half written
        partial.write_text(page, encoding="utf-8")
    return path
