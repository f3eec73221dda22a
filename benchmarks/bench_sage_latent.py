"""SAGE's latent attack against random search at an equal UNet-evaluation budget.

    python benchmarks/bench_sage_latent.py [--classes 20 --seeds 0-4 --methods default,paper,random,random-box]

Each method attacks "a photo of a <class>" for ``--classes`` classes spread over the
label list × ``--seeds`` (seeds 0-4 are held out: the defaults were tuned on others),
every one at the same budget: what the default sage-latent spends at most on an
attempt. ``default`` is sage-latent as it ships; ``paper`` is ``--paper`` (SAGE's
residual gradient and sign steps) with as many iterations as fit the budget;
``random`` draws fresh latents, ``random-box`` random latents inside sage-latent's
constraints (the seed's norm, the ±1 box); ``sage[gradient=exact;step_rule=adam]``
is sage-latent with those options. Each method is a results store under ``--work``
holding one campaign named after its attack, as ``fissure attack --out`` makes (a
killed benchmark resumes).

Per method: verified failures per 1,000 UNet evaluations spent (forward, and backward
at the measured cost), per wall-clock hour, the wall time per verified failure, and the
verified attack success rate within each budget (the curve goes to ``--plot``); a
one-sided Fisher exact test of each gradient method's verified count against the better
random baseline's. Wall time is each attempt's seconds over the batch size (attempts
share batches), so a resumed run counts it too. Writes the "SAGE latent attack"
section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from common import (
    BUDGET_GRID,
    Outcome,
    asr_within,
    fisher_greater,
    machine,
    plot,
    publish,
    spread_classes,
)

from fissure.attacks import ATTACKS, Verifiers, class_attempts, run_attack
from fissure.attacks.recipes import MEASURED_SETTINGS, sage_latent_budget, sage_latent_settings
from fissure.campaign.config import DEFAULT_VERIFIERS
from fissure.console import quiet_libraries
from fissure.generate import parse_seeds
from fissure.judges import load_judge
from fissure.models import Generator
from fissure.models.generator import evaluation_cost
from fissure.models.loading import model_label
from fissure.results import ResultsStore


@dataclass
class Method:
    label: str
    attack: str
    options: dict[str, object]


def method(name: str, budget: int, steps: int) -> Method:
    """A method of the command line, fitted to the budget."""
    if name in ("random", "random-box"):
        radius = dict(radius=1.0) if name == "random-box" else {}
        return Method(name, "random-latent", dict(budget=budget, **radius))
    if name == "default":
        return Method(name, "sage-latent", {})
    paper = name == "paper"
    if paper:
        options: dict[str, object] = dict(paper=True)
    elif name.startswith("sage[") and name.endswith("]"):
        options = dict(_parse(item) for item in name[5:-1].split(";") if item)
    else:
        raise SystemExit(f"unknown method {name!r}")
    search = sage_latent_settings(**options)
    cost = evaluation_cost(search["gradient"], search["k"], steps).total
    iterations = min(search["max_iterations"], math.floor((budget - steps) / cost))
    return Method(name, "sage-latent", {**options, "max_iterations": iterations})


def _parse(item: str) -> tuple[str, object]:
    key, _, value = item.partition("=")
    for kind in (int, float):
        try:
            return key, kind(value)
        except ValueError:
            pass
    return key, value


def table(outcomes: list[Outcome], budget: int) -> list[str]:
    randoms = [o for o in outcomes if o.label.startswith("random")]
    baseline = max(randoms, key=lambda o: len(o.verified), default=None)
    rows = []
    for o in outcomes:
        verified, attacked = len(o.verified), len(o.attacked)
        wall = 3600 * o.hours / verified if verified else math.inf
        latency = statistics.median(f.seconds for f in o.verified) if verified else math.nan
        compare = "–"
        if baseline is not None and o is not baseline and not o.label.startswith("random"):
            p = fisher_greater(verified, attacked, len(baseline.verified), len(baseline.attacked))
            per_k = o.per_thousand() / baseline.per_thousand() if baseline.verified else math.inf
            per_h = o.per_hour() / baseline.per_hour() if baseline.verified else math.inf
            compare = f"{per_k:.1f}× / {per_h:.1f}× (p = {p:.3g})"
        curve = " / ".join(f"{asr_within(o.findings, b):.0%}" for b in BUDGET_GRID)
        typical = sum(f.typical for f in o.verified)
        shell = sum(  # the two tests of the norm and the elements' distribution alone
            min(f.typicality["chi_square_p"], f.typicality["ks_p"]) >= f.typicality["alpha"]
            for f in o.verified
        )
        rows.append(
            f"| {o.label} | {len(o.findings)} | {attacked} | {verified} "
            f"| {asr_within(o.findings, budget):.1%} | {curve} | {o.per_thousand():.2f} "
            f"| {o.per_hour():.1f} | {wall:.0f} | {latency:.0f} | {typical}/{verified} "
            f"| {shell}/{verified} "
            f"| {compare} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="emoji-sd")
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--seeds", default="0-4", help="Held-out seeds: N-M or a list.")
    parser.add_argument("--methods", default="default,paper,random,random-box")
    parser.add_argument("--budget", type=int, help="Default: what sage-latent spends at most.")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--work", type=Path, default=Path("runs/bench-sage-latent"))
    parser.add_argument(
        "--plot", type=Path, default=Path(__file__).parent.parent / "docs" / "sage-latent-asr.png"
    )
    parser.add_argument("--no-write", action="store_true", help="Print only.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quiet_libraries()

    surrogate = load_judge("emoji/surrogate", device=args.device)
    verifiers = Verifiers(
        {name: load_judge(name, device=args.device) for name in DEFAULT_VERIFIERS}
    )
    generator = Generator.from_pretrained(args.model, device=args.device, dtype=args.dtype)
    model = model_label(args.model)  # as `fissure attack` records it: the same from any folder
    labels = surrogate.labels
    chosen = spread_classes(labels, args.classes)
    seeds = parse_seeds(args.seeds)
    attempts = class_attempts(chosen, seeds, labels)
    budget = args.budget or sage_latent_budget(args.steps)
    outcomes = []
    for name in args.methods.split(","):
        chosen_method = method(name, budget, args.steps)
        attack = ATTACKS[chosen_method.attack](
            generator, surrogate, steps=args.steps, batch_size=args.batch_size,
            **chosen_method.options,
        )  # fmt: skip
        folder = args.work / name.replace("[", "-").replace("]", "").replace(";", ",")
        started = time.perf_counter()
        with ResultsStore(folder) as store, store.campaign(attack.name) as campaign:
            writer = campaign.attack(model, attack.name, attack.settings())
            # only the attempts asked: the store may hold others, of earlier invocations
            findings = run_attack(attack, attempts, writer, verifiers, model)
        outcomes.append(Outcome(name, findings, args.batch_size))
        print(table(outcomes, budget)[-1], f"({time.perf_counter() - started:.0f} s)", flush=True)

    defaults = ", ".join(f"{key} {value}" for key, value in MEASURED_SETTINGS.items())
    title = f"{args.model}, {len(chosen)} classes × seeds {args.seeds}, budget {budget} evaluations"
    if not args.no_write:
        plot(outcomes, budget, args.plot, title)
    text = "\n".join(
        [
            "## SAGE latent attack",
            "",
            f"`python benchmarks/bench_sage_latent.py --classes {args.classes} --seeds "
            f"{args.seeds} --methods {args.methods}` — {args.model} ({args.dtype}), "
            f'{len(chosen)} classes × {len(seeds)} held-out seeds, "a photo of a <class>", '
            f"{args.steps} DDIM steps, guidance 7.5, surrogate emoji/surrogate with views, "
            f"verifiers {', '.join(DEFAULT_VERIFIERS)}, batch {args.batch_size}; every method "
            f"within {budget} UNet evaluations an attempt (what the default spends at most); "
            f"default: {defaults}; machine: {machine(args.threads, args.device)}.",
            "",
            "| method | attempts | attacked | verified | verified ASR within the budget "
            f"| ASR within {' / '.join(map(str, BUDGET_GRID))} evals "
            "| verified per 1,000 UNet evals | verified per wall hour "
            "| wall seconds per verified | median seconds of a verified attempt "
            "| typical (of verified) | χ² and KS alone (of verified) "
            "| vs the better random: per 1,000 evals / per hour (one-sided Fisher) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            *table(outcomes, budget),
            "",
            "Attacked: attempts whose clean image every verifier read the target first in (the "
            "rest are natural failures, screened alike for every method). Verified: the "
            "surrogate fooled and every verifier under the threshold "
            "(`Finding.verified_failure`). UNet evaluations: one per denoising step (both "
            "guidance halves in one call), and backward steps at the measured cost "
            '("Gradient estimators"), summed over every attempt. Wall: each attempt\'s seconds '
            f"over the batch size ({args.batch_size} attempts share a batch), summed. "
            f"`paper` is `--paper` with as many iterations as fit the budget; the plot is "
            "docs/sage-latent-asr.png. Typical: the chi-square, Kolmogorov–Smirnov and "
            "neighbour tests all pass (α = 0.01); the default's `SameValues` keeps the first "
            "two at the seed's values by construction.",
        ]
    )
    publish("sage-latent", text, write=not args.no_write)


if __name__ == "__main__":
    main()
