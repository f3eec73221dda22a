"""The results store: findings written whole, resumed, bound to their settings, migrated,
and safe against a full disk, a read-only database and a second writer."""

from __future__ import annotations

import errno
import json
import sqlite3
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fissure.errors import FissureError
from fissure.results import Finding, ResultsStore
from fissure.results.legacy import import_run_folder
from fissure.results.schema import VERSION, migrate

SETTINGS = {"attack": "sage-latent", "step": 0.05}


class Item:
    def __init__(self, seed: int, prompt: str = "a photo of a cat", target: str = "cat") -> None:
        self.prompt, self.target, self.seed = prompt, target, seed


def make_finding(key: str, item: Item, verified: bool = True) -> Finding:
    view = {"target": 0.5, "top": [["cat", 0.5]]}
    return Finding(
        id=key, attack="sage-latent", model="m", prompt=item.prompt, target=item.target,
        seed=item.seed, iterations=3, unet_evals=90, seconds=1.0, success=True,
        verified=verified, clean_shows_target=True, kind="distorted" if verified else None,
        unrelated_class=None, typical=True, typicality={"chi_square_p": 0.5, "ks_p": 0.5},
        delta_linf=0.1, delta_l2=1.0, surrogate_before=view, surrogate_after=view,
        verifier_before={"v": view}, verifier_after={"v": view},
    )  # fmt: skip


def add(writer, seed: int, image: torch.Tensor | None = None) -> Item:
    item = Item(seed)
    image = (
        torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(seed))
        if image is None
        else image
    )
    writer.add(make_finding(writer.key(item), item), image, image, torch.full((4, 2, 2), 0.25))
    return item


def open_attack(folder: Path, settings=SETTINGS, campaign: str = "c"):
    store = ResultsStore(folder)
    writer = store.campaign(campaign, {"name": campaign})
    return store, writer, writer.attack("m", "sage-latent", settings)


def test_a_finding_is_written_with_its_images_delta_and_category(tmp_path):
    store, campaign, writer = open_attack(tmp_path)
    item = add(writer, 0)
    (finding,) = store.findings("c")
    assert finding.seed == 0 and writer.has(item) and finding.id == writer.key(item)
    assert (tmp_path / finding.files["before"]).is_file()
    assert finding.files["before"] == finding.files["after"]  # the same bytes are kept once
    delta = load_file(tmp_path / finding.files["delta"])["delta"]
    assert torch.equal(delta, torch.full((4, 2, 2), 0.25))
    assert store.tags(finding.id) == [(finding.id, "distorted", "verifiers")]
    (binding,) = store.bindings("c")
    assert binding == {**SETTINGS, "campaign": "c", "model": "m"}
    mode = store.connection.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_reopening_resumes_and_other_settings_are_refused(tmp_path):
    store, campaign, writer = open_attack(tmp_path)
    item = add(writer, 0)
    campaign.close()
    with ResultsStore(tmp_path) as again, again.campaign("c") as reopened:
        assert reopened.attack("m", "sage-latent", SETTINGS).has(item)
        assert not reopened.attack("m", "sage-latent", SETTINGS).has(Item(1))
        with pytest.raises(FissureError, match="other settings \\(step\\)"):
            reopened.attack("m", "sage-latent", {**SETTINGS, "step": 0.1})
        with pytest.raises(FissureError, match="other settings \\(dtype\\)"):  # never recorded
            reopened.attack("m", "sage-latent", {**SETTINGS, "dtype": "bfloat16"})
        other = reopened.attack("m", "random-latent", {"attack": "random-latent"})
        assert not other.has(item)  # another attack of the campaign: its own attempts


def test_a_binding_without_findings_takes_new_settings(tmp_path):
    store, campaign, _ = open_attack(tmp_path)
    campaign.attack("m", "sage-latent", {**SETTINGS, "step": 0.1})
    assert store.bindings("c")[0]["step"] == 0.1


def test_one_run_at_a_time_writes_a_campaign(tmp_path):
    """Two runs of one campaign would attack every attempt twice."""
    store, campaign, writer = open_attack(tmp_path)
    with pytest.raises(FissureError, match="another run is writing campaign 'c'"):
        ResultsStore(tmp_path).campaign("c")
    ResultsStore(tmp_path).campaign("other").close()  # other campaigns share the store
    campaign.close()
    ResultsStore(tmp_path).campaign("c").close()  # closed: the next run resumes


def test_a_refused_attack_leaves_the_campaign_free_after_close(tmp_path):
    store, campaign, writer = open_attack(tmp_path)
    add(writer, 0)
    campaign.close()
    with ResultsStore(tmp_path).campaign("c") as reopened, pytest.raises(FissureError):
        reopened.attack("m", "sage-latent", {**SETTINGS, "step": 0.2})
    ResultsStore(tmp_path).campaign("c").close()


def test_an_attempt_recorded_twice_counts_once_and_a_failure_is_replaced(tmp_path):
    store, _, writer = open_attack(tmp_path)
    writer.fail(Item(0), RuntimeError("out of memory\nin a long trace"))
    (failure,) = store.failures("c")
    assert failure.error == "RuntimeError: out of memory" and not writer.has(Item(0))
    add(writer, 0)
    add(writer, 0)
    assert [f.seed for f in store.findings("c")] == [0] and store.failures("c") == []
    writer.fail(Item(0), "late error")  # a finished attempt is never turned back into a failure
    assert store.failures("c") == [] and store.counts("c")[0]["done"] == 1


def test_a_damaged_record_is_an_error_not_an_attempt_to_redo(tmp_path):
    store, _, writer = open_attack(tmp_path)
    add(writer, 0)
    store.connection.execute("UPDATE attempts SET finding = '{\"seed_of_a_newer_schema\": 1}'")
    with pytest.raises(FissureError, match="is not a finding"):
        store.findings()


