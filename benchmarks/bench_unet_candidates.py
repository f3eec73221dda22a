"""Price candidate emoji-sd UNets before training one: step time, run hours, sampling time.

    python benchmarks/bench_unet_candidates.py [--threads 2] [--only recipe attn-8x8]

A UNet run is the longest stage of the recipe (tens of thousands of steps, hours on
two cores) and its sampling speed is a quality bar (16 images × 25 DDIM steps with
guidance under 5 s on two cores), so an architecture is chosen on both before any
weights exist. For each candidate (random weights; timing depends on the shape, not
the values): the network part of a ``train_unet`` step (batch 64, min-SNR, REPA
targets, forward + backward + AdamW; median of ``--steps`` after two warm-ups; the EMA
update, clipping, batch assembly and checkpoints are left out, so a real run is a
little slower), the projected hours of ``--run-steps`` such steps, and the whole pipeline's sampling time
in float32 and, where the CPU computes it natively, bfloat16. Writes the "emoji-sd
UNet candidates" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics

import torch
from common import (
    machine,
    median_step_seconds,
    publish,
    random_emoji_sd,
    sampling_seconds,
)

from fissure.models.loading import native_bfloat16
from fissure.zoo.emoji_sd.common import count_parameters
from fissure.zoo.emoji_sd.config import UnetStage, default_config
from fissure.zoo.emoji_sd.unet_stage import (
    MidBlockFeatures,
    RepaProjector,
    build_unet,
    training_scheduler,
    unet_loss,
)

#: Attention levels count from the finest resolution: 0 is 16×16, 1 is 8×8, 2 is 4×4.
CANDIDATES = {
    "recipe": {},
    "attn-8x8": {"attention_levels": (1,)},
    "attn-8x8+4x4": {"attention_levels": (1, 2)},
    "wide,attn-8x8": {
        "block_out_channels": (48, 96, 192),
        "norm_num_groups": 16,
        "attention_levels": (1,),
    },
    "wide,attn-8x8+4x4": {
        "block_out_channels": (48, 96, 192),
        "norm_num_groups": 16,
        "attention_levels": (1, 2),
    },
    "wider,attn-8x8+4x4": {"block_out_channels": (64, 128, 192), "attention_levels": (1, 2)},
}
SAMPLING_BAR_SECONDS = 5.0


def seconds_per_training_step(stage: UnetStage, latent_channels: int, steps: int) -> float:
    """Median seconds of one UNet training step (REPA on, as the recipe trains)."""
    config = default_config()
    torch.manual_seed(0)
    unet = build_unet(stage, latent_channels, config.clip.text_hidden).train()
    tokens = (64 // config.clip.patch_size) ** 2
    projector = RepaProjector(
        stage.block_out_channels[-1], stage.repa_hidden, config.clip.vision_hidden
    )
    mid = MidBlockFeatures(unet)
    scheduler = training_scheduler(stage)
    optimizer = torch.optim.AdamW([*unet.parameters(), *projector.parameters()], lr=1e-4)
    size = stage.batch_size
    batch = {
        "latents": torch.randn(size, latent_channels, 16, 16),
        "noise": torch.randn(size, latent_channels, 16, 16),
        "timesteps": torch.randint(stage.num_train_timesteps, (size,)),
        "text": torch.randn(size, config.data.max_length, config.clip.text_hidden),
        "repa": torch.randn(size, tokens, config.clip.vision_hidden),
    }

    def step() -> None:
        loss, _ = unet_loss(stage, unet, scheduler, batch, projector, mid)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    seconds = median_step_seconds(step, steps)
    mid.remove()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="*", choices=list(CANDIDATES), help="These candidates.")
    parser.add_argument("--latent-channels", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6, help="Timed training steps each.")
    parser.add_argument("--repeats", type=int, default=2, help="Timed samplings each.")
    parser.add_argument("--run-steps", type=int, default=40_000, help="Steps of a projected run.")
    parser.add_argument("--no-write", action="store_true", help="Print only.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    bfloat16 = native_bfloat16(torch.device("cpu"))
    base = default_config().unet
    rows = []
    for name in args.only or CANDIDATES:
        stage = dataclasses.replace(base, **CANDIDATES[name])
        step = seconds_per_training_step(stage, args.latent_channels, args.steps)
        pipeline = random_emoji_sd(args.latent_channels, **CANDIDATES[name])
        float32 = statistics.median(sampling_seconds(pipeline, args.repeats))
        shown = f"{float32:.2f}"
        if bfloat16:
            pipeline.to(dtype=torch.bfloat16)
            shown += f" / {statistics.median(sampling_seconds(pipeline, args.repeats)):.2f}"
        levels = (
            "all but the coarsest" if stage.attention_levels is None else stage.attention_levels
        )
        rows.append(
            f"| {name} | {stage.block_out_channels} | {levels} | "
            f"{count_parameters(pipeline.unet) / 1e6:.2f} M | {step:.2f} | "
            f"{step * args.run_steps / 3600:.1f} h | {shown} |"
        )
        print(rows[-1], flush=True)
    text = "\n".join(
        [
            "## emoji-sd UNet candidates",
            "",
            f"`python benchmarks/bench_unet_candidates.py --threads {args.threads}` — random "
            f"weights, {args.latent_channels} latent channels, batch {base.batch_size}; "
            f"machine: {machine(args.threads)}.",
            "",
            f"| candidate | widths | attention levels (0 = 16×16) | UNet | network s/step "
            f"(median of {args.steps}) | {args.run_steps:,} steps | sampling 16 × 25 steps, s "
            f"(median of {args.repeats}): float32{' / bfloat16' if bfloat16 else ''} "
            f"(bar {SAMPLING_BAR_SECONDS:.0f}) |",
            "|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    publish("emoji-sd-unet-candidates", text, write=not args.no_write)


if __name__ == "__main__":
    main()
