"""SAGE's universal token on held-out prompts, against a random token and its own start.

    python benchmarks/bench_universal_token.py [--targets 5 --held-out 50]

The targets are ``--targets`` classes spread over those the model draws recognisably
(every verifier reads "a photo of a <class>" at every training seed). For each, a token
is trained as ``fissure attack universal-token --target <class>`` trains it (prompts of
the classes not held out, in every caption template, at ``--training-seeds``), then
judged on one prompt of each of ``--held-out`` other classes at the held-out
``--seeds``; so are two baselines: a random embedding of the trained token's norm, and
the token's untrained start (the target's word embedding stretched, within the
vocabulary's range). Success: every verifier reads the target first, over the held-out
attempts whose clean image showed their own class (the surrogate that trained the token is not asked). Per target: the success rates, a
one-sided Fisher exact test of the token against each baseline, the mean cosine of the
text encoder's pooled embedding with and without the token, and the CLIP score of the
images against the prompt with and without it. Each target is a results store under
``--work`` (a killed benchmark resumes). Writes the "Universal token" section of
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

import torch
from common import drawn_classes, fisher_greater, machine, publish, spread_classes

from fissure.attacks import Verifiers
from fissure.attacks.recipes import recipe_defaults, universal_token
from fissure.attacks.runner import run_universal_token, train_universal_token
from fissure.attacks.universal import split_prompts
from fissure.campaign.config import DEFAULT_VERIFIERS
from fissure.console import quiet_libraries
from fissure.generate import parse_seeds
from fissure.judges import load_judge
from fissure.models import Generator
from fissure.models.loading import model_label
from fissure.results import Finding, ResultsStore


def random_like(token: torch.Tensor, seed: int) -> torch.Tensor:
    """A random direction with ``token``'s norm."""
    direction = torch.randn(token.shape, generator=torch.Generator().manual_seed(seed))
    return direction * (token.norm() / direction.norm())


def rates(findings: list[Finding]) -> tuple[int, int, float, float, float]:
    """Verified (every verifier reads the target first), of attempts whose clean image showed
    its class; mean text cosine; mean CLIP score without and with the token."""
    shown = [f for f in findings if f.clean_shows_target]
    effects = [f.token_effect for f in findings]
    clip = [e for e in effects if "clip_before" in e]
    return (
        sum(f.verified for f in shown),
        len(shown),
        statistics.fmean(e["text_cosine"] for e in effects),
        statistics.fmean(e["clip_before"] for e in clip) if clip else float("nan"),
        statistics.fmean(e["clip_after"] for e in clip) if clip else float("nan"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="emoji-sd")
    parser.add_argument("--targets", type=int, default=5)
    parser.add_argument("--held-out", type=int, default=50)
    parser.add_argument("--training-seeds", default="100-103")
    parser.add_argument("--seeds", default="0", help="Held-out seeds.")
    parser.add_argument(
        "--iterations", type=int, default=recipe_defaults(universal_token)["iterations"]
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--step", type=float, default=recipe_defaults(universal_token)["step"])
    parser.add_argument("--position", default="start", help="Where the token goes: start or end.")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work", type=Path, default=Path("runs/bench-universal-token"))
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
    labels = surrogate.labels
    training, seeds = parse_seeds(args.training_seeds), parse_seeds(args.seeds)
    drawn = drawn_classes(generator, verifiers, labels, training)
    print(f"{len(drawn)} of {len(labels)} classes drawn recognisably at the training seeds")
    rows = []
    for index, target in enumerate(spread_classes(drawn, args.targets)):
        started = time.perf_counter()
        attack = universal_token(
            generator, surrogate, target=target, iterations=args.iterations, batch=args.batch,
            step=args.step, steps=args.steps, position=args.position,
        )  # fmt: skip
        folder = args.work / attack.name
        token, findings = train_universal_token(
            attack, args.held_out, training, seeds, folder, verifiers, model
        )
        split = split_prompts(labels, target, args.held_out)
        baselines = {"random": random_like(token, index), "start": attack.start()}
        outcomes = {}
        for suffix, embedding in baselines.items():
            baseline = dataclasses.replace(attack, name=f"{attack.name}-{suffix}")
            with ResultsStore(folder) as store, store.campaign(baseline.name) as campaign:
                writer = campaign.attack(model, baseline.name, baseline.settings())
                outcomes[suffix] = rates(run_universal_token(
                    baseline, embedding, split.attempts(split.held_out, seeds, labels),
                    writer, verifiers, model,
                ))  # fmt: skip
        hits, shown, cosine, clip_before, clip_after = rates(findings)
        cells = []
        for other_hits, other_shown, other_cosine, _, other_clip in outcomes.values():
            p = fisher_greater(hits, shown, other_hits, other_shown)
            cells.append(
                f"{other_hits} ({other_hits / max(1, other_shown):.0%}), p = {p:.3g} | "
                f"{other_cosine:.3f} | {other_clip:.3f}"
            )
        rows.append(
            f"| {target} | {shown} | {hits} ({hits / max(1, shown):.0%}) | {cosine:.3f} | "
            f"{clip_before:.3f} → {clip_after:.3f} | {' | '.join(cells)} "
            f"| {float(token.norm()):.3f} |"
        )
        print(rows[-1], f"({time.perf_counter() - started:.0f} s)", flush=True)

    text = "\n".join(
        [
            "## Universal token",
            "",
            f"`python benchmarks/bench_universal_token.py --targets {args.targets} --held-out "
            f"{args.held_out} --position {args.position} --iterations {args.iterations} --step "
            f"{args.step}` — {args.model}; per target a token trained for "
            f"{args.iterations} minibatch steps of {args.batch} (prompt, seed) pairs (step "
            f"{args.step}, Adam; prompts of the classes not held out in every caption "
            f"template, training seeds {args.training_seeds}), judged on one prompt of each "
            f"of {args.held_out} held-out classes at held-out seeds {args.seeds}; targets spread "
            f"over the {len(drawn)} classes whose clean prompt every verifier reads at every "
            f"training seed; baselines: a random embedding of the trained token's norm, and the "
            f"token's untrained start (the target's word stretched). {args.steps} DDIM steps, guidance "
            f"7.5, surrogate emoji/surrogate with views, verifiers "
            f"{', '.join(DEFAULT_VERIFIERS)}; machine: {machine(args.threads, args.device)}.",
            "",
            "| target | held-out attempts showing their class | verified: token | text cosine "
            "with / without | CLIP score vs prompt: without → with | random token: verified, "
            "one-sided Fisher p of the token's advantage | its cosine | its CLIP score | "
            "untrained start: verified, p | its cosine | its CLIP score | token norm |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "Verified: every verifier reads the target first in the image with the token (the "
            "surrogate, which trained the token, is not asked). "
            "Text cosine: the text encoder's pooled embedding (the end token's final state) "
            "of the prompt with the token against without it.",
        ]
    )
    publish("universal-token", text, write=not args.no_write)


if __name__ == "__main__":
    main()
