"""What every command that runs attacks shows at the end: the summary table, the page, the
failures, and what Ctrl-C kept."""

from __future__ import annotations

from pathlib import Path

import typer

from fissure.console import counted


def run_and_report(config, folder: Path, title: str, campaign: str | None = None, **options):
    """Run ``config`` into the store at ``folder`` (``options`` go to ``run_campaign``), then
    write the page (of ``campaign``, or of the whole store) and print the summary."""
    from fissure.campaign import run_campaign
    from fissure.report.findings_page import write_findings_page
    from fissure.results import ResultsStore

    try:
        outcome = run_campaign(config, folder, **options)
    except KeyboardInterrupt:
        with ResultsStore(folder) as store:
            kept = len(store.findings(campaign))
            write_findings_page(store, title, campaign)
        typer.secho(
            f"interrupted: {counted(kept, 'finding')} kept in {folder}; "
            "run the same command to resume",
            err=True,
            fg=typer.colors.YELLOW,
        )
        raise typer.Exit(code=130) from None
    with ResultsStore(folder) as store:
        page = write_findings_page(store, title, campaign)  # earlier runs' findings too
        everything = store.findings(campaign)
    findings = outcome.current
    print_summary(findings)
    earlier = len(everything) - len(findings)
    also = f" (and {counted(earlier, 'finding')} of earlier runs)" if earlier else ""
    failed = outcome.failures
    if failed:
        typer.secho(
            f"{counted(len(failed), 'attempt')} failed, e.g. {failed[0].error}: see "
            f"`fissure campaign status --store {folder}`; a rerun retries them (a prompt "
            "refused for its words fails again until it is changed)",
            err=True,
            fg=typer.colors.YELLOW,
        )
    typer.echo(f"{counted(len(findings), 'finding')}{also} in {folder / 'results.db'}; open {page}")
    return outcome


def print_summary(findings: list) -> None:
    """One column per attack, one row per measure: fits a narrow terminal."""
    from rich.console import Console
    from rich.table import Table

    from fissure.results import summarize

    summaries = summarize(findings)
    table = Table(title="findings")
    table.add_column("measure")
    for s in summaries:
        table.add_column(s.attack, justify="right")
    rows = {
        "attempts": lambda s: str(s.attempts),
        "natural failures (target not first before)": lambda s: str(s.natural_failures),
        "attacked": lambda s: str(s.attacked),
        "surrogate fooled (by the attack)": lambda s: str(s.successes),
        "surrogate missed it before any step": lambda s: str(s.surrogate_missed),
        "verified": lambda s: str(s.verified),
        "verified ASR": lambda s: "–" if s.verified_asr is None else f"{s.verified_asr:.1%}",
        "mean iterations": lambda s: f"{s.mean_iterations:.1f}",
        "median UNet evals per verified": lambda s: str(s.median_unet_evals_verified or "-"),
        "distorted / unrelated": lambda s: (
            f"{s.kinds.get('distorted', 0)} / {s.kinds.get('unrelated', 0)}"
        ),
        "typical (of verified)": lambda s: f"{s.typical} / {s.verified}",
        "median perplexity, found / clean (verified)": lambda s: (
            "-"
            if s.median_perplexity_verified is None
            else "{:.1f} / {:.1f}".format(*s.median_perplexity_verified)
        ),
    }
    for name, cell in rows.items():
        table.add_row(name, *(cell(s) for s in summaries))
    Console().print(table)
