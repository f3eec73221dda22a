"""Loading diffusion pipelines and driving them (sampling, gradients, capture)."""

from fissure.models.generator import (
    CaptureSpec,
    FreeTokens,
    Generator,
    GeneratorOutput,
    PromptEmbeddings,
)
from fissure.models.loading import load_pipeline, resolve_device, resolve_dtype

__all__ = [
    "CaptureSpec",
    "FreeTokens",
    "Generator",
    "GeneratorOutput",
    "PromptEmbeddings",
    "load_pipeline",
    "resolve_device",
    "resolve_dtype",
]
