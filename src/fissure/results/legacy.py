"""Run folders of earlier fissure versions (``run.json``, ``findings.jsonl``, ``images/``,
``deltas/``) into the results store, so nothing found before the store is lost.

Each finding keeps its record and files and gets the key a campaign run would give it: a
folder imported as the campaign its attack names resumes under ``fissure attack --out``.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from fissure.errors import FissureError
from fissure.results.blobs import put_blob
from fissure.results.record import Finding
from fissure.results.store import ResultsStore

FINDINGS = "findings.jsonl"
SETTINGS = "run.json"
IMPORTED = "findings.jsonl.imported"


def is_run_folder(folder: Path) -> bool:
    return (folder / FINDINGS).is_file()


def needs_import(folder: Path) -> bool:
    """A run folder of an earlier fissure whose findings are not all in a store yet."""
    return is_run_folder(folder) and not (folder / IMPORTED).is_file()


def read_run_folder(folder: Path) -> tuple[dict, list[Finding]]:
    """The folder's settings and findings (the last record of each attempt; a last line a
    kill cut short is skipped). A damaged line is an error: skipping it would lose it."""
    try:
        settings = json.loads((folder / SETTINGS).read_text())
    except (OSError, json.JSONDecodeError):
        settings = None
    if not isinstance(settings, dict):
        raise FissureError(
            f"{folder / SETTINGS} is missing or not a JSON object, and it holds the findings' "
            "settings: restore it from the run that made them"
        )
    names = {f.name for f in fields(Finding)}
    records: dict[str, Finding] = {}
    lines = (folder / FINDINGS).read_text().split("\n")[:-1]  # the last piece: empty or cut
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
            finding = Finding(**{k: v for k, v in record.items() if k in names})
        except (json.JSONDecodeError, TypeError, AttributeError) as error:
            raise FissureError(
                f"line {number} of {folder / FINDINGS} is not a finding ({error}): "
                "repair or remove that line and import again"
            ) from None
        records[finding.id] = finding
    return settings, list(records.values())


def import_run_folder(
    folder: str | Path, store: ResultsStore, campaign: str | None = None
) -> tuple[str, int]:
    """Import a run folder's findings into ``store`` as campaign ``campaign`` (default: the
    attack's name); returns the campaign and how many findings it holds now.

    Importing again is harmless (the same keys, the same blobs); once every finding is in,
    ``findings.jsonl.imported`` marks the folder so ``fissure attack`` does not redo it.
    """
    folder = Path(folder)
    if not is_run_folder(folder):
        raise FissureError(f"{folder} holds no {FINDINGS}: nothing to import")
    settings, findings = read_run_folder(folder)
    missing = [f"{folder / file}" for f in findings for file in f.files.values()
               if not (folder / file).is_file()]  # fmt: skip
    if missing:
        raise FissureError(
            f"{missing[0]} is missing ({len(missing)} files in all) and a finding of "
            f"{folder / FINDINGS} names it: restore it, or remove that finding's line"
        )
    attack = str(settings.get("attack") or (findings[0].attack if findings else "attack"))
    settings.setdefault("recipe", attack)  # what campaigns bind today: the same run resumes
    campaign = campaign or attack
    model = str(settings.get("model", findings[0].model if findings else "unknown"))
    config = {"imported_from": str(folder.resolve()), "attacks": [{"name": attack}]}
    with store.campaign(campaign, config) as writer:
        attack_writer = writer.attack(model, attack, settings)
        for finding in findings:
            finding.files = {
                role: put_blob(store.folder, (folder / file).read_bytes(), Path(file).suffix)
                for role, file in finding.files.items()
            }
            finding.id = attack_writer.key(finding)
            attack_writer.record(finding)
    (folder / IMPORTED).write_text(f"imported into campaign {campaign!r} of {store.folder}\n")
    return campaign, len(findings)
