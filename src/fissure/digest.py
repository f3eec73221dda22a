"""A short fingerprint of modules' weights: what a run folder binds its findings to."""

from __future__ import annotations

import hashlib

from torch import nn


def image_weights_digest(model) -> str:
    """The digest of what makes a pipeline's images (text encoder, UNet, VAE), for a
    diffusers pipeline or anything holding the three: one fingerprint for run folders and
    evaluations alike."""
    return weights_digest(model.text_encoder, model.unet, model.vae)


def weights_digest(*modules: nn.Module) -> str:
    """Hash of every tensor's name, shape and first 1,024 values, over ``modules`` in order.

    Enough to tell a retrained model or judge from the one a folder's findings were
    made with, and quick even for SD's 860 M-parameter UNet.
    """
    digest = hashlib.sha256()
    for module in modules:
        for name, tensor in module.state_dict().items():
            digest.update(f"{name}{tuple(tensor.shape)}".encode())
            digest.update(tensor.detach().flatten()[:1024].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]
