"""Classifier networks for emoji judges, built from small configs.

Three families from transformers (ResNet, ViT, ConvNeXt) form SAGE's surrogate
ensemble; a plain BN CNN, a family no member uses, is the verifier; and an
edge classifier sees only a differentiable Sobel edge map, as in SAGE, so that
colour and texture perturbations alone cannot fool it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    ConvNextConfig,
    ConvNextForImageClassification,
    ResNetConfig,
    ResNetForImageClassification,
    ViTConfig,
    ViTForImageClassification,
)


class TransformersClassifier(nn.Module):
    """A transformers image classifier seen as ``pixels -> logits``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixels).logits


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class ConvNet(nn.Module):
    """A VGG-like stack of BN conv blocks with global pooling."""

    def __init__(
        self, num_labels: int, in_channels: int = 3, channels: tuple[int, ...] = (32, 64, 128, 192)
    ) -> None:
        super().__init__()
        widths = (in_channels, *channels)
        self.features = nn.Sequential(
            *(_conv_block(a, b) for a, b in zip(widths, widths[1:], strict=False))
        )
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(channels[-1], num_labels))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(pixels).mean(dim=(2, 3)))


def sobel_edges(images: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude of the luminance, ``B×1×H×W``; differentiable everywhere."""
    luminance = (images * images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(
        1, keepdim=True
    )
    kernel_x = images.new_tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 4
    kernels = torch.stack([kernel_x, kernel_x.T]).unsqueeze(1)
    gradients = F.conv2d(F.pad(luminance, (1, 1, 1, 1), mode="replicate"), kernels)
    return torch.sqrt(gradients.pow(2).sum(1, keepdim=True) + 1e-6)


class EdgeClassifier(nn.Module):
    """Classifies from the edge map alone (SAGE's shape-biased ensemble member)."""

    def __init__(self, num_labels: int, channels: tuple[int, ...] = (32, 64, 128, 160)) -> None:
        super().__init__()
        self.net = ConvNet(num_labels, in_channels=1, channels=channels)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net(sobel_edges(pixels) * 4.0)


def build_network(architecture: str, num_labels: int, config: dict[str, Any]) -> nn.Module:
    """A fresh network of a named architecture mapping preprocessed pixels to logits."""
    if architecture == "resnet":
        model = ResNetForImageClassification(ResNetConfig(num_labels=num_labels, **config))
        return TransformersClassifier(model)
    if architecture == "vit":
        return TransformersClassifier(
            ViTForImageClassification(ViTConfig(num_labels=num_labels, **config))
        )
    if architecture == "convnext":
        model = ConvNextForImageClassification(ConvNextConfig(num_labels=num_labels, **config))
        return TransformersClassifier(model)
    if architecture == "convnet":
        return ConvNet(num_labels, channels=tuple(config.get("channels", (32, 64, 128, 192))))
    if architecture == "edge":
        return EdgeClassifier(
            num_labels, channels=tuple(config.get("channels", (32, 64, 128, 160)))
        )
    raise ValueError(f"unknown judge architecture {architecture!r}")
