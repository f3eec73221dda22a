"""The implosion sweep end to end on a tiny pipeline with the bundled judges: its points,
outputs, store metrics and resume."""

from __future__ import annotations

import json

import pytest

from fissure.errors import FissureError
from fissure.poison.finetune import FinetuneSettings
from fissure.poison.pairs import PoisonSettings
from fissure.poison.sweep import (
    CAMPAIGN,
    SweepSettings,
    record_in_store,
    run_sweep,
    write_outputs,
)
from fissure.results import ResultsStore

TINY = SweepSettings(
    concepts=(0, 1, 2),
    poisons=PoisonSettings(count=4),
    finetune=FinetuneSettings(steps=2, batch_size=2, warmup_steps=1, clean_scenes=8),
    seeds=1,
    sampling_steps=2,
    held_out=2,
)


@pytest.fixture(scope="module")
def swept(tiny_sd1_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    records = run_sweep(TINY, out, model=str(tiny_sd1_dir), progress=False)
    return out, records


def test_every_point_is_measured_on_the_same_unpoisoned_classes(swept):
    out, records = swept
    assert [r["concepts"] for r in records] == [0, 1, 2]
    assert [r["poisons"] for r in records] == [0, 4, 8]
    assert records[2]["pairs"][:1] == records[1]["pairs"]
    assert all(r["unpoisoned_accuracy"]["total"] == 2 for r in records)
    assert records[2]["poison_success"]["total"] == 2 and "poison_success" not in records[0]
    assert all((out / f"cp-{count}" / "model").is_dir() for count in (0, 1, 2))


def test_dirty_labels_make_the_training_data_harder_to_align(swept):
    _, records = swept
    ads = [r["ad"] for r in records]
    assert ads[0] < ads[1] < ads[2]


def test_outputs_and_store_metrics(swept):
    out, records = swept
    summary = write_outputs(records, out)
    assert set(summary["trends"]) == {"ad", "unpoisoned_accuracy", "unpoisoned_clip_score"}
    assert summary["trends"]["ad"]["rho"] == pytest.approx(1.0)
    for name in ("sweep.csv", "results.json", "curves.png", "grid.png"):
        assert (out / name).stat().st_size > 100
    assert len((out / "sweep.csv").read_text().splitlines()) == 4
    record_in_store(out, TINY, summary)
    with ResultsStore(out, readonly=True) as store:
        metrics = store.metrics(CAMPAIGN)
    assert metrics["cp=2/ad"][0] == pytest.approx(records[2]["ad"])
    assert metrics["cp=1/poison_success"][1]["total"] == 1


def test_a_rerun_resumes_finished_points_without_training(swept, tiny_sd1_dir, monkeypatch):
    out, records = swept

    def no_training(*args, **kwargs):
        raise AssertionError("a finished point trained again")

    monkeypatch.setattr("fissure.poison.sweep.finetune_unet", no_training)
    assert run_sweep(TINY, out, model=str(tiny_sd1_dir), progress=False) == json.loads(
        json.dumps(records)
    )


def test_a_folder_holding_another_sweep_is_refused(swept, tiny_sd1_dir):
    out, _ = swept
    other = SweepSettings(**{**TINY.__dict__, "seeds": 2})
    with pytest.raises(FissureError, match="other settings"):
        run_sweep(other, out, model=str(tiny_sd1_dir), progress=False)


def test_sweep_settings_refuse_what_cannot_be_run():
    with pytest.raises(FissureError, match="between 0 and 52"):
        SweepSettings(concepts=(0, 60))
    with pytest.raises(FissureError, match="unknown poison kind"):
        PoisonSettings(kind="clean-label")
    with pytest.raises(FissureError, match=r"\(0, 1\]"):
        PoisonSettings(epsilon=0)
