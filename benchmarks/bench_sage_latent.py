"""SAGE's latent attack against the random-latent baseline, per UNet evaluation.

    python benchmarks/bench_sage_latent.py [--classes 20 --seeds 5 --model emoji-sd]

Runs SAGE with the residual gradient, SAGE with the exact gradient, and random
search over fresh latents on "a photo of a <class>" for ``--classes`` classes
spread over the label list × ``--seeds`` seeds. Each method is a results store
under ``--work`` holding one campaign named after its attack, as ``fissure attack
--out`` makes (a killed benchmark resumes). Every finding records the UNet
evaluations it took, so the verified attack success rate at any budget B is the
share of attacked attempts verified within B evaluations; the table gives it at
the residual attack's maximum budget (the random baseline's budget), together
with the median evaluations per verified failure. Writes the "SAGE latent
attack" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from common import machine, publish, spread_classes

from fissure.attacks import ATTACKS, Verifiers, class_attempts, run_attack
from fissure.attacks.recipes import sage_latent_budget
from fissure.campaign.config import DEFAULT_VERIFIERS
from fissure.console import quiet_libraries
from fissure.judges import load_judge
from fissure.models import Generator
from fissure.models.loading import model_label
from fissure.results import Finding, ResultsStore

BUDGET_GRID = (100, 250, 500, 1000, 2000)


def asr_within(findings: list[Finding], budget: int) -> float:
    """Verified failures within ``budget`` UNet evaluations, over the attacked attempts."""
    attacked = [f for f in findings if f.clean_shows_target]
    hits = sum(f.verified_failure and f.unet_evals <= budget for f in attacked)
    return hits / len(attacked) if attacked else 0.0


def row(name: str, findings: list[Finding], budget: int, seconds: float) -> str:
    attacked = [f for f in findings if f.clean_shows_target]
    verified = [f for f in attacked if f.verified_failure]
    median = statistics.median(f.unet_evals for f in verified) if verified else float("nan")
    typical = sum(f.typical for f in verified)
    curve = " / ".join(f"{asr_within(findings, b):.0%}" for b in BUDGET_GRID)
    return (
        f"| {name} | {len(findings)} | {len(attacked)} | {len(verified)} "
        f"| {asr_within(findings, budget):.1%} | {curve} | {median:.0f} "
        f"| {typical}/{len(verified)} | {seconds:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="emoji-sd")
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--max-iterations", type=int, default=100)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work", type=Path, default=Path("runs/bench-sage-latent"))
    parser.add_argument(
        "--methods",
        default="residual,exact,random",
        help="Comma-separated subset of residual, exact, random.",
    )
    parser.add_argument(
        "--no-views", dest="views", action="store_false", help="The goal without its views."
    )
    parser.add_argument(
        "--stop-below",
        type=float,
        default=0.1,
        help="The goal: every surrogate member under this (the verifiers keep 0.1).",
    )
    parser.add_argument("--no-write", action="store_true", help="Print only.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quiet_libraries()

    surrogate = load_judge("emoji/surrogate", device=args.device)
    verifiers = Verifiers(
        {name: load_judge(name, device=args.device) for name in DEFAULT_VERIFIERS}
    )
    generator = Generator.from_pretrained(args.model, device=args.device)
    model = model_label(args.model)  # as `fissure attack` records it: the same from any folder
    labels = surrogate.labels
    chosen = spread_classes(labels, args.classes)
    attempts = class_attempts(chosen, range(args.seeds), labels)
    budget = sage_latent_budget(args.steps, args.max_iterations, args.k)
    methods = {
        "residual": (
            f"SAGE residual (k={args.k})",
            "sage-latent",
            dict(gradient="residual", k=args.k, max_iterations=args.max_iterations),
        ),
        "exact": (
            "SAGE exact",
            "sage-latent",
            dict(gradient="exact", max_iterations=args.max_iterations),
        ),
        "random": ("random latents", "random-latent", dict(budget=budget)),
    }
    chosen_methods = args.methods.split(",")
    if unknown := set(chosen_methods) - set(methods):
        parser.error(f"unknown --methods {', '.join(sorted(unknown))}: use {', '.join(methods)}")
    rows = []
    for name, attack_name, options in (methods[method] for method in chosen_methods):
        attack = ATTACKS[attack_name](
            generator,
            surrogate,
            steps=args.steps,
            batch_size=args.batch_size,
            views=args.views,
            absent_below=args.stop_below,
            **options,
        )
        folder = args.work / name.split(" (")[0].replace(" ", "-")
        started = time.perf_counter()
        with ResultsStore(folder) as store, store.campaign(attack.name) as campaign:
            writer = campaign.attack(model, attack.name, attack.settings())
            # only the attempts asked: the store may hold others, of earlier invocations
            findings = run_attack(attack, attempts, writer, verifiers, model)
        rows.append(row(name, findings, budget, time.perf_counter() - started))
        print(rows[-1], flush=True)

    text = "\n".join(
        [
            "## SAGE latent attack",
            "",
            f"`python benchmarks/bench_sage_latent.py` — {args.model}, {len(chosen)} classes × "
            f'{args.seeds} seeds, "a photo of a <class>", {args.steps} DDIM steps, guidance 7.5, '
            f"surrogate emoji/surrogate{' with views' if args.views else ' without views'} "
            f"(stop when every member < {args.stop_below}), "
            f"verifiers {', '.join(DEFAULT_VERIFIERS)}, "
            f"batch {args.batch_size}; "
            f"machine: {machine(args.threads, args.device)}.",
            "",
            "| method | attempts | attacked | verified | verified ASR at the equal budget "
            f"({budget} UNet evals) | ASR within {' / '.join(map(str, BUDGET_GRID))} evals "
            "| median UNet evals per verified | typical (of verified) | wall seconds (this run) |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "Attacked: attempts whose clean image every verifier read the target first in (the "
            "rest are natural failures). Verified: the surrogate fooled and every verifier under "
            "the threshold (`Finding.verified_failure`). UNet evals: one per denoising step "
            "(both guidance halves in one call) plus 3 per step of each backward pass. The equal budget is what SAGE residual may spend at most "
            f"({args.max_iterations} iterations of {args.steps} + 3 × {args.k}, plus the last "
            "rendering). "
            "Wall seconds are this invocation's (0 when every finding was already recorded).",
        ]
    )
    publish("sage-latent", text, write=not args.no_write)


if __name__ == "__main__":
    main()