def test_an_older_store_is_migrated_in_place(tmp_path):
    """A version-1 store (before tags, labels, metrics) opens, keeps its rows, gains tables."""
    connection = sqlite3.connect(tmp_path / "results.db", isolation_level=None)
    migrate(connection, tmp_path, upto=1)
    connection.execute("INSERT INTO campaigns VALUES ('old', '{}', 0, 0)")
    row = ("k", "old", "m", "a", "p", "cat", 0, "failed", None, None, "boom", 0)
    connection.execute(f"INSERT INTO attempts VALUES ({', '.join('?' * len(row))})", row)
    connection.close()
    with ResultsStore(tmp_path) as store:
        assert store.connection.execute("PRAGMA user_version").fetchone()[0] == VERSION == 2
        assert [f.error for f in store.failures("old")] == ["boom"]
        store.tag("k", "distorted", "reviewer")
        store.add_label("k", "ana", shows_prompt=False, category="distorted")
        store.put_metric("old", "verified_asr", 0.25, {"n": 20})
        assert store.tags("k") == [("k", "distorted", "reviewer")]
        assert store.labels("k")[0]["shows_prompt"] == 0
        assert store.metrics("old") == {"verified_asr": (0.25, {"n": 20})}


def test_a_newer_store_or_another_file_is_refused(tmp_path):
    ResultsStore(tmp_path / "new").close()
    connection = sqlite3.connect(tmp_path / "new" / "results.db")
    connection.execute(f"PRAGMA user_version = {VERSION + 1}")
    connection.close()
    with pytest.raises(FissureError, match="written by a newer fissure"):
        ResultsStore(tmp_path / "new")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "results.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(FissureError, match="not a readable results store"):
        ResultsStore(tmp_path / "junk")


def test_a_full_database_is_one_line_and_keeps_every_row_whole(tmp_path):
    """SQLite's own "database or disk is full", as on a full disk: the transaction rolls
    back, earlier findings stay, and once there is room the same attempt is written."""
    store, _, writer = open_attack(tmp_path)
    add(writer, 0)
    pages = store.connection.execute("PRAGMA page_count").fetchone()[0]
    store.connection.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(FissureError, match="is full: free some space and run the same command"):
        for seed in range(1, 200):  # each row is small: fill the last page first
            add(writer, seed)
    assert store.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    kept = store.findings("c")
    assert all(f.files and f.seed == i for i, f in enumerate(kept))
    store.connection.execute(f"PRAGMA max_page_count = {pages * 100}")
    add(writer, 500)
    assert store.findings("c")[-1].seed == 500


def test_a_full_disk_while_writing_images_records_nothing(tmp_path, monkeypatch):
    store, _, writer = open_attack(tmp_path)

    def no_space(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", no_space)
    with pytest.raises(FissureError, match="is full"):
        add(writer, 0)
    monkeypatch.undo()
    assert store.findings("c") == [] and not writer.has(Item(0))


def test_a_read_only_database_is_one_line(tmp_path):
    store, _, writer = open_attack(tmp_path)
    store.connection.execute("PRAGMA query_only = ON")  # SQLite answers as for a read-only file
    with pytest.raises(FissureError, match="cannot write to the results store .* \\(read-only\\)"):
        add(writer, 0)


def test_a_store_reads_while_a_campaign_writes(tmp_path):
    store, _, writer = open_attack(tmp_path)
    add(writer, 0)
    with ResultsStore(tmp_path, readonly=True) as reader:
        assert len(reader.findings("c")) == 1
        add(writer, 1)
        assert len(reader.findings("c")) == 2
        with pytest.raises(FissureError, match="read-only"):
            reader.campaign("c")


def _old_run_folder(folder: Path) -> dict:
    """A run folder as fissure wrote it before the store: run.json, findings.jsonl, files."""
    (folder / "images").mkdir(parents=True)
    (folder / "deltas").mkdir()
    settings = {**SETTINGS, "model": "m"}
    (folder / "run.json").write_text(json.dumps(settings))
    lines = []
    for seed in (0, 1):
        finding = make_finding(f"a-photo-of-a-cat-1234-seed{seed}", Item(seed))
        finding.files = {
            "before": f"images/{finding.id}-before.png",
            "after": f"images/{finding.id}-after.png",
            "delta": f"deltas/{finding.id}.safetensors",
        }
        for name in finding.files.values():
            (folder / name).write_bytes(f"{name} bytes".encode())
        record = {**finding.__dict__, "verified_failure": True}
        lines.append(json.dumps(record))
    (folder / "findings.jsonl").write_text("\n".join(lines) + '\n{"id": "cut-by-a-k')
    return settings


def test_an_old_run_folder_imports_and_resumes_as_its_attacks_campaign(tmp_path):
    settings = _old_run_folder(tmp_path / "old")
    with ResultsStore(tmp_path / "store") as store:
        assert import_run_folder(tmp_path / "old", store) == ("sage-latent", 2)
        findings = store.findings("sage-latent")
        assert [f.seed for f in findings] == [0, 1]
        before = tmp_path / "store" / findings[0].files["before"]
        assert before.read_bytes() == b"images/a-photo-of-a-cat-1234-seed0-before.png bytes"
        with store.campaign("sage-latent") as campaign:
            writer = campaign.attack("m", "sage-latent", settings)
            assert writer.has(Item(0)) and writer.has(Item(1)) and not writer.has(Item(2))
        assert import_run_folder(tmp_path / "old", store)[1] == 2  # twice: nothing doubled
        assert len(store.findings()) == 2
