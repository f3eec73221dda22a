"""Images and tensors on disk by content hash: written once, shared by every record naming them.

A blob is written whole (:func:`~fissure.atomic.atomic_write`) and synced before the
row that names it is committed, so a row never points at a missing or half-written file.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch
from safetensors.torch import save

from fissure.atomic import atomic_write
from fissure.images import to_pil

BLOBS = "blobs"


def png_bytes(image: torch.Tensor) -> bytes:
    """One 3×H×W image in [0, 1] as PNG bytes (8 bits per channel, as the verifiers read it)."""
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="PNG", compress_level=1)  # fast: a finding in < 5 ms
    return buffer.getvalue()


def tensor_bytes(tensor: torch.Tensor, name: str = "delta") -> bytes:
    """A tensor as safetensors bytes (float32, on the CPU): readable without fissure."""
    return save({name: tensor.detach().float().cpu().contiguous()})


def put_blob(folder: Path, data: bytes, suffix: str) -> str:
    """Store ``data`` under its hash; returns its path relative to ``folder``."""
    digest = hashlib.sha256(data).hexdigest()
    relative = f"{BLOBS}/{digest[:2]}/{digest}{suffix}"
    path = folder / relative
    if not path.is_file():  # the same bytes are already there, whole: nothing to write
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as partial:
            partial.write_bytes(data)
    return relative
