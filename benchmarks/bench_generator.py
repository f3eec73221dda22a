"""Seconds and peak memory of one gradient step through the Generator: exact vs residual.

A gradient step is what a latent attack pays per iteration: sample B images from
B latents with guidance, take a loss on the images, and backpropagate it to the
latents. Each (mode, steps) configuration runs in a fresh subprocess, so its peak
memory is its own:

* CPU: the subprocess's peak resident set (``VmHWM`` in /proc/self/status) above
  its resident set just before the timed steps. A warm-up step (2 denoising
  steps, same shapes) runs first, then the peak is reset (``5`` into
  /proc/self/clear_refs). glibc's mmap threshold is pinned at 64 KiB
  (``MALLOC_MMAP_THRESHOLD_``) so freed tensors go back to the OS instead of
  staying resident in the heap, and the peak follows live tensors.
* CUDA: ``torch.cuda.max_memory_allocated`` above the allocation before the steps.

Time is the median of ``--repeats`` steps after the warm-up. The model is emoji-sd
when it is installed; until then a randomly initialised pipeline of its planned
architecture (same cost; weights do not change the arithmetic). ``--sd15`` uses
the SD-1.5 architecture at 512×512, for GPU runs.

    python benchmarks/bench_generator.py                 # CPU, emoji-sd size, writes BENCHMARKS.md
    python benchmarks/bench_generator.py --sd15 --device cuda --dtype float16 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import machine, publish
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from fissure.models import Generator, load_pipeline
from fissure.zoo.tiny import build_byte_tokenizer

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "a photo of a dog"


def _pipeline(
    text_encoder: CLIPTextModel, unet: UNet2DConditionModel, vae: AutoencoderKL
) -> StableDiffusionPipeline:
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=build_byte_tokenizer(),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _text_encoder(hidden: int, layers: int, heads: int) -> CLIPTextModel:
    tokenizer = build_byte_tokenizer()
    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=hidden,
            intermediate_size=4 * hidden,
            num_attention_heads=heads,
            num_hidden_layers=layers,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )


def sd15_architecture() -> StableDiffusionPipeline:
    """Random weights in SD-1.5's shape: 512×512 images, 64×64×4 latents, 860 M UNet."""
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
        sample_size=512,
    )
    return _pipeline(_text_encoder(768, 12, 12), unet, vae)


def build_model(sd15: bool, device: str, dtype: str) -> tuple[StableDiffusionPipeline, str]:
    """The pipeline to measure, and what it is."""
    torch.manual_seed(0)
    torch_dtype = getattr(torch, dtype)
    if sd15:
        return sd15_architecture().to(device, torch_dtype), "SD-1.5 architecture, random weights"
    return load_pipeline("emoji-sd", device=device, dtype=dtype), "emoji-sd (trained)"


def _status(field: str) -> int:
    """A /proc/self/status field, in bytes."""
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+) kB", text).group(1)) * 1024


def run_worker(config: dict) -> dict:
    """Measure one configuration in this (fresh) process."""
    torch.set_num_threads(config["threads"])
    pipeline, model = build_model(config["sd15"], config["device"], config["dtype"])
    generator = Generator(pipeline)
    cuda = generator.device.type == "cuda"
    latents = generator.initial_latents(range(config["batch"]))
    embeddings = generator.encode(PROMPT)
    height, width = (size * pipeline.vae_scale_factor for size in latents.shape[2:])
    weights = torch.randn(
        len(latents), 3, height, width, generator=torch.Generator().manual_seed(1)
    )
    weights = weights.to(generator.device, generator.dtype)

    def gradient_step(steps: int) -> torch.Tensor:
        start = latents.clone().requires_grad_()
        result = generator.sample(
            start, embeddings, steps=steps, gradient=config["mode"], k=config["k"]
        )
        (result.images * weights).mean().backward()
        return start.grad

    gradient_step(2)  # warm-up: kernels, allocator, lazy initialisation
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        baseline = _status("VmRSS")
    seconds = []
    for _ in range(config["repeats"]):
        start = time.perf_counter()
        gradient = gradient_step(config["steps"])
        if cuda:
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated() if cuda else _status("VmHWM")) - baseline
    torch.save(gradient.float().cpu(), config["gradient_file"])
    return {
        **config,
        "model": model,
        "parameters_m": sum(p.numel() for p in pipeline.unet.parameters()) / 1e6,
        "seconds": statistics.median(seconds),
        "all_seconds": seconds,
        "peak_mb": peak / 2**20,
    }


def measure(config: dict) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", PYTHONWARNINGS="ignore")
    process = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(config)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if process.returncode:
        raise SystemExit(f"worker failed for {config}:\n{process.stderr[-3000:]}")
    return json.loads(process.stdout.strip().splitlines()[-1])


