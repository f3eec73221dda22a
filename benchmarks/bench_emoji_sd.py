"""Measure how fast emoji-sd samples: 16 images × 25 DDIM steps with guidance 7.5.

    python benchmarks/bench_emoji_sd.py [--threads 2] [--model PATH] [--repeats 3]
    python benchmarks/bench_emoji_sd.py --unet-channels 48,96,192 --no-write
    python benchmarks/bench_emoji_sd.py --unet-attention-levels 1 --no-write

The bar (issue 11): under 5 s on two CPU cores. Each row is one precision of the
weights: float32, and bfloat16 where the CPU computes it natively (AVX512-BF16, AMX;
elsewhere it is emulated and slower, so it is not timed). Timing depends on the
architecture, not the weights, so the ``--unet-*`` options price a
candidate recipe (random weights) before anyone spends hours training it.
Writes its section of BENCHMARKS.md between ``<!-- emoji-sd:start -->`` and
``<!-- emoji-sd:end -->`` (a candidate's: ``emoji-sd-candidate``).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys

import torch
from common import machine, publish, random_emoji_sd, sampling_seconds, spread

from fissure.models import load_pipeline
from fissure.models.loading import native_bfloat16
from fissure.zoo.emoji_sd.common import count_parameters
from fissure.zoo.emoji_sd.config import default_config

BAR_SECONDS = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default=None, help="A pipeline folder (default: emoji-sd).")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="Print only.")
    parser.add_argument("--note", default="", help="A sentence on the conditions, printed too.")
    parser.add_argument(
        "--unet-channels", help="A candidate UNet's block widths, e.g. 48,96,192 (random weights)."
    )
    parser.add_argument("--unet-layers", type=int, help="A candidate UNet's layers per block.")
    parser.add_argument(
        "--unet-attention-levels",
        help="A candidate UNet's resolutions with attention, 0 the finest, e.g. 1 or 1,2.",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    candidate = {}
    if args.unet_channels:
        widths = tuple(int(c) for c in args.unet_channels.split(","))
        candidate["block_out_channels"] = widths
        # GroupNorm needs groups that divide every width (48 is not a multiple of 32).
        candidate["norm_num_groups"] = math.gcd(default_config().unet.norm_num_groups, *widths)
    if args.unet_layers:
        candidate["layers_per_block"] = args.unet_layers
    if args.unet_attention_levels:
        candidate["attention_levels"] = tuple(
            int(level) for level in args.unet_attention_levels.split(",")
        )
    if candidate:
        pipeline = random_emoji_sd(**candidate)
        settings = ", ".join(f"{key} {value}" for key, value in candidate.items())
        weights = f"a candidate recipe, random weights (UNet {settings})"
    else:
        source = args.model or "emoji-sd"
        pipeline = load_pipeline(source)
        weights = f"trained weights ({source})"
    dtypes = [torch.float32]
    if native_bfloat16(torch.device("cpu")):
        dtypes.append(torch.bfloat16)
    times: dict[torch.dtype, list[float]] = {dtype: [] for dtype in dtypes}
    for _ in range(args.repeats):  # precisions alternate, so a slow spell hits both
        for dtype in dtypes:
            pipeline.to(dtype=dtype)
            times[dtype] += sampling_seconds(pipeline, 1)
    rows = []
    for dtype, seconds in times.items():
        verdict = "meets" if statistics.median(seconds) < BAR_SECONDS else "MISSES"
        rows.append(f"| {str(dtype).removeprefix('torch.')} | {spread(seconds)} | {verdict} |")
    text = "\n".join(
        [
            "## emoji-sd sampling",
            "",
            f"`python benchmarks/bench_emoji_sd.py {' '.join(sys.argv[1:])}` — {weights}; "
            f"machine: {machine(args.threads)}.",
            "",
            f"| 16 images × 25 DDIM steps, guidance 7.5 (64×64), weights in | seconds, median "
            f"(min–max) of {args.repeats} | bar ({BAR_SECONDS:.0f} s) |",
            "|---|---|---|",
            *rows,
            "",
            f"UNet {count_parameters(pipeline.unet) / 1e6:.2f} M parameters, text encoder "
            f"{count_parameters(pipeline.text_encoder) / 1e6:.2f} M, VAE "
            f"{count_parameters(pipeline.vae) / 1e6:.2f} M."
            + ("" if len(dtypes) > 1 else " This CPU has no native bfloat16, so it is not timed.")
            + (f" {args.note}" if args.note else ""),
        ]
    )
    # a candidate's figures never replace the trained model's
    publish("emoji-sd-candidate" if candidate else "emoji-sd", text, write=not args.no_write)


if __name__ == "__main__":
    main()
