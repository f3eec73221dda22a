"""A tiny random pipeline and toy judges whose verdict the latent can move, for attack tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from fissure.judges.base import Judge
from fissure.models import Generator
from fissure.zoo.tiny import build_tiny_pipeline

STEPS = 3


class BrightnessJudge(Judge):
    """Labels ("light", "dark", "grey"): "light" wins when the mean pixel exceeds ``threshold``.

    The attack can remove "light" only by darkening the whole image, which the
    latent controls smoothly even in a random model: a target with a known answer.
    """

    def __init__(self, threshold: float, sharpness: float = 200.0) -> None:
        super().__init__(["light", "dark", "grey"], input_size=32)
        self.threshold = threshold
        self.sharpness = sharpness

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        brightness = self.preprocess(images).mean(dim=(1, 2, 3))
        light = self.sharpness * (brightness - self.threshold)
        return torch.stack([light, -light, torch.zeros_like(light)], dim=1)


class BlurredBrightnessJudge(BrightnessJudge):
    """:class:`BrightnessJudge` behind a seeded 3×3 blur, a convolution as in real judges.

    CPU convolution kernels round a row's last bits differently in batches of other
    sizes: what makes an attempt depend on its batch partners if batches change size.
    """

    def __init__(self, threshold: float) -> None:
        super().__init__(threshold)
        self.blur = torch.nn.Conv2d(3, 3, 3, padding=1, padding_mode="replicate", bias=False)
        weight = torch.rand(self.blur.weight.shape, generator=torch.Generator().manual_seed(0))
        self.blur.weight.data = weight / weight.sum(dim=(1, 2, 3), keepdim=True)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return self.blur(super().preprocess(images))


@pytest.fixture(scope="module")
def generator() -> Generator:
    return Generator(build_tiny_pipeline("sd1"))


@pytest.fixture(scope="module")
def clean_brightness(generator: Generator) -> dict[int, float]:
    """Mean pixel of the clean image of "a photo of light" for seeds 0-3."""
    latents = generator.initial_latents(range(4))
    images = generator.sample(latents, "a photo of light", steps=STEPS).images
    return {seed: float(images[seed].mean()) for seed in range(4)}


@pytest.fixture(scope="module")
def surrogate(clean_brightness: dict[int, float]) -> BrightnessJudge:
    """Every clean image is "light" (the threshold sits just below the darkest)."""
    return BrightnessJudge(min(clean_brightness.values()) - 0.01)


@pytest.fixture(scope="module")
def language_model(generator, tmp_path_factory) -> Path:
    """A random GPT-2 over the tiny pipeline's own tokenizer (its words are single letters)."""
    folder = tmp_path_factory.mktemp("lm")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(generator.tokenizer), n_embd=16, n_layer=1, n_head=2)
    GPT2LMHeadModel(config).save_pretrained(folder)
    generator.tokenizer.save_pretrained(folder)
    return folder
