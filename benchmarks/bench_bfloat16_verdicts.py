"""Do an attack's verdicts hold in bfloat16? Re-render a benchmark's findings and compare.

    python benchmarks/bench_bfloat16_verdicts.py [--store runs/bench-sage-latent/default]

Each finding of a latent attack's results store is rendered again from its seed's latent
and its δ (the before and after images), once in float32 and once in bfloat16 (the
Generator's ``dtype``, as ``--dtype bfloat16`` runs an attack; the verifiers read the
8-bit images in float32 either way). Per finding, the verdicts of the two renders are
compared: whether the clean image shows the target, whether the target is gone after,
and so whether it is a verified failure; with the seconds a 25-step batch of 8 takes in
each precision. Writes the "bfloat16 verdicts" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import machine, publish
from safetensors.torch import load_file

from fissure.attacks import Verifiers
from fissure.campaign.config import DEFAULT_VERIFIERS
from fissure.console import quiet_libraries
from fissure.judges import load_judge
from fissure.models import Generator
from fissure.results import ResultsStore


def render(generator: Generator, findings: list, batch: int) -> tuple[torch.Tensor, float]:
    """Before and after images of every finding (2N×3×H×W), and the seconds per batch."""
    latents = []
    for finding, delta in findings:
        clean = generator.initial_latents([finding.seed])
        latents += [clean, clean + delta[None]]
    latents = torch.cat(latents)
    images, seconds = [], []
    with torch.no_grad():
        for start in range(0, len(latents), batch):
            chunk = latents[start : start + batch]
            prompts = [findings[(start + row) // 2][0].prompt for row in range(len(chunk))]
            began = time.perf_counter()
            images.append(generator.sample(chunk, prompts, steps=25).images.float())
            seconds.append(time.perf_counter() - began)
    return torch.cat(images), sorted(seconds)[len(seconds) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("runs/bench-sage-latent/default"))
    parser.add_argument("--model", default="emoji-sd")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--no-write", action="store_true", help="Print only.")
    args = parser.parse_args()
    quiet_libraries()
    with ResultsStore(args.store) as store:
        findings = [
            (f, load_file(args.store / f.files["delta"])["delta"].float())
            for f in store.findings()
            if f.clean_shows_target
        ]
    verifiers = Verifiers({name: load_judge(name) for name in DEFAULT_VERIFIERS})
    verdicts, seconds = {}, {}
    for dtype in ("float32", "bfloat16"):
        generator = Generator.from_pretrained(args.model, dtype=dtype)
        images, seconds[dtype] = render(generator, findings, args.batch)
        verdicts[dtype] = [
            verifiers(images[2 * i], images[2 * i + 1], finding.target)
            for i, (finding, _) in enumerate(findings)
        ]
    same_clean = sum(
        a.clean_shows_target == b.clean_shows_target
        for a, b in zip(verdicts["float32"], verdicts["bfloat16"], strict=True)
    )
    same_after = sum(
        a.verified == b.verified
        for a, b in zip(verdicts["float32"], verdicts["bfloat16"], strict=True)
    )
    recorded = sum(f.verified for f, _ in findings)
    counts = {d: sum(v.verified for v in verdicts[d]) for d in verdicts}
    text = "\n".join(
        [
            "## bfloat16 verdicts",
            "",
            f"`python benchmarks/bench_bfloat16_verdicts.py --store {args.store}` — the "
            f"{len(findings)} attacked findings of that store (sage-latent's δ), rendered "
            f"again from z + δ in each precision, 25 DDIM steps, verifiers "
            f"{', '.join(DEFAULT_VERIFIERS)} on 8-bit images; machine: {machine()}.",
            "",
            "| measure | float32 | bfloat16 |",
            "|---|---|---|",
            f"| target gone (verified), of {len(findings)} | {counts['float32']} "
            f"| {counts['bfloat16']} |",
            f"| seconds per batch of {args.batch} (median) | {seconds['float32']:.2f} "
            f"| {seconds['bfloat16']:.2f} |",
            "",
            f"Verdicts equal in both precisions: clean image shows the target {same_clean} of "
            f"{len(findings)}; target gone after {same_after} of {len(findings)}. The store "
            f"recorded {recorded} verified in float32 when the attack ran.",
        ]
    )
    publish("bfloat16-verdicts", text, write=not args.no_write)


if __name__ == "__main__":
    main()
