"""Poison success at C_P = 1: dirty-label pairs against Nightshade's poisons, by count.

    python benchmarks/bench_poison.py [--dirty 50,200 --nightshade 50 --seeds 24]

For each poison kind and count, one sweep point at C_P = 1 (the sweep's first pair,
its defaults otherwise: 3,000 clean scenes, 500 steps of batch 32 at 1e-3 from the
shipped UNet): poison success (generations of "a photo of a A", ``--seeds`` held-out
seeds, read as B by emoji/verifier), A still read as A, the unpoisoned classes' accuracy
(the first ``--held-out`` of them), and the minutes spent. One-sided Fisher exact tests
of Nightshade against dirty-label poisons at each count. Each configuration is a sweep
folder under ``--work`` (a killed benchmark resumes). Writes the "Poisoning" section of
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import fisher_greater, machine, publish

from fissure.console import quiet_libraries
from fissure.poison.pairs import PoisonSettings
from fissure.poison.sweep import SweepSettings, run_sweep
from fissure.statistics import wilson_interval


def rate(measure: dict) -> str:
    low, high = wilson_interval(measure["hits"], measure["total"])
    return f"{measure['rate']:.0%} ({measure['hits']}/{measure['total']}, {low:.0%}–{high:.0%})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dirty", default="50,200", help="Dirty-label counts per concept.")
    parser.add_argument("--nightshade", default="50", help="Nightshade counts per concept.")
    parser.add_argument("--seeds", type=int, default=24)
    parser.add_argument("--held-out", type=int, default=10)
    parser.add_argument("--work", type=Path, default=Path("runs/bench-poison"))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    quiet_libraries()
    configurations = [("dirty-label", int(c)) for c in args.dirty.split(",") if c] + [
        ("nightshade", int(c)) for c in args.nightshade.split(",") if c
    ]
    results = {}
    for kind, count in configurations:
        settings = SweepSettings(
            concepts=(1,),
            poisons=PoisonSettings(kind=kind, count=count),
            seeds=args.seeds,
            held_out=args.held_out,
        )
        folder = args.work / f"{kind}-{count}"
        (record,) = run_sweep(settings, folder, cache=args.work / "cache")
        results[kind, count] = record
    ((source, target),) = next(iter(results.values()))["pairs"]
    lines = [
        "## Poisoning",
        "",
        f"`python benchmarks/bench_poison.py --dirty {args.dirty} --nightshade {args.nightshade} "
        f"--seeds {args.seeds} --held-out {args.held_out}` on {machine()}.",
        "",
        f"C_P = 1 ({source} → {target}), fine-tuned from the shipped emoji-sd with the sweep's "
        "defaults; poison success = generations of the source read as the target by "
        "emoji/verifier (95% Wilson intervals).",
        "",
        "| poisons | count | poison success | source still read as source | unpoisoned accuracy | minutes |",
        "|---|---|---|---|---|---|",
    ]
    for (kind, count), record in results.items():
        lines.append(
            f"| {kind} | {count} | {rate(record['poison_success'])} | "
            f"{rate(record['poisoned_accuracy'])} | {rate(record['unpoisoned_accuracy'])} | "
            f"{record['seconds'] / 60:.1f} |"
        )
    lines.append("")
    for (kind, count), record in results.items():
        if kind != "nightshade":
            continue
        for (other, other_count), baseline in results.items():
            if other == "dirty-label":
                shade, dirty = record["poison_success"], baseline["poison_success"]
                p = fisher_greater(shade["hits"], shade["total"], dirty["hits"], dirty["total"])
                lines.append(
                    f"- Nightshade {count} vs dirty-label {other_count}: one-sided Fisher p = {p:.3g}"
                )
    publish("poisoning", "\n".join(lines), write=not args.no_write)


if __name__ == "__main__":
    main()
