"""What run_attack needs of the writer its findings go through, beyond test_store.py: files
on disk before their row, settings bound after opening checked on
resume, and a damaged or unbound finding refused rather than redone or mixed."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
import torch

from fissure.attacks import Attempt
from fissure.errors import FissureError
from fissure.results import AttackWriter, Finding, ResultsStore, attempt_key

SETTINGS = {"attack": "sage-latent", "step": 0.05}


def _finding(attempt: Attempt, key: str | None = None) -> Finding:
    """A verified failure of ``attempt``, keyed as campaign "campaign" on model "m" keys it."""
    view = {"target": 0.5, "top": [["cat", 0.5]]}
    key = key or attempt_key(
        "campaign", "m", "sage-latent", attempt.prompt, attempt.target, attempt.seed
    )
    return Finding(
        id=key, attack="sage-latent", model="m", prompt=attempt.prompt,
        target=attempt.target, seed=attempt.seed, iterations=3, unet_evals=90, seconds=1.0,
        success=True, verified=True, clean_shows_target=True, kind="distorted",
        unrelated_class=None, typical=True,
        typicality={"chi_square_p": 0.5, "ks_p": 0.5}, delta_linf=0.1, delta_l2=1.0,
        surrogate_before=view, surrogate_after=view, verifier_before={"v": view},
        verifier_after={"v": view},
    )  # fmt: skip


@contextmanager
def _writer(folder: Path, settings: dict = SETTINGS) -> Iterator[AttackWriter]:
    """sage-latent on model "m" in campaign "campaign", as one run opens it."""
    with ResultsStore(folder) as store, store.campaign("campaign") as campaign:
        yield campaign.attack("m", "sage-latent", settings)


def _add(writer: AttackWriter, seed: int) -> Attempt:
    attempt = Attempt("a photo of a cat", "cat", 1, seed)
    image = torch.rand(3, 8, 8)
    writer.add(_finding(attempt, writer.key(attempt)), image, image, torch.full((4, 2, 2), 0.25))
    return attempt


def _sql(folder: Path, statement: str) -> list[tuple]:
    """Run one statement on the store's database as any SQLite client would."""
    with closing(sqlite3.connect(folder / "results.db")) as db, db:
        return db.execute(statement).fetchall()


def test_a_findings_row_follows_its_files_onto_the_disk(tmp_path, monkeypatch):
    """Images and δ were written unsynced: after a power cut a committed row could name an
    empty PNG."""
    events = []
    original_fsync = os.fsync

    def record(fd):
        events.append(Path(os.readlink(f"/proc/self/fd/{fd}")).name)
        original_fsync(fd)

    monkeypatch.setattr(os, "fsync", record)
    with _writer(tmp_path) as writer:
        events.clear()  # the binding's transactions are not the finding's
        writer.store.connection.set_trace_callback(events.append)
        _add(writer, 0)
        (finding,) = writer.findings()
    inserted = next(i for i, e in enumerate(events) if e.startswith("INSERT OR REPLACE INTO"))
    commit = events.index("COMMIT", inserted)
    before_commit = {name.rsplit(".", 2)[0] for name in events[:commit]}  # x.png.<pid>.tmp: x.png
    assert {Path(file).name for file in finding.files.values()} <= before_commit


def test_a_verified_failure_is_a_column_sql_readers_filter_on(tmp_path):
    """What jq users read from findings.jsonl, sqlite3 or pandas users read without parsing
    each finding's JSON."""
    with _writer(tmp_path) as writer:
        _add(writer, 0)
    assert _sql(tmp_path, "SELECT seed, verified_failure FROM attempts") == [(0, 1)]


def test_findings_whose_binding_is_gone_are_refused(tmp_path):
    """Deleting run.json let a run of other settings resume the findings; a store that has
    findings but lost their binding refuses every setting rather than mix."""
    with _writer(tmp_path) as writer:
        _add(writer, 0)
    _sql(tmp_path, "DELETE FROM bindings")
    with (
        pytest.raises(FissureError, match="other settings \\(attack, step\\)"),
        _writer(tmp_path, {**SETTINGS, "step": 0.9}),
    ):
        pass


def test_a_damaged_row_is_an_error_not_an_attempt_to_attack_again(tmp_path):
    with _writer(tmp_path) as writer:
        attempt = _add(writer, 0)
        _add(writer, 1)
    _sql(
        tmp_path,
        """UPDATE attempts SET finding = replace(finding, '"seed"', '"seed_of_a_newer_schema"')
        WHERE seed = 0""",
    )
    with _writer(tmp_path) as reopened:
        assert reopened.has(attempt)
        with pytest.raises(FissureError, match="the record .* is not a finding"):
            reopened.findings()


def test_settings_bound_later_are_kept_and_checked_on_resume(tmp_path):
    """run_attack binds the verifiers after opening: the Python API resumed another
    verifier's findings without a word before."""
    verifiers = {"verifiers": ["emoji/verifier"], "verifier_weights": {"emoji/verifier": "0a"}}
    with _writer(tmp_path) as writer:
        _add(writer, 0)
        writer.bind(**verifiers)
    with ResultsStore(tmp_path) as store:
        assert store.bindings() == [{"campaign": "campaign", **SETTINGS, **verifiers, "model": "m"}]
    with _writer(tmp_path) as reopened:
        reopened.bind(**verifiers)  # the same run resumes
    with (
        _writer(tmp_path) as other,
        pytest.raises(FissureError, match="other settings \\(verifier_weights, verifiers\\)"),
    ):
        other.bind(verifiers=["emoji/clip"], verifier_weights={"emoji/clip": "1b"})


def test_a_refused_attack_leaves_the_campaign_writable(tmp_path):
    """The failed constructor kept its lock: in a notebook the corrected retry was refused
    as 'another run is writing'."""
    with _writer(tmp_path) as writer:
        _add(writer, 0)
    with ResultsStore(tmp_path) as store, store.campaign("campaign") as campaign:
        with pytest.raises(FissureError, match="other settings"):
            campaign.attack("m", "sage-latent", {**SETTINGS, "step": 0.1})
        assert campaign.attack("m", "sage-latent", SETTINGS).findings()  # the corrected retry
    with _writer(tmp_path):
        pass
