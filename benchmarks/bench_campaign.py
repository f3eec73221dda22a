"""Measure campaigns: the store's cost per finding, Ray's throughput with 1 and 2 workers,
and a campaign on the bundled emoji-sd killed 20 times.

    python benchmarks/bench_campaign.py [--parts overhead,ray,kills] [--no-write]

- overhead: seconds to record one finding (two 64×64 PNGs, δ, one transaction), over
  500 findings; bar: under 5 ms.
- ray: a CPU-bound campaign on emoji-sd (random-latent) with 1 and 2 Ray workers of one
  thread each, attempts per minute once the workers are loaded, and with loading; bar:
  2 workers ≥ 1.6 × 1 worker.
- kills: a campaign on emoji-sd with its default judges, SIGKILLed at 20 random moments and
  resumed each time, against one uninterrupted run: the same findings, bit for bit.

Writes the "Campaigns" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import machine, publish

from fissure.campaign import run_campaign
from fissure.campaign.config import campaign_from_dict
from fissure.campaign.kills import done_count, kill_repeatedly, outcome, store_problems
from fissure.campaign.ray_backend import connect
from fissure.results import Finding, ResultsStore

PARTS = ("overhead", "ray", "kills")


def store_overhead(folder: Path, findings: int = 500) -> list[float]:
    """Seconds per recorded finding (distinct images, so every blob is written)."""
    view = {"target": 0.5, "top": [["cat", 0.5]]}
    times = []
    with ResultsStore(folder) as store, store.campaign("overhead") as campaign:
        writer = campaign.attack("m", "sage-latent", {"attack": "sage-latent"})
        for seed in range(findings):
            images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(seed))
            finding = Finding(
                id=f"{seed:020d}", attack="sage-latent", model="m", prompt="a photo of a cat",
                target="cat", seed=seed, iterations=10, unet_evals=300, seconds=1.0,
                success=True, verified=True, clean_shows_target=True, kind="distorted",
                unrelated_class=None, typical=True, typicality={"chi_square_p": 0.5},
                delta_linf=0.1, delta_l2=1.0, surrogate_before=view, surrogate_after=view,
                verifier_before={"v": view}, verifier_after={"v": view},
                target_trace=[0.9] * 10,
            )  # fmt: skip
            started = time.perf_counter()
            writer.add(finding, images[0], images[1], torch.randn(8, 8, 8))
            times.append(time.perf_counter() - started)
    return times


THROUGHPUT = {
    "name": "throughput",
    "classes": ["dog", "cat", "pizza", "bicycle", "sunflower", "airplane", "red apple", "owl"],
    "seeds": "0-7",
    "attacks": [{"name": "random-latent", "steps": 10, "budget": 40, "batch_size": 4}],
}


def ray_throughput(workers: int, folder: Path) -> tuple[float, float, int]:
    """(attempts per minute once loaded, attempts per minute with loading, attempts)."""
    import ray

    connect(cpus=2)
    try:
        started = time.perf_counter()
        loaded: list[float] = []
        config = campaign_from_dict(THROUGHPUT)
        result = run_campaign(config, folder, backend="ray", workers=workers, threads=1,
                              progress=False, on_plan=lambda *_: loaded.append(time.perf_counter()))  # fmt: skip
        ended = time.perf_counter()
    finally:
        ray.shutdown()
    count = len(result.current)
    return 60 * count / (ended - loaded[0]), 60 * count / (ended - started), count


KILLED = """
name = "kills"
classes = ["dog", "cat", "red apple", "pizza", "bicycle", "airplane", "sunflower", "owl",
           "fox", "frog", "cactus", "banana", "rocket", "crown", "drum", "robot"]
seeds = "100-101"

[[attacks]]
name = "sage-latent"
max_iterations = 5
batch_size = 2

