"""A store's attempts as one table, for pandas, DuckDB or jq: JSON Lines or Parquet.

One row per attempt, finished or failed: its campaign and key, status and error, and the
finding's fields (nested ones as objects in JSONL, as JSON text in Parquet, whose columns
need one type).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from fissure.atomic import atomic_write
from fissure.errors import FissureError
from fissure.results.store import ResultsStore

FORMATS = ("jsonl", "parquet")


def attempt_rows(store: ResultsStore, campaign: str | None = None) -> list[dict]:
    rows: list[dict] = []
    for finding in store.findings(campaign):
        rows.append(
            {"key": finding.id, "status": "done", "error": None,
             **asdict(finding), "verified_failure": finding.verified_failure}
        )  # fmt: skip
    for failure in store.failures(campaign):
        rows.append({"status": "failed", **asdict(failure)})
    campaigns = {row["key"]: row["campaign"] for row in _campaign_of_keys(store)}
    return [{"campaign": campaigns[row["key"]], **row} for row in rows]


def _campaign_of_keys(store: ResultsStore) -> list:
    return list(store.connection.execute("SELECT key, campaign FROM attempts"))


def export(store: ResultsStore, out: str | Path, campaign: str | None = None) -> int:
    """Write the attempts (of ``campaign``) to ``out``, whose suffix (.jsonl or .parquet)
    names the format; returns the number of rows."""
    out = Path(out)
    form = out.suffix.removeprefix(".")
    if form not in FORMATS:
        raise FissureError(f"cannot export to {out.name}: name a .jsonl or .parquet file")
    if campaign is not None and campaign not in {c.name for c in store.campaigns()}:
        known = ", ".join(c.name for c in store.campaigns()) or "none"
        raise FissureError(f"{store.folder} holds no campaign {campaign!r} (it holds: {known})")
    rows = attempt_rows(store, campaign)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as partial:
        if form == "jsonl":
            partial.write_text("".join(json.dumps(row) + "\n" for row in rows))
        else:
            _write_parquet(rows, partial)
    return len(rows)


def _write_parquet(rows: list[dict], path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise FissureError(
            "Parquet export needs pyarrow: pip install 'fissure[parquet]' (or export to .jsonl)"
        ) from None
    flat = [
        {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()}
        for row in rows
    ]
    columns = list(dict.fromkeys(column for row in flat for column in row))
    table = pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in flat])
    pq.write_table(table, path)
