"""The findings folder: written one finding at a time, resumed, and safe against kills."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fissure.attacks import Attempt, Finding, FindingStore
from fissure.attacks.findings import attempt_id
from fissure.errors import FissureError

SETTINGS = {"attack": "sage-latent", "step": 0.05}


def _finding(attempt: Attempt) -> Finding:
    view = {"target": 0.5, "top": [["cat", 0.5]]}
    return Finding(
        id=attempt_id(attempt), attack="sage-latent", model="m", prompt=attempt.prompt,
        target=attempt.target, seed=attempt.seed, iterations=3, unet_evals=90, seconds=1.0,
        success=True, verified=True, clean_shows_target=True, kind="distorted",
        unrelated_class=None, typical=True,
        typicality={"chi_square_p": 0.5, "ks_p": 0.5}, delta_linf=0.1, delta_l2=1.0,
        surrogate_before=view, surrogate_after=view, verifier_before={"v": view},
        verifier_after={"v": view},
    )  # fmt: skip


def _add(store: FindingStore, seed: int) -> Attempt:
    attempt = Attempt("a photo of a cat", "cat", 1, seed)
    image = torch.rand(3, 8, 8)
    store.add(_finding(attempt), image, image, torch.full((4, 2, 2), 0.25))
    return attempt


def test_a_finding_is_written_with_its_images_and_delta(tmp_path):
    store = FindingStore(tmp_path, SETTINGS)
    attempt = _add(store, 0)
    (finding,) = store.findings()
    assert finding.seed == 0 and store.has(attempt)
    assert (tmp_path / finding.files["before"]).is_file()
    assert (tmp_path / finding.files["after"]).is_file()
    assert torch.equal(
        load_file(tmp_path / finding.files["delta"])["delta"], torch.full((4, 2, 2), 0.25)
    )
    assert json.loads((tmp_path / "run.json").read_text()) == SETTINGS
    line = json.loads(store.findings_file.read_text())  # what jq or pandas users read
    assert line["verified_failure"] is True and line["verified"] is True


def test_reopening_resumes_and_other_settings_are_refused(tmp_path):
    attempt = _add(FindingStore(tmp_path, SETTINGS), 0)
    with FindingStore(tmp_path, SETTINGS) as reopened:
        assert reopened.has(attempt)
        assert not reopened.has(Attempt("a photo of a cat", "cat", 1, 1))
    with pytest.raises(FissureError, match="other settings \\(step\\)"):
        FindingStore(tmp_path, {**SETTINGS, "step": 0.1})


def test_a_folder_without_findings_takes_new_settings(tmp_path):
    FindingStore(tmp_path, SETTINGS)  # e.g. a run that stopped on an error before any finding
    FindingStore(tmp_path, {**SETTINGS, "step": 0.1})
    assert json.loads((tmp_path / "run.json").read_text())["step"] == 0.1


def test_a_line_cut_by_a_kill_is_dropped_and_the_next_one_is_whole(tmp_path):
    with FindingStore(tmp_path, SETTINGS) as store:
        _add(store, 0)
        with open(store.findings_file, "a") as stream:
            stream.write('{"id": "cut-sho')
        assert [f.seed for f in store.findings()] == [0]  # a line being written is skipped
    reopened = FindingStore(tmp_path, SETTINGS)
    _add(reopened, 1)
    assert [f.seed for f in reopened.findings()] == [0, 1]


def test_a_kill_while_dropping_a_cut_line_loses_no_finding(tmp_path, monkeypatch):
    with FindingStore(tmp_path, SETTINGS) as store:
        _add(store, 0)
        with open(store.findings_file, "a") as stream:
            stream.write('{"id": "cut-sho')
    original_write_bytes = Path.write_bytes

    def killed_halfway(path, data):
        if not path.name.startswith("findings.jsonl"):
            return original_write_bytes(path, data)
        original_write_bytes(path, data[:10])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_bytes", killed_halfway)
    with pytest.raises(KeyboardInterrupt):
        FindingStore(tmp_path, SETTINGS)
    monkeypatch.undo()
    assert [f.seed for f in FindingStore(tmp_path, SETTINGS).findings()] == [0]


def test_a_findings_line_follows_its_files_onto_the_disk(tmp_path, monkeypatch):
    """Images and δ were written unsynced: after a power cut a synced line could name an
    empty PNG."""
    import os

    synced = []
    original_fsync = os.fsync

    def record(fd):
        synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")).name)
        original_fsync(fd)

    monkeypatch.setattr(os, "fsync", record)
    _add(FindingStore(tmp_path, SETTINGS), 0)
    line = synced.index("findings.jsonl")
    before_line = {name.rsplit(".", 2)[0] for name in synced[:line]}  # x.png.<pid>.tmp: x.png
    (finding,) = FindingStore(tmp_path, SETTINGS).findings()
    assert {Path(file).name for file in finding.files.values()} <= before_line


def test_a_failed_append_leaves_no_half_line(tmp_path, monkeypatch):
    """A full disk mid-line glued the next finding onto it: the folder was unreadable after."""
    import os

    store = FindingStore(tmp_path, SETTINGS)
    _add(store, 0)
    original_fsync = os.fsync

    def disk_full(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("findings.jsonl"):
            raise OSError(28, "No space left on device")
        original_fsync(fd)

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        _add(store, 1)
    monkeypatch.undo()
    _add(store, 2)
    lines = store.findings_file.read_text().splitlines()
    assert [json.loads(line)["seed"] for line in lines] == [0, 2]


@pytest.mark.parametrize("damage", ['{"att', "null", None])
def test_findings_without_readable_settings_are_refused(tmp_path, damage):
    """Deleting run.json let a run of other settings resume the findings; null crashed."""
    _add(FindingStore(tmp_path, SETTINGS), 0)
    if damage is None:
        (tmp_path / "run.json").unlink()
    else:
        (tmp_path / "run.json").write_text(damage)
    with pytest.raises(FissureError, match="run.json is (missing|not a JSON object).*restore it"):
        FindingStore(tmp_path, {**SETTINGS, "step": 0.9})


def test_a_damaged_line_is_an_error_not_an_attempt_to_attack_again(tmp_path):
    with FindingStore(tmp_path, SETTINGS) as store:
        _add(store, 0)
        _add(store, 1)
    lines = (tmp_path / "findings.jsonl").read_text().splitlines()
    lines[0] = lines[0].replace('"seed"', '"seed_of_a_newer_schema"')
    (tmp_path / "findings.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(FissureError, match="line 1 of .*findings.jsonl is not a finding"):
        FindingStore(tmp_path, SETTINGS)


def test_one_run_at_a_time_holds_a_folder(tmp_path):
    """Two runs into one --out attacked every attempt twice and counted both."""
    with FindingStore(tmp_path, SETTINGS) as store:
        with pytest.raises(FissureError, match="another run is writing"):
            FindingStore(tmp_path, SETTINGS)
        _add(store, 0)
    with FindingStore(tmp_path, SETTINGS) as reopened:  # closed: the next run resumes
        assert len(reopened.findings()) == 1


def test_an_attempt_recorded_twice_counts_once(tmp_path):
    with FindingStore(tmp_path, SETTINGS) as store:
        _add(store, 0)
        _add(store, 0)
        assert [f.seed for f in store.findings()] == [0]


def test_run_attack_binds_the_folder_to_its_model_and_verifiers(tmp_path):
    """The Python API resumed another model's findings without a word before."""
    with FindingStore(tmp_path, SETTINGS) as store:
        _add(store, 0)
        store.bind(model="emoji-sd", verifiers=["emoji/verifier"])
    recorded = json.loads((tmp_path / "run.json").read_text())
    assert recorded == {**SETTINGS, "model": "emoji-sd", "verifiers": ["emoji/verifier"]}
    with FindingStore(tmp_path, SETTINGS) as reopened:
        reopened.bind(model="emoji-sd", verifiers=["emoji/verifier"])  # the same run resumes
    with pytest.raises(FissureError, match="other settings \\(model, verifiers\\)"):
        FindingStore(tmp_path, SETTINGS).bind(model="other", verifiers=["emoji/clip"])


def test_a_refused_folder_is_not_left_locked(tmp_path):
    """The failed constructor kept its lock: in a notebook the corrected retry was refused
    as 'another run is writing'."""
    with FindingStore(tmp_path, SETTINGS) as store:
        _add(store, 0)
    with pytest.raises(FissureError, match="other settings"):
        FindingStore(tmp_path, {**SETTINGS, "step": 0.1})
    FindingStore(tmp_path, SETTINGS).close()


def test_a_setting_the_folder_never_recorded_is_refused_on_resume(tmp_path):
    """A folder of an older version, without 'dtype', resumed under any dtype before."""
    with FindingStore(tmp_path, SETTINGS) as store:
        _add(store, 0)
    with pytest.raises(FissureError, match="other settings \\(dtype\\)"):
        FindingStore(tmp_path, {**SETTINGS, "dtype": "bfloat16"})
