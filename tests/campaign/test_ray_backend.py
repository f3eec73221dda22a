"""The Ray backend on a local cluster of two workers that the test starts: the same findings
as in this process, written by the driver alone."""

from __future__ import annotations

import shutil

import pytest
import ray

from fissure.campaign import run_campaign
from fissure.campaign.config import campaign_from_dict
from fissure.campaign.ray_backend import connect
from fissure.errors import FissureError
from fissure.results import ResultsStore


@pytest.fixture
def two_worker_cluster():
    connect(cpus=2)
    yield
    ray.shutdown()


def verdicts(store) -> dict:
    with ResultsStore(store, readonly=True) as results:
        return {
            f.id: (f.prompt, f.seed, f.success, f.verified, f.clean_shows_target, f.iterations,
                   f.unet_evals, f.files["before"], f.files["after"])
            for f in results.findings()
        }  # fmt: skip


def test_two_ray_workers_find_what_one_process_finds(tiny_sd1_dir, tmp_path, two_worker_cluster):
    config = campaign_from_dict(
        {
            "name": "ray",
            "models": [str(tiny_sd1_dir)],
            "classes": ["cat", "dog", "pizza"],
            "seeds": "0-2",
            "judges": ["emoji/resnet"],
            "verifiers": ["emoji/verifier"],
            "attacks": [{"name": "random-latent", "steps": 2, "budget": 6, "batch_size": 2}],
        }
    )
    outcome = run_campaign(config, tmp_path / "ray", backend="ray", workers=2, threads=1,
                           progress=False)  # fmt: skip
    assert len(outcome.current) == 9 and outcome.failures == []
    with ResultsStore(tmp_path / "ray", readonly=True) as results:
        (binding,) = results.bindings("ray")
        assert binding["recipe"] == "random-latent" and binding["verifiers"] == ["emoji/verifier"]
    run_campaign(config, tmp_path / "local", threads=1, progress=False)
    assert verdicts(tmp_path / "ray") == verdicts(tmp_path / "local")


def test_a_cuda_campaign_on_a_cluster_without_gpus_is_refused(tiny_sd1_dir, tmp_path,
                                                              two_worker_cluster):  # fmt: skip
    config = campaign_from_dict({"name": "gpu", "models": [str(tiny_sd1_dir)], "classes": "cat",
                                 "device": "cuda", "attacks": [{"name": "random-latent"}]})  # fmt: skip
    with pytest.raises(FissureError, match="the Ray cluster has no GPU"):
        run_campaign(config, tmp_path / "s", backend="ray")


def test_a_worker_that_cannot_load_or_fit_is_one_line(tiny_sd1_dir, tmp_path, two_worker_cluster):
    """An actor's FissureError came back as a Ray traceback; three one-CPU actors on two
    CPUs waited forever."""
    data = {"name": "x", "classes": "cat", "attacks": [{"name": "random-latent"}],
            "judges": ["emoji/resnet"], "verifiers": ["emoji/verifier"]}  # fmt: skip
    broken = tmp_path / "broken-model"  # a pipeline folder whose weights do not load
    shutil.copytree(tiny_sd1_dir, broken)
    next((broken / "unet").glob("*.safetensors")).write_bytes(b"not weights")
    corrupt = campaign_from_dict({**data, "models": [str(broken)]})
    with pytest.raises(FissureError, match="broken-model") as error:
        run_campaign(corrupt, tmp_path / "s", backend="ray", workers=1, progress=False)
    assert "\n" not in str(error.value) and "Traceback" not in str(error.value)
    fits = campaign_from_dict({**data, "models": [str(tiny_sd1_dir)]})
    with pytest.raises(FissureError, match="CPUs for 1 threads each for 2 workers, not 3"):
        run_campaign(fits, tmp_path / "s", backend="ray", workers=3, threads=1)
