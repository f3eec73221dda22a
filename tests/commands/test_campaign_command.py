"""`fissure campaign run|status|export|import` as a user types them."""

from __future__ import annotations

import json
import sys

import pyarrow.parquet as pq
from typer.testing import CliRunner

from fissure.cli import app

runner = CliRunner()

CAMPAIGN = """
name = "cats"
models = ["{model}"]
prompts = ["a photo of a cat", "a cat and a dog"]
seeds = "0-1"
judges = ["emoji/resnet"]
verifiers = ["emoji/verifier"]

[[attacks]]
name = "random-latent"
steps = 2
budget = 4
batch_size = 2
"""


def invoke(*arguments: str):
    return runner.invoke(app, list(arguments), terminal_width=200)


def test_run_status_export_a_campaign(tiny_sd1_dir, tmp_path):
    config = tmp_path / "cats.toml"
    config.write_text(CAMPAIGN.format(model=tiny_sd1_dir))
    store = tmp_path / "store"
    ran = invoke("campaign", "run", str(config), "--store", str(store))
    assert ran.exit_code == 0, ran.output
    assert f"2 findings in {store / 'results.db'}" in ran.output
    assert "2 attempts failed" in ran.output and (store / "index.html").is_file()

    status = invoke("campaign", "status", "--store", str(store))
    assert status.exit_code == 0, status.output
    assert "random-latent" in status.output and "names several classes" in status.output
    assert "failed: random-latent 'a cat and a dog' seed 0" in status.output

    out = tmp_path / "cats.jsonl"
    exported = invoke("campaign", "export", "--store", str(store), "--out", str(out))
    assert exported.exit_code == 0 and "wrote 4 attempts" in exported.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(row["status"] for row in rows) == ["done", "done", "failed", "failed"]
    assert {row["campaign"] for row in rows} == {"cats"}
    table = pq.read_table(
        tmp_path / "cats.parquet"
        if invoke("campaign", "export", "--store", str(store), "--out",
                  str(tmp_path / "cats.parquet")).exit_code == 0
        else None
    ).to_pylist()  # fmt: skip
    assert sorted(row["key"] for row in table) == sorted(row["key"] for row in rows)
    done = next(row for row in table if row["status"] == "done")
    assert json.loads(done["verifier_after"])["emoji/verifier"]["top"]  # nested as JSON text


def test_campaign_mistakes_are_lines_that_say_what_to_do(tiny_sd1_dir, tmp_path, monkeypatch):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nclasses = "cat"\n[[attacks]]\nname = "sage"\n[[attacks]]\n'
                   'name = "random-latent"\nbudget = "many"\n')  # fmt: skip
    result = invoke("campaign", "run", str(bad), "--store", str(tmp_path / "s"))
    assert result.exit_code == 2
    assert "attacks[0]: unknown attack 'sage'" in result.output
    assert "attacks[1] (random-latent):" in result.output
    assert not (tmp_path / "s").exists()

    missing = invoke("campaign", "status", "--store", str(tmp_path / "nowhere"))
    assert missing.exit_code == 2 and "holds no results store" in missing.output
    config = tmp_path / "cats.toml"
    config.write_text(CAMPAIGN.format(model=tiny_sd1_dir))
    monkeypatch.setitem(sys.modules, "ray", None)
    ray = invoke("campaign", "run", str(config), "--store", str(tmp_path / "s"), "--backend", "ray")
    assert ray.exit_code == 2 and "pip install 'fissure[ray]'" in ray.output
    wrong = invoke("campaign", "export", "--store", str(tmp_path / "nowhere"), "--out", "x.csv")
    assert wrong.exit_code == 2


def test_an_old_run_folder_is_imported_and_attack_resumes_it(tiny_sd1_dir, tmp_path):
    """A findings.jsonl folder of fissure before the store: `fissure attack --out` imports it
    and resumes it, with nothing attacked twice."""
    from fissure.results import ResultsStore

    out = tmp_path / "old"
    arguments = ["attack", "random-latent", "-m", str(tiny_sd1_dir), "-p", "a photo of a cat",
                 "--seeds", "0-1", "--steps", "2", "--budget", "4", "--batch-size", "2",
                 "--judge", "emoji/resnet", "--verifier", "emoji/verifier", "--out", str(out)]  # fmt: skip
    assert invoke(*arguments).exit_code == 0
    with ResultsStore(out) as store:  # write the folder as the earlier fissure did
        (settings,) = store.bindings()
        findings = store.findings()
    (out / "images").mkdir()
    lines = []
    for finding in findings:
        for role, path in finding.files.items():
            old = f"images/{finding.seed}-{role}{'.png' if role != 'delta' else '.safetensors'}"
            (out / old).write_bytes((out / path).read_bytes())
            finding.files[role] = old
        lines.append(json.dumps({**finding.__dict__, "id": f"old-{finding.seed}"}))
    settings = {k: v for k, v in settings.items() if k not in ("campaign", "recipe")}  # as then
    (out / "run.json").write_text(json.dumps(settings))
    (out / "findings.jsonl").write_text("\n".join(lines) + "\n")
    for leftover in ("results.db", "results.db-wal", "results.db-shm"):
        (out / leftover).unlink(missing_ok=True)
    (out / "images" / "1-delta.safetensors").rename(out / "moved")
    broken = invoke(*arguments)
    assert broken.exit_code == 2 and "1-delta.safetensors is missing" in broken.output
    (out / "moved").rename(out / "images" / "1-delta.safetensors")

    resumed = invoke(*arguments[:-4], "--seeds", "0-2", *arguments[-4:])
    assert resumed.exit_code == 0, resumed.output
    assert "imported 2 findings" in resumed.output
    assert "resuming: 2 of them are already in" in resumed.output
    with ResultsStore(out) as store:
        assert sorted(f.seed for f in store.findings()) == [0, 1, 2]
    again = invoke(*arguments)  # imported once: the marker stops a second import
    assert again.exit_code == 0 and "imported" not in again.output
