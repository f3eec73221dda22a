"""run_campaign in this process: every item once, refused prompts recorded, reruns skip."""

from __future__ import annotations

import sys

import pytest

from fissure.campaign import run_campaign
from fissure.campaign.config import campaign_from_dict
from fissure.errors import FissureError
from fissure.results import ResultsStore

FAST = {"steps": 2, "budget": 4, "batch_size": 2}


def config(model, **changes):
    data = {
        "name": "small",
        "models": [str(model)],
        "prompts": ["a photo of a cat", "a cat and a dog", "a photo of " + "a very tall cat " * 30],
        "seeds": "0-1",
        "attacks": [{"name": "random-latent", **FAST}],
        **changes,
    }
    return campaign_from_dict(data)


def test_a_campaign_runs_every_item_once_and_records_what_it_refused(
    tiny_sd1_dir, tmp_path, one_thread
):
    told = []
    outcome = run_campaign(
        config(tiny_sd1_dir),
        tmp_path,
        progress=False,
        on_plan=lambda a, d: told.append((len(a), d)),
    )
    assert told == [(2, 0)]
    assert sorted((f.prompt, f.seed) for f in outcome.current) == [
        ("a photo of a cat", 0), ("a photo of a cat", 1),
    ]  # fmt: skip
    errors = sorted((f.prompt[:15], f.seed, f.error) for f in outcome.failures)
    assert [e[:2] for e in errors] == [("a cat and a dog", 0), ("a cat and a dog", 1),
                                       ("a photo of a ve", 0), ("a photo of a ve", 1)]  # fmt: skip
    assert "names several classes" in errors[0][2] and "tokens long" in errors[2][2]
    with ResultsStore(tmp_path) as store:
        (record,) = store.campaigns()
        assert record.config["prompts"][0] == "a photo of a cat"  # the config, to rerun it
        assert store.still_to_run("small") == 4  # the refused ones: a rerun tries them again
        recorded = store.connection.execute("SELECT key, recorded FROM attempts").fetchall()

    told.clear()
    again = run_campaign(config(tiny_sd1_dir), tmp_path, progress=False,
                         on_plan=lambda a, d: told.append((len(a), d)))  # fmt: skip
    assert told == [(2, 2)] and [f.id for f in again.current] == [f.id for f in outcome.current]
    with ResultsStore(tmp_path) as store:  # nothing redone: the finished rows are untouched
        now = dict(store.connection.execute("SELECT key, recorded FROM attempts").fetchall())
        assert all(
            now[key] == time for key, time in recorded if key in {f.id for f in again.current}
        )


def test_a_campaign_whose_every_prompt_is_refused_stops_before_making_a_store(
    tiny_sd1_dir, tmp_path
):
    with pytest.raises(FissureError, match="names several classes"):
        run_campaign(config(tiny_sd1_dir, prompts=["a cat and a dog"]), tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_the_ray_backend_without_ray_says_how_to_get_it(tiny_sd1_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(FissureError, match=r"pip install 'fissure\[ray\]'"):
        run_campaign(config(tiny_sd1_dir), tmp_path / "s", backend="ray")
    with pytest.raises(FissureError, match="unknown backend 'dask': use local or ray"):
        run_campaign(config(tiny_sd1_dir), tmp_path / "s", backend="dask")
