"""How close SAGE's residual gradient is to the exact one, on the attack's own loss.

    python benchmarks/bench_residual_gradient.py [--classes 6 --seeds 4 --ks 1,2,5,10,15]

For "a photo of a <class>" over ``--classes`` classes spread over the label list ×
``--seeds`` noise seeds, the gradient of SAGE's goal (``TargetAbsent`` on
emoji/surrogate, with its views) with respect to the initial latent is taken
exactly (through all 25 DDIM steps and the decoder) and with the residual
shortcut from the last k steps, for each k. The table gives the cosine between
the two and the share of latent coordinates whose sign agrees (what SAGE's sign
steps use; 50% is chance), with the backward UNet evaluations each costs.
Writes the "Residual gradient" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch
from common import machine, publish, spread_classes
from tqdm import tqdm

from fissure.attacks.goals import TargetAbsent
from fissure.judges import load_judge
from fissure.models.generator import Generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="emoji-sd")
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--ks", default="1,2,5,10,15", help="Steps on the residual path.")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--no-write", action="store_true", help="Print only.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ks = [int(k) for k in args.ks.split(",")]

    generator = Generator.from_pretrained(args.model)
    surrogate = load_judge("emoji/surrogate").eval().requires_grad_(False)
    goal = TargetAbsent(surrogate, views=True)
    classes = spread_classes(list(surrogate.labels), args.classes)

    def gradient(latents, embeddings, targets, mode: str, k: int = 1) -> torch.Tensor:
        start = latents.clone().requires_grad_()
        images = generator.sample(
            start, embeddings, steps=args.steps, guidance=args.guidance, gradient=mode, k=k
        ).images
        goal.evaluate(images, targets).loss.sum().backward()
        return start.grad.flatten(1)

    cosines: dict[int, list[float]] = {k: [] for k in ks}
    signs: dict[int, list[float]] = {k: [] for k in ks}
    for name in tqdm(classes, desc="classes"):
        latents = generator.initial_latents(range(args.seeds))
        embeddings = generator.encode(f"a photo of a {name}")
        targets = torch.full((args.seeds,), surrogate.label_index(name))
        exact = gradient(latents, embeddings, targets, "exact")
        for k in ks:
            residual = gradient(latents, embeddings, targets, "residual", k)
            cosines[k] += torch.nn.functional.cosine_similarity(residual, exact).tolist()
            signs[k] += (residual.sign() == exact.sign()).float().mean(dim=1).tolist()

    rows = [
        f"| {k} | {3 * k} of {3 * args.steps} | {statistics.median(cosines[k]):.2f} "
        f"({min(cosines[k]):.2f}–{max(cosines[k]):.2f}) | {statistics.median(signs[k]):.1%} |"
        for k in ks
    ]
    text = "\n".join(
        [
            "## Residual gradient",
            "",
            f"`python benchmarks/bench_residual_gradient.py {' '.join(sys.argv[1:])}` — "
            f"{args.model}, "
            f"{len(classes)} classes × {args.seeds} seeds ({', '.join(classes)}), "
            f'"a photo of a <class>", {args.steps} DDIM steps, guidance {args.guidance}, '
            f"SAGE's loss on emoji/surrogate with views; machine: {machine(args.threads)}.",
            "",
            "| k (steps on the residual path) | backward UNet evaluations | cosine to the "
            "exact gradient, median (min–max) | coordinates whose sign agrees, median |",
            "|---|---|---|---|",
            *rows,
            "",
            "The exact gradient runs through every step; the residual one through the last k "
            "and an identity from x_k back to the initial latent (SAGE's shortcut). Sign "
            "agreement is over the latent's coordinates (50% is chance).",
        ]
    )
    publish("residual-gradient", text, write=not args.no_write)


if __name__ == "__main__":
    main()
