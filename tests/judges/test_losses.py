"""Losses: SAGE's ensemble loss and ATM's margin loss, with gradients checked numerically."""

from __future__ import annotations

import torch

from fissure.judges import EmojiJudge, Ensemble, margin_loss, sage_loss

LABELS = ["dog", "cat", "red apple", "bicycle"]


def _judges() -> Ensemble:
    torch.manual_seed(0)
    members = [
        EmojiJudge(
            LABELS,
            "resnet",
            dict(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic"),
            input_size=16,
        ),
        EmojiJudge(LABELS, "edge", {"channels": [8, 16]}, input_size=16),
    ]
    return Ensemble(members).eval().double()


def test_sage_loss_values():
    probabilities = torch.tensor(
        [[[0.9, 0.1], [0.2, 0.8]], [[0.7, 0.3], [0.5, 0.5]]]
    )  # M=2, B=2, C=2
    loss = sage_loss(probabilities, torch.tensor([0, 1]))
    expected = torch.tensor([-(1 - 1.8) - (1 - 1.4), -(1 - 1.6) - (1 - 1.0)])
    assert torch.allclose(loss, expected)


def test_margin_loss_values_and_floor():
    scores = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    assert torch.allclose(margin_loss(scores, 0), torch.tensor([2.0, 0.0]))
    assert torch.allclose(margin_loss(scores, 0, margin=1.0), torch.tensor([2.0, -1.0]))
    assert torch.allclose(margin_loss(scores, 0, margin=5.0), torch.tensor([2.0, -2.0]))


def _directional_check(loss_of_images, images: torch.Tensor) -> None:
    images = images.clone().requires_grad_(True)
    loss_of_images(images).sum().backward()
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):
        direction = torch.randn(images.shape, generator=generator, dtype=images.dtype)
        epsilon = 1e-6  # small, so the probe rarely crosses a ReLU or max-pool kink
        with torch.no_grad():
            numeric = (
                loss_of_images(images + epsilon * direction).sum()
                - loss_of_images(images - epsilon * direction).sum()
            ) / (2 * epsilon)
        analytic = (images.grad * direction).sum()
        assert torch.isclose(analytic, numeric, rtol=1e-4, atol=1e-8), (analytic, numeric)


def test_sage_loss_gradient_matches_finite_differences():
    ensemble = _judges()
    images = torch.rand(
        2, 3, 24, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    _directional_check(
        lambda x: sage_loss(ensemble.member_probabilities(x), torch.tensor([0, 2])), images
    )


def test_margin_loss_gradient_matches_finite_differences():
    ensemble = _judges()
    images = torch.rand(
        2, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2)
    )
    _directional_check(lambda x: margin_loss(ensemble.logits(x), 1, margin=100.0), images)
