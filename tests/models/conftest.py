"""Tiny random SD-1.x (epsilon, PNDM) and SD-2.x (v-prediction, DDIM) pipelines for generator tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from diffusers import StableDiffusionPipeline

from fissure.zoo.tiny import build_tiny_pipeline


@pytest.fixture
def tiny() -> Callable[..., StableDiffusionPipeline]:
    """Build a fresh tiny pipeline (tests may swap its scheduler); float64 for finite differences."""

    def build(kind: str, dtype: torch.dtype = torch.float32) -> StableDiffusionPipeline:
        return build_tiny_pipeline(kind).to(dtype)

    return build
