"""ATM against random tokens in its own space, on short and long prompts, as its code counts.

    python benchmarks/bench_atm.py [--classes 16 --prompts short,long --seeds 0 --extra 16]

Each prompt set ("a photo of a <class> and a", and two sentences about the class in the
world's words) for ``--classes`` classes the model draws recognisably: ``atm`` with its
released code's defaults (extend, 100 Adam steps of 0.3 through Gumbel-softmax draws, CW
margin κ 30 on emoji-sd's CLIP zero-shot, 4 × IDF BERTScore, 100 hard draws), and
``random-tokens`` (ATM's hard draws from no optimisation: each free position takes a
uniformly random whole word with the probability ATM's own outcomes changed one, within
ATM's mean UNet evaluations an attempt), in each of ``--modes`` (extend, substitute). Each method is a results store under ``--work`` (a
killed benchmark resumes).

Per method and prompt set: ATM's success as its code counts it (classifier top-1 not the
class, class word kept), over the attempts it attacks (a clean image the classifier
misreads is skipped, as the code does); how many of those successes our verifiers
confirm (the class gone by emoji/verifier and emoji/surrogate, which ATM's loss never
saw); a one-sided Fisher exact test of ATM against random tokens for both counts; the
mean successful draws of 100, the token error rate, and the perplexity of the prompts
found. Writes the "ATM" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from common import drawn_classes, fisher_greater, machine, publish, spread_classes

from fissure.attacks import Verifiers, make_attempts, run_attack
from fissure.attacks.distributions import edit_distance
from fissure.attacks.prompt_sets import prompt_set
from fissure.attacks.recipes import atm, random_tokens
from fissure.console import quiet_libraries
from fissure.generate import parse_seeds
from fissure.judges import load_judge
from fissure.models import Generator
from fissure.models.loading import model_label
from fissure.results import Finding, ResultsStore

VERIFIERS = ("emoji/verifier", "emoji/surrogate")


def attacked(findings: list[Finding]) -> list[Finding]:
    """The attempts ATM's code attacks: not misread by the classifier before the attack."""
    return [f for f in findings if not (f.scores or {}).get("clean_misclassified")]


def changed_share(findings: list[Finding], space) -> float:
    """The share of free positions ATM's outcomes changed (what random tokens change): the
    token edits from the clean prompt to the one found, over the free positions."""
    shares = []
    for finding in attacked(findings):
        start = space.bind(make_attempts([finding.prompt], [finding.seed], [finding.target])[0])
        edits = edit_distance(start.ids, space.word_ids(finding.adversarial_prompt))
        shares.append(min(1.0, edits / len(start.positions)))
    return statistics.mean(shares) if shares else 0.15


