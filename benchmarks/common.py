"""What every benchmark script shares: a description of the machine and the BENCHMARKS.md writer."""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import re
import statistics
import time
from pathlib import Path

import torch

import fissure.console  # noqa: F401  (keeps library chatter off before transformers loads)
from fissure.results import Finding

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
BUDGET_GRID = (250, 500, 1000, 2000)
"""The budgets (UNet evaluations an attempt) at which attack benchmarks give the ASR."""


def machine(threads: int | None = None, device: str = "cpu") -> str:
    """CPU, core count, torch threads and version, the GPU when one is used, the date, and
    the load when the run began (other work on the cores slows every figure)."""
    parts = [
        f"{platform.processor() or platform.machine()}",
        f"{os.cpu_count()} CPUs visible",
        f"{threads or torch.get_num_threads()} torch threads",
        f"torch {torch.__version__}",
        f"Python {platform.python_version()}",
        f"{time.strftime('%Y-%m-%d')}",
        f"load average {os.getloadavg()[0]:.1f}",
    ]
    if device.startswith("cuda"):
        parts.append(torch.cuda.get_device_name())
    return ", ".join(parts)


def publish(name: str, text: str, write: bool = True) -> None:
    """Print a benchmark's section and, with ``write``, put it in BENCHMARKS.md: replace the
    text between ``<!-- name:start -->`` and ``<!-- name:end -->``, or append it."""
    print(text)
    if not write:
        return
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    old = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    block = f"{start}\n{text.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    new = (
        pattern.sub(lambda _: block, old)
        if pattern.search(old)
        else old.rstrip() + "\n\n" + block + "\n"
    )
    BENCHMARKS.write_text(new)


def random_emoji_sd(latent_channels: int | None = None, **unet_settings):
    """emoji-sd's recipe with random weights: what a recipe costs before it is trained.

    ``unet_settings`` replace fields of the recipe's ``UnetStage`` (a candidate
    architecture); ``latent_channels`` the VAE's (default: the recipe's).
    """
    from fissure.zoo.emoji_sd.clip_stage import build_clip, text_encoder_from_clip
    from fissure.zoo.emoji_sd.config import default_config
    from fissure.zoo.emoji_sd.recipe import assemble_pipeline
    from fissure.zoo.emoji_sd.tokenizer import caption_corpus, train_tokenizer
    from fissure.zoo.emoji_sd.unet_stage import build_unet
    from fissure.zoo.emoji_sd.vae_stage import build_vae

    config = default_config()
    if latent_channels is not None:
        vae_stage = dataclasses.replace(config.vae, latent_channels=latent_channels)
        config = dataclasses.replace(config, vae=vae_stage)
    tokenizer = train_tokenizer(
        caption_corpus(5000), config.data.vocab_size, config.data.max_length
    )
    clip = build_clip(config.clip, tokenizer)
    vae = build_vae(config.vae)
    stage = dataclasses.replace(config.unet, **unet_settings)
    unet = build_unet(stage, config.vae.latent_channels, config.clip.text_hidden)
    return assemble_pipeline(tokenizer, text_encoder_from_clip(clip), vae, unet.eval(), config)


def spread_classes(labels: list[str], count: int) -> list[str]:
    """``count`` labels evenly spread over the label list (a fixed, reproducible choice)."""
    return labels[:: max(1, len(labels) // count)][:count]


@torch.no_grad()
def drawn_classes(generator, verifiers, labels: list[str], seeds: list[int]) -> list[str]:
    """The classes whose "a photo of a <class>" every verifier reads at every one of
    ``seeds``: the ones the model draws recognisably (a target it cannot draw cannot be
    made to appear)."""
    from fissure.attacks.naming import class_phrase

    drawn = []
    for label in labels:
        embeddings = generator.encode([f"a photo of a {class_phrase(label)}"] * len(seeds))
        images = generator.sample(
            generator.initial_latents(seeds), embeddings, steps=25, guidance=7.5, gradient="none"
        ).images
        if all(verifiers.shows_target(verifiers.read(image), label) for image in images):
            drawn.append(label)
    return drawn


def spread(times: list[float]) -> str:
    """ "median (min–max)" of a list of seconds."""
    return f"{statistics.median(times):.2f} ({min(times):.2f}–{max(times):.2f})"


def sampling_seconds(pipeline, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` samplings of 16 images × 25 DDIM steps, guidance 7.5.

    The issue's speed bar; one untimed warm-up first. Seeds are fixed so every
    candidate does the same work.
    """
    prompts = [f"a photo of a dog {i}" for i in range(16)]

    def sample() -> float:
        generators = [torch.Generator().manual_seed(i) for i in range(16)]
        started = time.perf_counter()
        pipeline(prompts, num_inference_steps=25, guidance_scale=7.5, generator=generators)
        return time.perf_counter() - started

    sample()
    return [sample() for _ in range(repeats)]


def median_step_seconds(step, steps: int, warmups: int = 2) -> float:
    """Median seconds of ``steps`` calls of ``step()`` after ``warmups`` untimed ones."""
    for _ in range(warmups):
        step()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def fisher_greater(hits_a: int, total_a: int, hits_b: int, total_b: int) -> float:
    """One-sided Fisher exact p-value that A's rate of hits exceeds B's: the chance, with
    the margins fixed, of A getting ``hits_a`` hits or more (hypergeometric upper tail)."""
    hits, total = hits_a + hits_b, total_a + total_b

    def probability(a: int) -> float:
        return math.comb(hits, a) * math.comb(total - hits, total_a - a) / math.comb(total, total_a)

    return min(1.0, sum(probability(a) for a in range(hits_a, min(hits, total_a) + 1)))


def asr_within(findings: list[Finding], budget: float) -> float:
    """Verified failures within ``budget`` UNet evaluations, over the attacked attempts."""
    attacked = [f for f in findings if f.clean_shows_target]
    hits = sum(f.verified_failure and f.unet_evals <= budget for f in attacked)
    return hits / len(attacked) if attacked else 0.0


@dataclasses.dataclass
class Outcome:
    label: str
    findings: list[Finding]
    batch_size: int

    @property
    def attacked(self) -> list[Finding]:
        return [f for f in self.findings if f.clean_shows_target]

    @property
    def verified(self) -> list[Finding]:
        return [f for f in self.attacked if f.verified_failure]

    @property
    def evals(self) -> int:
        return sum(f.unet_evals for f in self.findings)

    @property
    def hours(self) -> float:
        return sum(f.seconds for f in self.findings) / self.batch_size / 3600

    def per_thousand(self) -> float:
        return 1000 * len(self.verified) / self.evals

    def per_hour(self) -> float:
        return len(self.verified) / self.hours


def plot(outcomes: list[Outcome], budget: int, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = [*range(0, budget, max(1, budget // 100)), budget]
    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for o in outcomes:
        axes.plot(grid, [100 * asr_within(o.findings, b) for b in grid], label=o.label)
    axes.set_xlabel("UNet evaluations per attempt (budget)")
    axes.set_ylabel("verified attack success (% of attacked)")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
