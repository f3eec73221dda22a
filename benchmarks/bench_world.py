"""Measure how fast the emoji world makes captions and rendered scenes.

    python benchmarks/bench_world.py [--n 100000]

Runs on one CPU core (pinned where the OS allows), prints scenes per second and
the machine it ran on, and writes the "World" section of BENCHMARKS.md. The
target: 100,000 rendered scenes in under two minutes on one core.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

from common import machine, publish

from fissure.world import EMOJI_SETS, SceneDataset, sample_scene

TARGET_SECONDS = 120.0


def per_second(count: int, work: Callable[[int], object]) -> float:
    start = time.perf_counter()
    for seed in range(count):
        work(seed)
    return count / (time.perf_counter() - start)


def warm_up() -> None:
    """Load every atlas and the noise field before the clock starts."""
    for emoji_set in EMOJI_SETS:
        sample_scene(0, emoji_set=emoji_set).image.load()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="Scenes to render.")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    warm_up()
    captions = per_second(args.n, sample_scene)
    rendered = per_second(args.n, lambda seed: sample_scene(seed).image)
    dataset = SceneDataset(args.n)
    tensors = per_second(args.n // 10, dataset.__getitem__)
    seconds = args.n / rendered
    verdict = "meets" if seconds * 100_000 / args.n < TARGET_SECONDS else "MISSES"
    lines = [
        f"| captions only (scene specs) | {captions:,.0f} |",
        f"| rendered scenes (PIL image) | {rendered:,.0f} |",
        f"| dataset items (tensors + labels) | {tensors:,.0f} |",
    ]
    text = "\n".join(
        [
            "## World",
            "",
            "`python benchmarks/bench_world.py` — one CPU core, "
            f"{args.n:,} scenes; machine: {machine(threads=1)}.",
            "",
            "| what | per second |",
            "|---|---|",
            *lines,
            "",
            f"{args.n:,} rendered scenes took {seconds:.1f} s: {verdict} the target of "
            f"100,000 in {TARGET_SECONDS:.0f} s.",
            "",
        ]
    )
    publish("world", text)


if __name__ == "__main__":
    main()
