"""How close each of the Generator's latent gradient estimators is to the exact one, and
what each costs, on SAGE's own loss; and what a backward step costs against a forward one.

    python benchmarks/bench_gradient_estimators.py [--classes 6 --seeds 4]

For "a photo of a <class>" over ``--classes`` classes spread over the label list ×
``--seeds`` noise seeds, the gradient of SAGE's goal (``TargetAbsent`` on
emoji/surrogate, with its views) with respect to the initial latent is taken exactly
(through all 25 DDIM steps and the decoder) and by each estimator of ``--estimators``
(``mode@k``, ``residual-added@k:w``). The table gives each one's cosine to the exact
gradient, the share of latent coordinates whose sign agrees (what sign steps use; 50%
is chance), its counted cost in UNet evaluations (forward, and backward at the measured
cost) and its measured seconds. The first part times one guided UNet step of the
attack's batch forward, and forward with backward, on this UNet: the ratio is the
backward cost the attacks count (``BACKWARD_COST`` in fissure.models.generator).
Writes the "Gradient estimators" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from common import machine, publish, spread_classes
from tqdm import tqdm

from fissure.attacks.goals import TargetAbsent
from fissure.judges import load_judge
from fissure.models.generator import BACKWARD_COST, Generator

ESTIMATORS = (
    "residual@1,residual@2,residual@5,residual@10,residual@15,residual-added@2:1,"
    "short-chain@4,short-chain@6,short-chain@8,short-chain@10,first-k@1,first-k@2,"
    "first-k@5,exact-stored"
)


def backward_cost(generator: Generator, batch: int, repeats: int) -> tuple[float, float, float]:
    """Median seconds of one guided UNet step forward, and of its backward alone; their ratio."""
    latents = generator.initial_latents(range(batch))
    context = generator._guidance_context(generator.encode("a photo of a dog"), batch, True)
    t = generator.scheduler.timesteps[len(generator.scheduler.timesteps) // 2]
    forward, backward = [], []
    for _ in range(repeats + 1):  # the first is a warm-up
        start = latents.clone().requires_grad_()
        began = time.perf_counter()
        noise = generator._guided_noise(start, t, context, 7.5)
        middle = time.perf_counter()
        noise.square().sum().backward()
        forward.append(middle - began)
        backward.append(time.perf_counter() - middle)
    forward, backward = statistics.median(forward[1:]), statistics.median(backward[1:])
    return forward, backward, backward / forward


def parse(spec: str) -> tuple[str, int, float]:
    mode, _, rest = spec.partition("@")
    k, _, weight = rest.partition(":")
    return mode, int(k or 1), float(weight or 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="emoji-sd")
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--estimators", default=ESTIMATORS)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--batch", type=int, default=8, help="The backward-cost part's batch.")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--no-write", action="store_true", help="Print only.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    estimators = args.estimators.split(",")

    generator = Generator.from_pretrained(args.model)
    forward, backward, ratio = backward_cost(generator, args.batch, args.repeats)
    print(f"forward {forward * 1e3:.0f} ms, backward {backward * 1e3:.0f} ms: {ratio:.2f}")
    surrogate = load_judge("emoji/surrogate").eval().requires_grad_(False)
    goal = TargetAbsent(surrogate, views=True)
    classes = spread_classes(list(surrogate.labels), args.classes)

    def gradient(latents, embeddings, targets, spec: str) -> tuple[torch.Tensor, float, float]:
        mode, k, weight = parse(spec)
        start = latents.clone().requires_grad_()
        began = time.perf_counter()
        output = generator.sample(
            start, embeddings, steps=args.steps, guidance=args.guidance, gradient=mode, k=k,
            weight=weight,
        )  # fmt: skip
        goal.evaluate(output.images, targets).loss.sum().backward()
        cost = output.unet_evals + output.gradient_steps * (
            ratio + (mode not in ("exact-stored", "short-chain"))
        )
        return start.grad.flatten(1), cost, time.perf_counter() - began

    cosines = {spec: [] for spec in estimators}
    signs = {spec: [] for spec in estimators}
    costs, seconds = {}, {spec: [] for spec in ["exact", *estimators]}
    for name in tqdm(classes, desc="classes"):
        latents = generator.initial_latents(range(args.seeds))
        embeddings = generator.encode(f"a photo of a {name}")
        targets = torch.full((args.seeds,), surrogate.label_index(name))
        exact, costs["exact"], took = gradient(latents, embeddings, targets, "exact")
        seconds["exact"].append(took)
        for spec in estimators:
            estimate, costs[spec], took = gradient(latents, embeddings, targets, spec)
            seconds[spec].append(took)
            cosines[spec] += torch.nn.functional.cosine_similarity(estimate, exact).tolist()
            signs[spec] += (estimate.sign() == exact.sign()).float().mean(dim=1).tolist()

    def line(spec: str) -> str:
        quality = (
            f"{statistics.median(cosines[spec]):.2f} ({min(cosines[spec]):.2f}–"
            f"{max(cosines[spec]):.2f}) | {statistics.median(signs[spec]):.1%}"
            if spec in cosines
            else "1 | 100%"
        )
        return (
            f"| {spec} | {quality} | {costs[spec]:.0f} | {statistics.median(seconds[spec]):.1f} |"
        )

    text = "\n".join(
        [
            "## Gradient estimators",
            "",
            f"`python benchmarks/bench_gradient_estimators.py {' '.join(sys.argv[1:])}` — "
            f"{args.model}, {len(classes)} classes × {args.seeds} seeds ({', '.join(classes)}), "
            f'"a photo of a <class>", {args.steps} DDIM steps, guidance {args.guidance}, '
            f"SAGE's loss on emoji/surrogate with views; machine: {machine(args.threads)}.",
            "",
            f"Backward cost: one guided UNet step on a batch of {args.batch} latents takes "
            f"{forward * 1e3:.0f} ms forward and {backward * 1e3:.0f} ms backward (median of "
            f"{args.repeats}): a backward step costs **{ratio:.2f}** forward evaluations "
            f"(the attacks count {BACKWARD_COST}; a checkpointed step adds its forward again).",
            "",
            "| estimator (mode@k) | cosine to the exact gradient, median (min–max) "
            "| coordinates whose sign agrees, median | UNet evaluations per gradient, forward "
            f"+ backward | seconds per gradient of {args.seeds} latents, median |",
            "|---|---|---|---|---|",
            line("exact"),
            *map(line, estimators),
            "",
            "exact: through every step, checkpointed; residual@k: the last k steps, then SAGE's "
            "identity shortcut to the initial latent; residual-added@k:w: exact plus w × the "
            "shortcut at x_k; short-chain@S: the full render's loss carried back by an S-step "
            "DDIM chain from the same latent; first-k@k: the first k steps through the UNet, the "
            "rest through DDIM's linear term (SDO); exact-stored: exact without checkpoints. "
            "Sign agreement is over the latent's coordinates (50% is chance).",
        ]
    )
    publish("gradient-estimators", text, write=not args.no_write)


if __name__ == "__main__":
    main()