def table(results: list[dict], args: argparse.Namespace) -> str:
    by_key = {(r["mode"], r["steps"]): r for r in results}
    gradients = {key: torch.load(r["gradient_file"]) for key, r in by_key.items()}
    first = min(args.steps)
    lines = [
        "| mode | steps | s / gradient step | peak memory (MiB) | peak / peak at "
        f"{first} steps | exact time / this | cosine to exact gradient | every repeat (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (mode, steps), r in sorted(by_key.items(), key=lambda item: (item[0][0], item[0][1])):
        exact = by_key.get(("exact", steps))
        cosine = torch.nn.functional.cosine_similarity(
            gradients[(mode, steps)].flatten(), gradients[("exact", steps)].flatten(), dim=0
        ).item()
        label = mode if mode == "exact" else f"{mode} (k={args.k})"
        lines.append(
            f"| {label} | {steps} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | "
            f"{r['peak_mb'] / by_key[(mode, first)]['peak_mb']:.2f} | "
            f"{exact['seconds'] / r['seconds']:.1f}× | {cosine:.3f} | "
            f"{', '.join(f'{s:.2f}' for s in r['all_seconds'])} |"
        )
    return "\n".join(lines)


def bars(results: list[dict], args: argparse.Namespace) -> list[str]:
    by_key = {(r["mode"], r["steps"]): r for r in results}
    low, high = min(args.steps), max(args.steps)
    growth = by_key[("exact", high)]["peak_mb"] / by_key[("exact", low)]["peak_mb"]
    speedup = by_key[("exact", high)]["seconds"] / by_key[("residual", high)]["seconds"]
    return [
        f"- exact peak memory at {high} steps / at {low} steps: {growth:.2f} "
        f"(bar ≤ 1.5: {'met' if growth <= 1.5 else 'NOT met'})",
        f"- exact time / residual time at {high} steps: {speedup:.1f}× "
        f"(bar ≥ 3: {'met' if speedup >= 3 else 'NOT met'})",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--batch", type=int, default=4, help="latents per gradient step")
    parser.add_argument("--k", type=int, default=1, help="steps on residual's gradient path")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--sd15", action="store_true", help="SD-1.5 architecture at 512×512")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(json.loads(args.worker))))
        return

    started = time.time()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for mode in ("exact", "residual"):
            for steps in args.steps:
                config = {
                    "mode": mode,
                    "steps": steps,
                    "k": args.k,
                    "batch": args.batch,
                    "repeats": args.repeats,
                    "threads": args.threads,
                    "device": args.device,
                    "dtype": args.dtype,
                    "sd15": args.sd15,
                    "gradient_file": f"{folder}/{mode}-{steps}.pt",
                }
                result = measure(config)
                print(
                    f"{mode:>8} {steps:>3} steps: {result['seconds']:.2f} s "
                    f"{[round(s, 2) for s in result['all_seconds']]}, peak {result['peak_mb']:.0f} MiB",
                    flush=True,
                )
                results.append(result)
        rows = table(results, args)
    section = "\n".join(
        [
            "## Generator",
            "",
            "One gradient step of a latent attack: sample a batch from latents with guidance 7.5 "
            "(DDIM), take a loss on the images, backpropagate to the latents "
            "(`python benchmarks/bench_generator.py`).",
            "",
            f"- model: {results[0]['model']}, UNet {results[0]['parameters_m']:.1f} M parameters; "
            f"batch {args.batch}; median of {args.repeats} steps after a warm-up",
            f"- machine: {machine(args.threads, args.device)}, {args.dtype}",
            f"- measured {time.strftime('%Y-%m-%d')} in {time.time() - started:.0f} s",
            "",
            rows,
            "",
            *bars(results, args),
            "",
            "Peak memory is the rise of the worker process's peak resident set (VmHWM, reset "
            "after a warm-up step) over its resident set before the timed steps, with glibc's "
            "mmap threshold pinned at 64 KiB so freed tensors leave the resident set; on CUDA, "
            "`torch.cuda.max_memory_allocated` over the allocation before the steps. Exact mode "
            "checkpoints every UNet call, so its peak holds one step's activations and the VAE "
            "decoder's, plus a few latent-sized tensors per step. Cosine: between this mode's "
            "gradient and the exact one for the same latents and loss.",
            *(
                [
                    "",
                    "CPU times vary with whatever else runs on the machine: compare the ratios "
                    "within the table rather than the seconds across runs. "
                    f"{args.threads} torch thread(s) per worker: PyTorch's OpenMP threads "
                    "spin-wait and slow down many-fold when other processes hold the cores.",
                ]
                if args.device == "cpu"
                else []
            ),
        ]
    )
    print()
    publish("generator", section, write=not args.no_write)


if __name__ == "__main__":
    main()
