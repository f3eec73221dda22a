"""Search spaces: what an attack changes, and how a change becomes images.

A space binds each attempt (prompt, seed) to its fixed inputs once, then renders
any batch of search variables. Every batch it renders has the same number of
rows (short batches are padded by repeating a row), and so has every batch the
judges score: CPU convolution kernels and reductions change with the batch
shape, so a fixed shape keeps each attempt's images and scores independent of
which other attempts shared its batch (bit for bit on one thread; several
threads may round a row's last bits by its position).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from fissure.models.generator import TRUNCATED, Generator, GradientMode, PromptEmbeddings


@dataclass(frozen=True)
class Attempt:
    """One thing to attack: a prompt, the class it asks for, and a seed."""

    prompt: str
    target: str
    target_index: int
    seed: int


@dataclass
class LatentStart:
    """An attempt bound to its inputs: the seed's latent and the prompt's embeddings."""

    attempt: Attempt
    latent: torch.Tensor  # 1×C×h×w, float32 whatever the model's dtype: δ moves in float32
    prompt_embeds: torch.Tensor  # 1×L×D
    negative_prompt_embeds: torch.Tensor  # 1×L×D


@dataclass
class Rendering:
    """Images of a batch of variables and what they cost per row."""

    images: torch.Tensor  # batch_size×3×H×W in [0, 1]: the rows, then copies of the last
    unet_evals: int  # forward UNet evaluations per row
    backward_evals: float  # what a backward pass costs per row, in UNet evaluations


def fresh_seed(seed: int, index: int) -> int:
    """The seed of the ``index``-th fresh latent drawn for an attempt (0: the attempt's own)."""
    if index == 0:
        return seed
    digest = hashlib.sha256(f"fissure-fresh-latent:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:7], "big")


class LatentPerturbation:
    """SAGE's latent space: the initial latent ``z(seed) + δ``; prompt and sampler fixed.

    ``gradient`` and ``k`` choose how ∂loss/∂δ is obtained (see
    :class:`~fissure.models.Generator`): ``residual`` differentiates the last k
    steps exactly and carries the gradient back to the initial latent through an
    identity shortcut.
    """

    def __init__(
        self,
        generator: Generator,
        steps: int = 25,
        guidance: float = 7.5,
        gradient: GradientMode = "residual",
        k: int = 2,
        batch_size: int = 8,
        weight: float = 1.0,
    ) -> None:
        self.generator = generator
        self.weight = weight
        self.steps = steps
        self.guidance = guidance
        self.gradient = gradient
        self.k = k
        self.batch_size = batch_size
        self._embeddings: dict[str, PromptEmbeddings] = {}

    def settings(self) -> dict[str, object]:
        """What decides the images and gradients, for the record."""
        return dict(
            space="latent",
            steps=self.steps,
            guidance=self.guidance,
            gradient=self.gradient,
            k=self.k if self.gradient in TRUNCATED else None,
            **({"weight": self.weight} if self.gradient == "residual-added" else {}),
            batch_size=self.batch_size,
            sampler=type(self.generator.scheduler).__name__,
            dtype=str(self.generator.dtype).removeprefix("torch."),
            weights=self.generator.weights_digest(),
        )

    def bind(self, attempt: Attempt) -> LatentStart:
        if attempt.prompt not in self._embeddings:
            with torch.no_grad():
                self._embeddings[attempt.prompt] = self.generator.encode(attempt.prompt)
        embeddings = self._embeddings[attempt.prompt]
        return LatentStart(
            attempt,
            self.generator.initial_latents([attempt.seed]).float(),
            embeddings.prompt_embeds,
            embeddings.negative_prompt_embeds,
        )

    def origin(self, start: LatentStart) -> torch.Tensor:
        """The unperturbed point, δ = 0."""
        return torch.zeros_like(start.latent[0])

    def fresh(self, start: LatentStart, index: int) -> torch.Tensor:
        """The δ that turns the attempt's latent into its ``index``-th fresh one (random search).

        In float64, where the difference of two float32 tensors is exact: ``z + δ`` is then
        the fresh latent bit for bit, the one ``fissure generate --seeds`` draws.
        """
        latent = self.generator.initial_latents([fresh_seed(start.attempt.seed, index)])
        return (latent.double() - start.latent.double())[0]

    def latent(self, start: LatentStart, delta: torch.Tensor) -> torch.Tensor:
        """The initial latent the sampler starts from."""
        return start.latent[0] + delta

    def render(
        self, starts: Sequence[LatentStart], deltas: torch.Tensor, differentiable: bool
    ) -> Rendering:
        """Images of ``z + δ`` for each row; gradients reach ``deltas`` if ``differentiable``.

        Short batches are padded with copies of the last row, and the images keep the
        padding: a judge that scores them sees batches of one size too, so a row's
        scores never depend on how many partners it has.
        """
        rows = len(starts)
        pad = self.batch_size - rows if rows < self.batch_size else 0
        starts = list(starts) + [starts[-1]] * pad
        if pad:
            deltas = torch.cat([deltas, deltas[-1:].detach().expand(pad, *deltas.shape[1:])])
        latents = torch.cat([start.latent for start in starts]) + deltas
        embeddings = PromptEmbeddings(
            prompt_embeds=torch.cat([start.prompt_embeds for start in starts]),
            negative_prompt_embeds=torch.cat([start.negative_prompt_embeds for start in starts]),
        )
        output = self.generator.sample(
            latents,
            embeddings,
            steps=self.steps,
            guidance=self.guidance,
            gradient=self.gradient if differentiable else "none",
            k=self.k,
            weight=self.weight,
        )
        return Rendering(output.images, output.unet_evals, output.backward_evals)