[[attacks]]
name = "random-latent"
budget = 150
batch_size = 2
"""


def kills(work: Path, count: int = 20) -> tuple[str, float, float]:
    """(verdict, seconds uninterrupted, seconds with kills and the final resume)."""
    config = work / "kills.toml"
    config.write_text(KILLED)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}

    def command(store: Path) -> list[str]:
        return [sys.executable, "-m", "fissure.cli", "campaign", "run", str(config),
                "--store", str(store), "--threads", "2"]  # fmt: skip

    started = time.perf_counter()
    subprocess.run(command(work / "whole"), env=env, check=True, capture_output=True)
    whole = time.perf_counter() - started
    started = time.perf_counter()
    log = kill_repeatedly(command(work / "killed"), work / "killed", count, seed=7, env=env)
    interrupted = done_count(work / "killed")
    subprocess.run(command(work / "killed"), env=env, check=True, capture_output=True)
    killed = time.perf_counter() - started
    expected, got = outcome(work / "whole"), outcome(work / "killed")
    problems = store_problems(work / "killed")
    same = expected == got and not problems
    verdict = (
        f"{'identical' if same else 'DIFFERENT'}: {len(got)} findings against {len(expected)} "
        f"uninterrupted ({interrupted} done when the last kill came; {len(log)} kills, "
        f"{sum(k.done_after > k.done_before for k in log)} of them after progress)"
        + (f"; problems: {problems}" if problems else "")
    )
    return verdict, whole, killed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help="Which measurements to run.")
    parser.add_argument("--work", type=Path, default=None, help="Folder for the stores.")
    parser.add_argument("--repeats", type=int, default=3, help="Ray runs of each size.")
    parser.add_argument("--no-write", dest="write", action="store_false")
    args = parser.parse_args()
    parts = args.parts.split(",")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-campaign-"))
    sections: dict[str, list[str]] = {}
    if "overhead" in parts:
        times = store_overhead(work / "overhead")
        median = statistics.median(times) * 1000
        sections["overhead"] = [
            f"- Store overhead per finding (two 64×64 noise PNGs and δ, each synced, then one "
            f"WAL transaction, synchronous=NORMAL), {len(times)} findings: median "
            f"{median:.2f} ms, 95th percentile "
            f"{sorted(times)[int(0.95 * len(times))] * 1000:.2f} ms "
            f"(bar 5 ms: {'met' if median < 5 else 'MISSED'}).",
        ]
    if "ray" in parts:
        runs = [
            (ray_throughput(1, work / f"ray-1-{r}"), ray_throughput(2, work / f"ray-2-{r}"))
            for r in range(args.repeats)
        ]  # interleaved: a busy spell of the machine touches both
        rows = [
            f"  | {r + 1} | {one[0]:.1f} ({one[1]:.1f}) | {two[0]:.1f} ({two[1]:.1f}) | "
            f"{two[0] / one[0]:.2f} ({two[1] / one[1]:.2f}) |"
            for r, (one, two) in enumerate(runs)
        ]
        ratio = statistics.median(two[0] / one[0] for one, two in runs)
        sections["ray"] = [
            f"- Ray on emoji-sd (random-latent, 10 steps, budget 40, batch 4; {runs[0][0][2]} "
            "attempts), a local cluster of 2 CPUs, one torch thread per worker: attempts per "
            "minute once the workers are loaded (with loading), repeated:",
            "",
            "  | run | 1 worker | 2 workers | ratio |",
            "  |---|---|---|---|",
            *rows,
            "",
            f"  Median: 2 workers give {ratio:.2f}× the attempts per minute of 1 "
            f"(bar 1.6×: {'met' if ratio >= 1.6 else 'MISSED'}).",
        ]
    if "kills" in parts:
        verdict, whole, killed = kills(work)
        sections["kills"] = [
            "- Kill and resume at full size (emoji-sd, default judges; sage-latent with 5 "
            "iterations and random-latent with a budget of 150, batches of 2 so that a kill "
            f"lands between findings, 16 classes × 2 seeds, two threads): {verdict}. Uninterrupted {whole:.0f} s; with 20 kills and the final "
            f"resume {killed:.0f} s.",
        ]
    for part, lines in sections.items():  # each part its own section: rerun one alone
        header = f"### Campaigns: {part}\n\n`python benchmarks/bench_campaign.py --parts {part}`"
        publish(
            f"campaigns-{part}",
            f"{header}; machine: {machine()}.\n\n" + "\n".join(lines),
            args.write,
        )


if __name__ == "__main__":
    main()
