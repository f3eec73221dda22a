"""Nightshade's poisons on a tiny random VAE: the bound, the pull toward the anchor, the
release's step schedule, and images optimised independently of their batch."""

from __future__ import annotations

import pytest
import torch

from fissure.errors import FissureError
from fissure.poison.nightshade import latent_mean, nightshade, step_sizes
from fissure.zoo.tiny import build_tiny_pipeline


@pytest.fixture(scope="module")
def vae():
    return build_tiny_pipeline("sd1").vae.eval()


def _images(count: int, size: int, seed: int) -> torch.Tensor:
    return torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_the_step_schedule_is_the_releases():
    sizes = step_sizes(0.05, 500)
    assert len(sizes) == 500 and sizes[0] == pytest.approx(0.05)
    assert sizes[-1] == pytest.approx(0.05 - (0.05 - 0.0005) * 499 / 500)
    assert all(a > b for a, b in zip(sizes, sizes[1:], strict=False))


def test_poisons_stay_in_the_bound_and_move_toward_the_anchor(vae):
    size = vae.config.sample_size
    images, anchor = _images(3, size, 0), _images(1, size, 1)
    poisoned = nightshade(vae, images, anchor, epsilon=0.05, steps=20)
    assert (poisoned - images).abs().max() <= 0.05 + 1e-6
    assert poisoned.min() >= 0 and poisoned.max() <= 1
    with torch.no_grad():
        target = latent_mean(vae, anchor)
        before = (latent_mean(vae, images) - target).flatten(1).norm(dim=1)
        after = (latent_mean(vae, poisoned) - target).flatten(1).norm(dim=1)
    assert (after < before).all()


def test_each_image_is_poisoned_as_if_alone(vae):
    size = vae.config.sample_size
    images, anchor = _images(2, size, 2), _images(1, size, 3)
    together = nightshade(vae, images, anchor, steps=5)
    alone = torch.cat([nightshade(vae, images[i : i + 1], anchor, steps=5) for i in range(2)])
    # a sign step can flip where a gradient element is ~0 and the batch rounds it otherwise
    differ = ((together - alone).abs() > 1e-5).float().mean()
    assert differ < 1e-3


def test_bad_inputs_are_one_line(vae):
    size = vae.config.sample_size
    images = _images(2, size, 4)
    with pytest.raises(FissureError, match="epsilon"):
        nightshade(vae, images, images[:1], epsilon=0)
    with pytest.raises(FissureError, match="same size"):
        nightshade(vae, images, _images(1, size * 2, 5))
