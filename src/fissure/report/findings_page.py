"""A static HTML page of findings: before/after pairs with their scores, to look at."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from jinja2 import Environment, PackageLoader

from fissure.atomic import atomic_write
from fissure.attacks.findings import Finding
from fissure.attacks.summary import summarize


def short_judge(name: str) -> str:
    """A judge's name as a caption shows it: "emoji/verifier" → "verifier"; others whole,
    since the last part of a folder ("runs/judges/verifier/final") names nothing."""
    return name.removeprefix("emoji/")


def write_findings_page(
    folder: str | Path, findings: Sequence[Finding], settings: dict, title: str
) -> Path:
    """Write ``index.html`` into the run folder (image paths are relative to it)."""
    environment = Environment(loader=PackageLoader("fissure.report", "templates"), autoescape=True)
    environment.filters["short_judge"] = short_judge
    ordered = sorted(findings, key=lambda f: (not f.verified_failure, f.prompt, f.seed))
    page = environment.get_template("findings.html.j2").render(
        title=title, settings=settings, summaries=summarize(findings), findings=ordered
    )
    path = Path(folder) / "index.html"
    with atomic_write(path) as partial:  # a page open in a browser is never half written
        partial.write_text(page, encoding="utf-8")
    return path
