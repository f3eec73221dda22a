"""What poisoning did to a model: poison success, implosion of the concepts left alone,
and where the words attend.

- **poison success**: generations of "a photo of a A" that the verifier reads as B;
- **implosion**: the verifier's accuracy and the CLIP score on unpoisoned concepts'
  generations (the paper's measure of collapse as more concepts are poisoned);
- **cross-attention**: each class word's map, averaged over steps, heads and layers.

Every rate comes with its count and its 95% Wilson interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline

from fissure.judges.base import Judge
from fissure.judges.pretrained import ClipJudge
from fissure.models.generator import CaptureSpec, Generator
from fissure.statistics import wilson_interval
from fissure.world import class_names
from fissure.zoo.emoji_sd.evaluate import class_readings, generate

CLASS_PROMPT = "a photo of a {}"


@dataclass(frozen=True)
class Rate:
    """``hits`` of ``total``, with the rate's 95% Wilson interval."""

    hits: int
    total: int

    @property
    def value(self) -> float:
        return self.hits / self.total if self.total else 0.0

    def to_dict(self) -> dict:
        low, high = wilson_interval(self.hits, self.total)
        return {
            "hits": self.hits,
            "total": self.total,
            "rate": self.value,
            "low": low,
            "high": high,
        }

    def __str__(self) -> str:
        low, high = wilson_interval(self.hits, self.total)
        return f"{self.value:.1%} ({self.hits}/{self.total}, 95% CI {low:.1%}–{high:.1%})"


@torch.no_grad()
def readings(verifier: Judge, images: torch.Tensor) -> list[str]:
    """The verifier's top-1 class name of each image."""
    top = torch.cat([verifier(images[i : i + 256]).argmax(1) for i in range(0, len(images), 256)])
    return [verifier.labels[k] for k in top.tolist()]


@dataclass
class Generations:
    """Generations of class prompts: ``images`` N×3×H×W, the class asked and what was read."""

    images: torch.Tensor
    asked: list[str]
    read: list[str]


def class_generations(
    pipeline: StableDiffusionPipeline,
    verifier: Judge,
    names: Sequence[str],
    seeds: Sequence[int],
    steps: int = 25,
    guidance: float = 7.5,
    progress: bool = True,
) -> Generations:
    """ "a photo of a <name>" for every name at every seed, and the verifier's readings."""
    asked = [name for name in names for _ in seeds]
    prompts = [CLASS_PROMPT.format(name) for name in asked]
    images = generate(
        pipeline, prompts, list(seeds) * len(names), steps, guidance, progress=progress
    )
    return Generations(images, asked, readings(verifier, images))


def read_as(generated: Generations, wanted: dict[str, str] | None = None) -> Rate:
    """Generations read as ``wanted[asked]`` (the class asked for when None), or as any
    class that name means ("mouse")."""
    meanings = class_readings()
    hits = sum(
        read in meanings[wanted[asked] if wanted is not None else asked]
        for asked, read in zip(generated.asked, generated.read, strict=True)
    )
    return Rate(hits, len(generated.asked))


def poison_success(generated: Generations, targets: dict[str, str]) -> Rate:
    """Generations of each poisoned concept read as its target."""
    return read_as(generated, targets)


def accuracy(generated: Generations) -> Rate:
    """Generations read as the class asked for."""
    return read_as(generated)


def clip_score(clip: ClipJudge, generated: Generations) -> float:
    """Mean CLIP cosine of the generations to their prompts."""
    prompts = [CLASS_PROMPT.format(name) for name in generated.asked]
    scores = [
        clip.text_similarity(generated.images[i : i + 256], prompts[i : i + 256])
        for i in range(0, len(prompts), 256)
    ]
    return float(torch.cat(scores).mean())


def word_positions(tokenizer, prompt: str, word: str) -> list[int]:
    """The token positions of ``word`` at the end of ``prompt`` (after the start token)."""
    before = len(tokenizer(prompt.removesuffix(word).rstrip()).input_ids) - 1
    return list(range(before, len(tokenizer(prompt).input_ids) - 1))


@torch.no_grad()
def attention_maps(
    pipeline: StableDiffusionPipeline, names: Sequence[str], seed: int, steps: int = 25
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each class prompt's image (N×3×H×W) and its class word's cross-attention map (N×h×w,
    scaled to a maximum of 1), averaged over steps, heads and layers."""
    generator = Generator(pipeline)
    prompts = [CLASS_PROMPT.format(name) for name in names]
    output = generator.sample(
        generator.initial_latents([seed] * len(names)),
        prompts,
        steps=steps,
        capture=CaptureSpec(attention=True),
    )
    maps = torch.stack(
        [
            output.attention[row, word_positions(pipeline.tokenizer, prompt, name)].mean(0)
            for row, (prompt, name) in enumerate(zip(prompts, names, strict=True))
        ]
    )
    peak = maps.flatten(1).amax(1).clamp_min(1e-12)
    return output.images.float().cpu(), (maps / peak[:, None, None]).float().cpu()


def unpoisoned_classes(poisoned: Sequence[tuple[str, str]]) -> list[str]:
    """The classes no pair touches, as source or target."""
    touched = {name for pair in poisoned for name in pair}
    return [name for name in class_names() if name not in touched]


def save_attention_figure(
    images: torch.Tensor, maps: torch.Tensor, titles: Sequence[str], path: Path
) -> None:
    """Each image above its word's attention map laid over it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch.nn.functional as F

    columns = len(images)
    figure, axes = plt.subplots(2, columns, figsize=(1.8 * columns, 3.8), squeeze=False)
    upsampled = F.interpolate(maps[:, None], size=images.shape[-2:], mode="bilinear")[:, 0]
    for column in range(columns):
        picture = images[column].permute(1, 2, 0).numpy()
        axes[0][column].imshow(picture)
        axes[0][column].set_title(titles[column], fontsize=7)
        axes[1][column].imshow(picture)
        axes[1][column].imshow(upsampled[column].numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1)
        for row in (0, 1):
            axes[row][column].axis("off")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
