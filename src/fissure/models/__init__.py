"""Loading diffusion pipelines and driving them (sampling, gradients, capture)."""

from fissure.models.loading import load_pipeline, resolve_device, resolve_dtype

__all__ = ["load_pipeline", "resolve_device", "resolve_dtype"]