def row(
    label: str, mode: str, kind: str, findings: list[Finding], baseline: list[Finding] | None
) -> str:
    hit = attacked(findings)
    successes = [f for f in hit if f.success]
    confirmed = [f for f in successes if f.verified_failure]
    compare = "–"
    if baseline is not None:
        base = attacked(baseline)
        base_successes = [f for f in base if f.success]
        base_confirmed = [f for f in base_successes if f.verified_failure]
        p_success = fisher_greater(len(successes), len(hit), len(base_successes), len(base))
        p_confirmed = fisher_greater(len(confirmed), len(hit), len(base_confirmed), len(base))
        compare = f"p = {p_success:.3g} / {p_confirmed:.3g}"
    draws = [f.scores["successful_samples"] / f.scores["samples"] for f in hit if f.scores]
    errors = [f.scores["token_error_rate"] for f in hit if f.scores]
    perplexity = [f.perplexity["adversarial"] / f.perplexity["clean"] for f in successes]
    evals = statistics.mean(f.unet_evals for f in hit) if hit else 0
    example = f"“{successes[0].adversarial_prompt[:80]}”" if successes else "–"
    return (
        f"| {label} | {mode} | {kind} | {len(findings)} | {len(hit)} | {len(successes)} "
        f"({len(successes) / max(1, len(hit)):.0%}) | {len(confirmed)} | {compare} "
        f"| {statistics.mean(draws) if draws else 0:.2f} | {statistics.mean(errors) if errors else 0:.3f} "
        f"| {statistics.median(perplexity) if perplexity else float('nan'):.0f}× | {evals:.0f} | {example} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="emoji-sd")
    parser.add_argument("--classes", type=int, default=16)
    parser.add_argument("--extra", type=int, default=16, help="Positions ATM extends (0: all).")
    parser.add_argument("--prompts", default="short,long")
    parser.add_argument("--modes", default="extend,substitute")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--work", type=Path, default=Path("runs/bench-atm"))
    parser.add_argument("--no-write", action="store_true", help="Print only.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quiet_libraries()

    clip = load_judge("emoji/clip")
    labels = clip.labels
    verifiers = Verifiers({name: load_judge(name) for name in VERIFIERS})
    generator = Generator.from_pretrained(args.model)
    model = model_label(args.model)
    drawn = drawn_classes(generator, verifiers, list(labels), [100, 101, 102, 103])
    chosen = spread_classes(drawn, args.classes)
    seeds = parse_seeds(args.seeds)
    extra = args.extra or None
    rows = []
    for mode, kind in [(m, k) for m in args.modes.split(",") for k in args.prompts.split(",")]:
        pairs = prompt_set(kind, labels, chosen)
        attempts = [
            a for prompt, label in pairs for a in make_attempts([prompt], seeds, labels, label)
        ]
        idf = [prompt for prompt, _ in pairs]
        results = {}
        for name in ("atm", "random-tokens"):
            if name == "atm":
                attack = atm(
                    generator, clip, idf_prompts=idf, batch_size=args.batch_size, extra=extra,
                    mode=mode,
                )  # fmt: skip
            else:
                budget = statistics.mean(f.unet_evals for f in attacked(results["atm"]))
                share = changed_share(results["atm"], results["atm-space"])
                samples = max(1, round((budget - 25) / 25))
                attack = random_tokens(
                    generator, clip, change=min(0.99, max(0.01, share)), samples=samples,
                    batch_size=args.batch_size, extra=extra, mode=mode,
                )  # fmt: skip
            started = time.perf_counter()
            folder = args.work / f"{name}-{mode}-{kind}"
            with ResultsStore(folder) as store, store.campaign(name) as campaign:
                writer = campaign.attack(model, name, attack.settings())
                results[name] = run_attack(attack, attempts, writer, verifiers, model)
            results[f"{name}-space"] = attack.space
            label = name if name == "atm" else f"random-tokens (p = {share:.2f}, {samples} draws)"
            if name == "random-tokens":  # the comparison is ATM's against random's
                rows.append(row("atm", mode, kind, results["atm"], results["random-tokens"]))
                rows.append(row(label, mode, kind, results["random-tokens"], None))
                print(*rows[-2:], sep="\n", flush=True)
            print(f"{name} {mode} {kind}: {time.perf_counter() - started:.0f} s", flush=True)

    text = "\n".join(
        [
            "## ATM",
            "",
            f"`python benchmarks/bench_atm.py --classes {args.classes} --prompts {args.prompts} "
            f"--modes {args.modes} "
            f"--seeds {args.seeds} --extra {args.extra}` — {args.model}, {len(chosen)} classes the model draws "
            f"recognisably ({', '.join(chosen)}), seeds {args.seeds}; classifier emoji/clip "
            f"(zero-shot, 100 × cosine); ATM with its code's defaults but {args.extra or 'all'} "
            f"extended positions (100 Adam steps of 0.3, Gumbel-softmax temperature 1, last-k 1, CW κ 30, "
            f"4 × IDF BERTScore over emoji-lm, 100 hard draws); random tokens at ATM's mean "
            f"budget; verifiers {', '.join(VERIFIERS)}; machine: {machine(args.threads)}.",
            "",
            "| method | mode | prompts | attempts | attacked (clean not misread) | ATM success, as its "
            "code counts | of them confirmed by our verifiers | one-sided Fisher p, ATM > random "
            "(success / confirmed) | successful draws (share) | token error rate | median "
            "perplexity, found / clean | UNet evals an attempt | a success |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    publish("atm", text, write=not args.no_write)


if __name__ == "__main__":
    main()
