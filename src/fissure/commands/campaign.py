"""`fissure campaign run|status|export|import`: many attacks, one resumable results store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fissure.commands.outcome import run_and_report
from fissure.console import counted, quiet_libraries, user_errors

campaign_app = typer.Typer(
    help="Campaigns: models × attacks × prompts × seeds in one results store; kill and "
    "rerun to resume, export to JSONL or Parquet.",
    no_args_is_help=True,
)

Store = Annotated[Path, typer.Option(help="Results store folder (results.db, blobs/, index.html).")]
OptionalStore = Annotated[
    Path | None,
    typer.Option(help="Results store folder (default: runs/<campaign name>)."),
]
CampaignName = Annotated[
    str | None, typer.Option("--campaign", help="Only this campaign of the store.")
]


@campaign_app.command("run")
@user_errors
def run(
    config: Annotated[Path, typer.Argument(help="The campaign file (TOML; see the README).")],
    store: OptionalStore = None,
    backend: Annotated[
        str, typer.Option(help="local (this process) or ray (actors on a Ray cluster).")
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join ('auto': this machine's); default: start one."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Ray actors (default: the cluster's CPUs over --threads)."),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="Torch threads per worker (Ray default: 1).")
    ] = None,
) -> None:
    """Run a campaign: attempts already in the store are skipped, failures recorded."""
    from fissure.campaign import load_campaign

    campaign = load_campaign(config)
    folder = store or Path("runs") / campaign.name
    quiet_libraries()
    run_and_report(
        campaign, folder, f"campaign {campaign.name}", campaign.name,
        backend=backend, address=address, workers=workers, threads=threads,
    )  # fmt: skip


@campaign_app.command("status")
@user_errors
def status(store: Store, campaign: CampaignName = None) -> None:
    """What a store holds: per campaign, attack and model, attempts done, failed, verified."""
    from rich.console import Console
    from rich.table import Table

    from fissure.errors import FissureError
    from fissure.results import ResultsStore

    with ResultsStore(store, readonly=True) as results:
        campaigns = [c for c in results.campaigns() if campaign in (None, c.name)]
        if not campaigns:
            raise FissureError(
                f"{store} holds no campaign" + (f" {campaign!r}" if campaign else "")
            )
        table = Table(title=f"campaigns in {store}")
        for column in ("campaign", "model", "attack", "done", "failed", "verified"):
            table.add_column(
                column, justify="left" if column in ("campaign", "model", "attack") else "right"
            )
        failures = []
        for record in campaigns:
            rows = results.counts(record.name)
            for row in rows:
                table.add_row(record.name, row["model"], row["attack"], str(row["done"]),
                              str(row["failed"]), str(row["verified"]))  # fmt: skip
            left = results.still_to_run(record.name)
            table.add_row(record.name, "", "[dim]still to run[/dim]", str(left), "", "")
            failures += results.failures(record.name)
        Console().print(table)
        for failure in failures[:10]:
            typer.echo(
                f"failed: {failure.attack} {failure.prompt!r} seed {failure.seed}: {failure.error}"
            )
        if len(failures) > 10:
            typer.echo(f"... and {counted(len(failures) - 10, 'more failure')}")


@campaign_app.command("export")
@user_errors
def export(
    store: Store,
    out: Annotated[Path, typer.Option(help="A .jsonl or .parquet file: one row per attempt.")],
    campaign: CampaignName = None,
) -> None:
    """Export every attempt (finished or failed) to JSON Lines or Parquet."""
    from fissure.results import ResultsStore
    from fissure.results.export import export as export_rows

    with ResultsStore(store, readonly=True) as results:
        rows = export_rows(results, out, campaign)
    typer.echo(f"wrote {counted(rows, 'attempt')} to {out}")


@campaign_app.command("import")
@user_errors
def import_run(
    run_folder: Annotated[
        Path, typer.Argument(help="A run folder of an earlier fissure (findings.jsonl).")
    ],
    store: Store,
    campaign: Annotated[
        str | None,
        typer.Option(help="Campaign to file it under (default: its attack's name)."),
    ] = None,
) -> None:
    """Import an earlier fissure's run folder (findings.jsonl, images, deltas) into a store."""
    from fissure.results import ResultsStore
    from fissure.results.legacy import import_run_folder

    with ResultsStore(store) as results:
        name, count = import_run_folder(run_folder, results, campaign)
    typer.echo(f"imported {counted(count, 'finding')} into campaign {name!r} of {store}")
