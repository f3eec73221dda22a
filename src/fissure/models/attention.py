"""Cross-attention maps per prompt token, recorded through the UNet's attention processors.

Analyses (ATM's entanglement, word position) need to know where in the image each
prompt token attends. Stable Diffusion's cross-attention layers are the ``attn2``
modules of its transformer blocks; :func:`record_cross_attention` wraps their
processors for the length of a ``with`` block and puts the originals back after.

The wrapper leaves the layer's output to the original processor, so recording
never changes an image (not even in the last bit), and recomputes the attention
probabilities softmax(QKᵀ·scale) on the side under ``no_grad``: they are for
reading, not for differentiating, and keeping them out of the autograd graph also
keeps activation checkpointing's recomputation identical to the first pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention

from fissure.errors import FissureError


class CrossAttentionRecorder:
    """Running mean of cross-attention maps (B×tokens×h×w), over heads, layers and chosen steps.

    ``rows`` picks the conditional half of a guided UNet batch (the prompts, not the
    negative prompts). The sampler sets ``step`` before each UNet call; only the
    ``steps`` asked for are recorded. Each layer's map is resized to the latent's
    ``size`` (bilinear, which keeps the sum over tokens at one) so that layers of
    every resolution average together.
    """

    def __init__(self, size: tuple[int, int], rows: slice, steps: set[int]) -> None:
        self.size = size
        self.rows = rows
        self.steps = steps
        self.step = 0
        self._total: torch.Tensor | None = None
        self._count = 0

    @torch.no_grad()
    def add(self, attn: Attention, hidden_states: torch.Tensor, context: torch.Tensor) -> None:
        """Record one layer call: mean over heads of softmax(QKᵀ·scale) for the chosen rows."""
        hidden_states, context = hidden_states[self.rows], context[self.rows]
        if attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        query = attn.head_to_batch_dim(attn.to_q(hidden_states)).float()
        key = attn.head_to_batch_dim(attn.to_k(context)).float()
        probs = (query @ key.transpose(-1, -2) * attn.scale).softmax(dim=-1)
        batch, pixels, tokens = hidden_states.shape[0], query.shape[1], key.shape[1]
        probs = probs.view(batch, attn.heads, pixels, tokens).mean(dim=1)

        height, width = self.size
        factor = round(math.sqrt(height * width / pixels))
        layer_height, layer_width = math.ceil(height / factor), math.ceil(width / factor)
        maps = probs.transpose(1, 2).reshape(batch, tokens, layer_height, layer_width)
        maps = F.interpolate(maps, size=self.size, mode="bilinear", align_corners=False)
        self._total = maps if self._total is None else self._total + maps
        self._count += 1

    def maps(self) -> torch.Tensor:
        """The mean map: B×tokens×h×w, summing to one over tokens at every pixel."""
        if self._total is None:
            raise FissureError("no cross-attention was recorded: check the capture's steps")
        return self._total / self._count


class _RecordingProcessor:
    """Lets the original processor compute the layer, and shows the recorder its inputs."""

    def __init__(self, processor: Any, recorder: CrossAttentionRecorder) -> None:
        self.processor = processor
        self.recorder = recorder

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        if self.recorder.step in self.recorder.steps and encoder_hidden_states is not None:
            self.recorder.add(attn, hidden_states, encoder_hidden_states)
        return self.processor(
            attn,
            hidden_states,
            encoder_hidden_states=encoder_hidden_states,
            attention_mask=attention_mask,
            **kwargs,
        )


def cross_attention_layers(unet: UNet2DConditionModel, prefixes: Sequence[str] = ()) -> list[str]:
    """Names of the cross-attention processors, optionally only those under the given blocks."""
    prefixes = tuple(prefixes)
    layers = [
        name
        for name in unet.attn_processors
        if ".attn2." in name and (not prefixes or name.startswith(prefixes))
    ]
    if not layers:
        blocks = sorted({name.split(".attentions.")[0] for name in unet.attn_processors})
        raise FissureError(
            f"no cross-attention layer under {', '.join(prefixes) or 'this UNet'}; "
            f"blocks with attention: {', '.join(blocks) or 'none'}"
        )
    return layers


@contextmanager
def record_cross_attention(
    unet: UNet2DConditionModel, recorder: CrossAttentionRecorder, prefixes: Sequence[str] = ()
) -> Iterator[CrossAttentionRecorder]:
    """Record the chosen cross-attention layers into ``recorder``; restore the processors after."""
    chosen = set(cross_attention_layers(unet, prefixes))
    original = unet.attn_processors
    unet.set_attn_processor(
        {
            name: _RecordingProcessor(processor, recorder) if name in chosen else processor
            for name, processor in original.items()
        }
    )
    try:
        yield recorder
    finally:
        unet.set_attn_processor(dict(original))
