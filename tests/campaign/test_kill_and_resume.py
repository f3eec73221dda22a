"""A campaign killed with SIGKILL at 20 random moments, resumed each time, ends with exactly
the findings of an uninterrupted run: same keys, same verdicts, same images, no duplicates.

Small judges (one surrogate, one verifier) keep each restart short; the full-size version,
on emoji-sd with its default judges, is benchmarks/bench_campaign.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fissure.campaign.kills import done_count, kill_repeatedly, outcome, store_problems

CAMPAIGN = """
name = "kill-test"
models = ["{model}"]
classes = ["cat", "red apple", "dog", "pizza", "bicycle", "sunflower"]
seeds = "0-3"
judges = ["emoji/resnet"]
verifiers = ["emoji/verifier"]

[[attacks]]
name = "sage-latent"
steps = 2
max_iterations = 2
batch_size = 1

[[attacks]]
name = "random-latent"
steps = 2
budget = 6
batch_size = 1
"""
ATTEMPTS = 6 * 4 * 2


def _command(config: Path, store: Path) -> list[str]:
    return [sys.executable, "-m", "fissure.cli", "campaign", "run", str(config),
            "--store", str(store), "--threads", "1"]  # fmt: skip


def test_a_campaign_killed_twenty_times_ends_as_an_uninterrupted_one(tiny_sd1_dir, tmp_path):
    config = tmp_path / "campaign.toml"
    config.write_text(CAMPAIGN.format(model=tiny_sd1_dir))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = subprocess.run(_command(config, tmp_path / "whole"), env=env, capture_output=True,
                           text=True, timeout=600)  # fmt: skip
    assert whole.returncode == 0, whole.stderr
    expected = outcome(tmp_path / "whole")
    assert len(expected) == ATTEMPTS and store_problems(tmp_path / "whole") == []

    store = tmp_path / "killed"
    log = kill_repeatedly(_command(config, store), store, kills=20, seed=20261207, env=env)
    assert done_count(store) < ATTEMPTS, f"the kills came too late to interrupt anything: {log}"
    resumed = subprocess.run(_command(config, store), env=env, capture_output=True, text=True,
                             timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert store_problems(store) == []
    assert outcome(store) == expected, log
