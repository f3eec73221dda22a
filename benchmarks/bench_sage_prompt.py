"""SAGE's prompt search against random words at an equal UNet-evaluation budget.

    python benchmarks/bench_sage_prompt.py [--classes 20 --seeds 0-2]

Each method extends "a photo of a <class>" for ``--classes`` classes spread over the
label list × ``--seeds`` (held out: the settings were tuned on others): ``sage-prompt``
as it ships, and ``random-words`` (1 to 3 random words from the same candidate lists of
the language model) within what sage-prompt spends at most on an attempt. Each method
is a results store under ``--work`` (a killed benchmark resumes).

Per method: verified failures (attacked attempts only: natural failures are screened
alike), per 1,000 UNet evaluations and per wall-clock hour, the ASR curve (``--plot``),
a one-sided Fisher exact test of sage-prompt's count against random words', and the
fluency of the prompts found: the median perplexity (under the language model) of the
verified prompts against that of their clean prompts. Writes the "SAGE prompt attack"
section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
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
from fissure.attacks.recipes import recipe_defaults, sage_prompt, sage_prompt_budget
from fissure.campaign.config import DEFAULT_VERIFIERS
from fissure.console import quiet_libraries
from fissure.generate import parse_seeds
from fissure.judges import load_judge
from fissure.models import Generator
from fissure.models.loading import model_label
from fissure.results import ResultsStore

METHODS = ("sage-prompt", "random-words")


def fluency(outcome: Outcome) -> tuple[float, float]:
    """Median perplexity of the verified prompts found, and of their clean prompts."""
    found = [f.perplexity["adversarial"] for f in outcome.verified]
    clean = [f.perplexity["clean"] for f in outcome.verified]
    if not found:
        return math.nan, math.nan
    return statistics.median(found), statistics.median(clean)


def table(outcomes: list[Outcome], budget: int) -> list[str]:
    baseline = next((o for o in outcomes if o.label == "random-words"), None)
    rows = []
    for o in outcomes:
        verified, attacked = len(o.verified), len(o.attacked)
        wall = 3600 * o.hours / verified if verified else math.inf
        found, clean = fluency(o)
        compare = "–"
        if baseline is not None and o is not baseline:
            p = fisher_greater(verified, attacked, len(baseline.verified), len(baseline.attacked))
            ratio = verified / len(baseline.verified) if baseline.verified else math.inf
            compare = f"{ratio:.1f}× (p = {p:.3g})"
        curve = " / ".join(f"{asr_within(o.findings, b):.0%}" for b in BUDGET_GRID)
        examples = "; ".join(f"“{f.adversarial_prompt}”" for f in o.verified[:2])
        rows.append(
            f"| {o.label} | {len(o.findings)} | {attacked} | {verified} "
            f"| {asr_within(o.findings, budget):.1%} | {curve} | {o.per_thousand():.2f} "
            f"| {o.per_hour():.1f} | {wall:.0f} | {found:.1f} / {clean:.1f} "
            f"| {found / clean:.2f} | {compare} | {examples} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="emoji-sd")
    parser.add_argument("--language-model", default="emoji-lm")
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--seeds", default="0-2", help="Held-out seeds: N-M or a list.")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work", type=Path, default=Path("runs/bench-sage-prompt"))
    parser.add_argument(
        "--plot", type=Path, default=Path(__file__).parent.parent / "docs" / "sage-prompt-asr.png"
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
    model = model_label(args.model)
    chosen = spread_classes(surrogate.labels, args.classes)
    seeds = parse_seeds(args.seeds)
    attempts = class_attempts(chosen, seeds, surrogate.labels)
    budget = sage_prompt_budget(args.steps)
    outcomes = []
    for name in args.methods.split(","):
        if name not in METHODS:
            raise SystemExit(f"unknown method {name!r}: use {', '.join(METHODS)}")
        options = dict(budget=budget) if name == "random-words" else {}
        attack = ATTACKS[name](
            generator, surrogate, language_model=args.language_model, steps=args.steps,
            batch_size=args.batch_size, **options,
        )  # fmt: skip
        started = time.perf_counter()
        with ResultsStore(args.work / name) as store, store.campaign(attack.name) as campaign:
            writer = campaign.attack(model, attack.name, attack.settings())
            findings = run_attack(attack, attempts, writer, verifiers, model)
        outcomes.append(Outcome(name, findings, args.batch_size))
        print(table(outcomes, budget)[-1], f"({time.perf_counter() - started:.0f} s)", flush=True)

    searched = ("words", "iterations", "step", "step_rule", "candidates", "rescored", "gradient")
    defaults = recipe_defaults(sage_prompt)
    settings = ", ".join(f"{key} {defaults[key]}" for key in searched)
    title = f"{args.model}, {len(chosen)} classes × seeds {args.seeds}, budget {budget} evaluations"
    if not args.no_write:
        plot(outcomes, budget, args.plot, title)
    text = "\n".join(
        [
            "## SAGE prompt attack",
            "",
            f"`python benchmarks/bench_sage_prompt.py --classes {args.classes} --seeds "
            f"{args.seeds}` — {args.model}, language model {args.language_model}, "
            f'{len(chosen)} classes × {len(seeds)} held-out seeds, "a photo of a <class>" '
            f"extended, {args.steps} DDIM steps, guidance 7.5, surrogate emoji/surrogate with "
            f"views, verifiers {', '.join(DEFAULT_VERIFIERS)}, batch {args.batch_size}; both "
            f"methods within {budget} UNet evaluations an attempt (what sage-prompt spends at "
            f"most); sage-prompt: {settings}; machine: {machine(args.threads, args.device)}.",
            "",
            "| method | attempts | attacked | verified | verified ASR within the budget "
            f"| ASR within {' / '.join(map(str, BUDGET_GRID))} evals "
            "| verified per 1,000 UNet evals | verified per wall hour "
            "| wall seconds per verified | median perplexity: found / clean (verified) "
            "| ratio | vs random words (one-sided Fisher) | examples |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            *table(outcomes, budget),
            "",
            "Attacked: attempts whose clean image every verifier read the class first in. "
            "Verified: the surrogate fooled and every verifier under the threshold on the "
            "extended prompt's image (the seed's own latent). Words that name a class of the "
            "judge are never candidates, for either method. Perplexity: the language model's, "
            "per token; the plot is docs/sage-prompt-asr.png.",
        ]
    )
    publish("sage-prompt", text, write=not args.no_write)


if __name__ == "__main__":
    main()
