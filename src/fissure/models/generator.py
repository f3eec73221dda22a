"""Differentiable generation: the one place where attacks and analyses touch a diffusion model.

:class:`Generator` wraps a Stable Diffusion 1.x/2.x pipeline and runs its
denoising loop itself, so that gradients can flow from the images back to the
initial latent, the prompt embeddings, or single free token embeddings. With
``gradient="none"`` it reproduces the stock pipeline's ``__call__`` under the same
scheduler (DDIM by default, see the end of this note); the other modes trade
exactness for cost:

``exact``
    Backpropagation through every step and the VAE decoder. Each UNet
    evaluation is checkpointed (``torch.utils.checkpoint``, non-reentrant), so
    backward recomputes one step at a time and peak memory holds one step's
    activations plus a latent per step, not every step's activations.
``residual``
    SAGE's shortcut (Liu et al., arXiv 2306.00974, "the residual connection is
    used to back-propagate the gradient from outputs to the inputs of latent
    variable"): the first T−k steps run without gradient to x_k, which is
    replaced by ``x_k.detach() + (x_T − x_T.detach())``: the value of x_k with an
    identity Jacobian to the initial latent x_T. The last k steps and the decoder
    are differentiated exactly, so ∂L/∂x_T is approximated by ∂L/∂x_k. SAGE's
    repository held no code to compare with when this was written, so this follows
    the paper's description, with k (steps on the gradient path) a parameter.
``last-k``
    The same truncation without the shortcut (k = 1 is ATM's): the initial
    latent gets no gradient, prompt and token embeddings get the last k steps'.
``first-k``
    The mirror of SAGE's shortcut, as SDO (arXiv 2505.07477) does: the first k steps
    are differentiated through the UNet, the later ones only through the sampler's
    update with the UNet's prediction held fixed (DDIM's linear term in x_t), then the
    decoder. Backward costs k UNet steps, as ``residual`` does, but keeps the Jacobian
    of the steps nearest the initial latent instead of replacing it by the identity.
``exact-stored``
    ``exact`` without checkpointing: every step's activations are kept for backward,
    so memory grows with the steps and backward recomputes nothing.
``residual-added``
    The other reading of SAGE's words ("a residual connection … provides a path for
    gradients"): the shortcut is *added* to the exact path instead of replacing it,
    x_k ← x_k + w·(x_T − x_T.detach()), so ∂L/∂x_T = ∂L/∂x_k·(∂x_k/∂x_T + w·I). It
    costs what ``exact`` costs; ``weight`` is w.
``short-chain``
    The images are the full T-step render (no gradient); the gradient is that of a
    shorter DDIM chain of k steps from the same initial latent, whose images stand
    in for the full render's (a straight-through estimator: the loss's gradient at
    the full render, carried back by the short chain's Jacobian). It costs k more
    forward evaluations and k backward steps, kept without checkpoints (k is small).

Sampling uses DDIM by default (deterministic, and what SAGE uses), built from the
pipeline's scheduler config; ``sampler="pipeline"`` uses the pipeline's own
scheduler when its steps are deterministic. So on a checkpoint that ships PNDM
(SD 1.x) the default images differ from the stock pipeline's (and from
``fissure generate``'s) for the same seed; emoji-sd ships DDIM, so its match.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor
from torch.utils.checkpoint import checkpoint

from fissure.digest import image_weights_digest
from fissure.errors import FissureError
from fissure.models.attention import CrossAttentionRecorder, record_cross_attention
from fissure.models.loading import load_pipeline
from fissure.models.prompts import check_prompt_length

GradientMode = Literal[
    "none",
    "exact",
    "residual",
    "last-k",
    "first-k",
    "exact-stored",
    "residual-added",
    "short-chain",
]
Sampler = Literal["ddim", "pipeline"]
#: Modes that take ``k``, the number of steps on (or of) their gradient path.
TRUNCATED = frozenset({"residual", "residual-added", "last-k", "first-k", "short-chain"})

#: Schedulers whose step is a deterministic function of model outputs, on the
#: variance-preserving latents the UNet sees (so x0 follows from ᾱ_t).
DETERMINISTIC_SCHEDULERS = frozenset(
    {
        "DDIMScheduler",
        "PNDMScheduler",
        "DPMSolverMultistepScheduler",
        "UniPCMultistepScheduler",
        "DEISMultistepScheduler",
    }
)


def scheduler_with_steps(
    scheduler: SchedulerMixin,
    steps: int,
    option: str = "steps",
    device: str | torch.device | None = None,
) -> SchedulerMixin:
    """A fresh copy of ``scheduler`` set to ``steps`` timesteps, or a one-line error.

    A copy, for setting timesteps changes a scheduler. Between 1 and the training
    timesteps, and the timesteps themselves are checked: "leading" spacing with
    steps_offset=1 makes timestep 1000 of 0..999 at 1000 steps, which fails with an
    IndexError in the scheduler's step.
    """
    limit = scheduler.config.num_train_timesteps
    if not 1 <= steps <= limit:
        raise FissureError(
            f"{option} must be between 1 and the scheduler's {limit} timesteps, not {steps}"
        )
    fresh = type(scheduler).from_config(scheduler.config)
    fresh.set_timesteps(steps, device=device)
    last = int(fresh.timesteps.max())
    if last >= limit:
        raise FissureError(
            f"{option} {steps} makes timestep {last}, past the scheduler's 0..{limit - 1} "
            "(its spacing and steps_offset): use fewer steps"
        )
    return fresh


def native_image_size(pipeline: StableDiffusionPipeline) -> int:
    """The side of the images a pipeline makes by default (its UNet's latents, decoded)."""
    return pipeline.unet.config.sample_size * pipeline.vae_scale_factor


def check_image_size(
    pipeline: StableDiffusionPipeline, height: int | None, width: int | None
) -> tuple[int, int]:
    """The image size to make (the model's own by default), or a one-line error.

    Sides must divide by 8, as the stock pipeline asks, and by the VAE's downsampling,
    or the latents would round the image down without a word; the UNet itself
    upsamples to odd latent sizes, as in the stock pipeline.
    """
    native = native_image_size(pipeline)
    height = native if height is None else height
    width = native if width is None else width
    multiple = math.lcm(8, pipeline.vae_scale_factor)
    if (
        not all(isinstance(side, int) for side in (height, width))
        or min(height, width) < 1
        or height % multiple
        or width % multiple
    ):
        raise FissureError(
            f"height and width must be positive multiples of {multiple} pixels for this model, "
            f"not {height}×{width}"
        )
    return height, width


def check_guidance(guidance: float) -> None:
    """Refuse a NaN or infinite guidance scale: NaN sampled unguided and was recorded as NaN."""
    if not math.isfinite(guidance):
        raise FissureError(f"guidance must be a finite number, not {guidance}")


MAX_SEED = 2**63 - 1
"""The largest seed: torch takes up to 2**64 - 1, but stores (SQLite) hold signed 64-bit ints."""


def check_seeds(seeds: Sequence[int]) -> list[int]:
    """``seeds`` as a list of ints a torch generator takes and a store keeps, or a one-line error."""
    message = f"seeds must be a non-empty list of whole numbers from 0 to {MAX_SEED}, not {seeds!r}"
    if isinstance(seeds, int | str | bytes):
        raise FissureError(message)
    try:
        seeds = [operator.index(seed) for seed in seeds]
    except TypeError:
        raise FissureError(message) from None
    if not seeds or not all(0 <= seed <= MAX_SEED for seed in seeds):
        raise FissureError(message)
    return seeds


@dataclass
class PromptEmbeddings:
    """Text-encoder outputs that condition the UNet, with what made them.

    Build one with :meth:`Generator.encode`, or directly from tensors to optimise
    the embeddings themselves. A batch of one is broadcast over all latents.
    """

    prompt_embeds: torch.Tensor  # B×L×D
    negative_prompt_embeds: torch.Tensor  # B×L×D, for classifier-free guidance
    input_ids: torch.Tensor | None = None  # B×L; free-token slots hold the tokenizer's unk id
    free_positions: torch.Tensor | None = None  # B×n sequence positions of the free tokens

    def __len__(self) -> int:
        return self.prompt_embeds.shape[0]


@dataclass
class FreeTokens:
    """Token embeddings that are optimised instead of looked up (SAGE's adversarial tokens).

    ``embeddings`` is n×D (the same tokens in every prompt: a universal token) or
    B×n×D. ``positions`` are n positions in the token sequence after splicing,
    where 1 is the first word token and -1 the last word token, so ``insert=True``
    with ``positions=[-1]`` appends a token to every prompt, whatever its length; or B
    such lists, one per prompt (a slot before each prompt's own noun).
    ``insert=False`` replaces the tokens there.
    """

    embeddings: torch.Tensor
    positions: Sequence[int] | Sequence[Sequence[int]]
    insert: bool = False

    @property
    def count(self) -> int:
        """n: how many free tokens each prompt gets (the first prompt's; the rest are checked)."""
        return len(self.of_row(0))

    def of_row(self, row: int) -> Sequence[int]:
        """The positions in prompt ``row``."""
        nested = len(self.positions) and isinstance(self.positions[0], Sequence)
        return self.positions[row] if nested else self.positions


#: What a backward pass through one UNet evaluation costs, in forward evaluations: measured
#: on emoji-sd's UNet, batch 8 with guidance, two CPU cores (89 ms against 97 ms;
#: benchmarks/bench_gradient_estimators.py, "Gradient estimators" in BENCHMARKS.md).
#: A checkpointed step also runs its forward again.
BACKWARD_COST = 0.92


@dataclass(frozen=True)
class CaptureSpec:
    """What to record while sampling, for analyses; recording never changes the images.

    ``x0``: each step's prediction of the clean latent, or of the clean image.
    ``attention``: cross-attention maps per token, averaged over heads, over the
    layers whose processor names start with one of ``attention_layers`` (all
    cross-attention layers when empty, for example ``("up_blocks",)``), and over
    ``attention_steps`` (loop indices, negative from the end; all when None).
    """

    x0: Literal["latents", "images"] | None = None
    attention: bool = False
    attention_layers: tuple[str, ...] = ()
    attention_steps: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.x0 not in (None, "latents", "images"):
            raise FissureError(f"capture x0 must be 'latents', 'images' or None, not {self.x0!r}")
        if self.attention_steps is not None and not self.attention_steps:
            raise FissureError("attention_steps is empty: name steps, or None for all of them")


@dataclass
class GeneratorOutput:
    """Images and what it took to make them.

    ``images`` (B×3×H×W in [0, 1]) carry gradients as the mode allows;
    ``x0_predictions`` (B×S×C×h×w, or B×S×3×H×W for images; S = len(timesteps)) and
    ``attention`` (B×tokens×h×w) are detached. ``unet_evals`` counts UNet calls
    (each on the whole batch, both guidance halves); ``backward_evals`` is what a
    backward pass through the ``gradient_steps`` steps on its path costs in the same
    unit (:data:`BACKWARD_COST` a step, plus the forward again where checkpointed).
    """

    images: torch.Tensor
    latents: torch.Tensor
    timesteps: list[int]
    unet_evals: int
    gradient_steps: int
    backward_evals: float
    x0_predictions: torch.Tensor | None = None
    attention: torch.Tensor | None = None


def predict_x0(
    scheduler: SchedulerMixin,
    sample: torch.Tensor,
    timestep: torch.Tensor,
    model_output: torch.Tensor,
) -> torch.Tensor:
    """The clean latent implied by a model output at a timestep (what DDIM calls pred_original_sample)."""
    alpha = scheduler.alphas_cumprod[int(timestep)].to(sample.device)
    prediction = scheduler.config.prediction_type
    if prediction == "epsilon":
        return (sample - (1 - alpha) ** 0.5 * model_output) / alpha**0.5
    if prediction == "v_prediction":
        return alpha**0.5 * sample - (1 - alpha) ** 0.5 * model_output
    if prediction == "sample":
        return model_output
    raise FissureError(f"unknown prediction type {prediction!r} in the scheduler config")


@dataclass(frozen=True)
class EvaluationCost:
    """What one :meth:`Generator.sample` costs per image, in UNet evaluations."""

    forward: int  # UNet calls (both guidance halves in one)
    gradient_steps: int  # steps a backward pass traverses
    backward: float  # what that backward pass costs, at BACKWARD_COST a step

    @property
    def total(self) -> float:
        return self.forward + self.backward


def evaluation_cost(gradient: GradientMode, k: int, loop_length: int) -> EvaluationCost:
    """The cost of sampling ``loop_length`` steps in a gradient mode: one UNet call a step
    (and the short chain's k), and backward steps at :data:`BACKWARD_COST`, plus the
    forward again where the mode checkpoints them."""
    if gradient == "none":
        gradient_steps = 0
    elif gradient in TRUNCATED and gradient != "residual-added":  # that one adds to exact's
        gradient_steps = k
    else:
        gradient_steps = loop_length
    checkpointed = gradient not in ("exact-stored", "short-chain")
    return EvaluationCost(
        forward=loop_length + (k if gradient == "short-chain" else 0),
        gradient_steps=gradient_steps,
        backward=gradient_steps * (BACKWARD_COST + checkpointed),
    )


class Generator:
    """A Stable Diffusion 1.x/2.x pipeline driven for attacks: encode, sample, differentiate, record.

    The generator differentiates with respect to inputs, never weights, so it
    freezes the pipeline's modules (``requires_grad_(False)``, eval mode).
    """

    def __init__(self, pipeline: StableDiffusionPipeline, sampler: Sampler = "ddim") -> None:
        if sampler not in get_args(Sampler):
            raise FissureError(f"unknown sampler {sampler!r}: use ddim or pipeline")
        self.pipeline = pipeline
        self.tokenizer = pipeline.tokenizer
        self.text_encoder = pipeline.text_encoder
        self.unet = pipeline.unet
        self.vae = pipeline.vae
        for module in (self.text_encoder, self.unet, self.vae):
            module.requires_grad_(False).eval()
        self.scheduler = self._sampler_scheduler(pipeline.scheduler, sampler)

    @classmethod
    def from_pretrained(
        cls,
        model: str = "emoji-sd",
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        sampler: Sampler = "ddim",
    ) -> Generator:
        """Load a pipeline with :func:`~fissure.models.load_pipeline` and wrap it."""
        return cls(load_pipeline(model, device=device, dtype=dtype), sampler=sampler)

    def weights_digest(self) -> str:
        """A fingerprint of the weights that make the images (text encoder, UNet, VAE).

        A run folder binds to it, so a retrained model under the same name never resumes
        another version's findings.
        """
        return image_weights_digest(self)

    @staticmethod
    def _sampler_scheduler(scheduler: SchedulerMixin, sampler: Sampler) -> SchedulerMixin:
        name = type(scheduler).__name__
        if sampler == "ddim":
            if isinstance(scheduler, DDIMScheduler):
                return scheduler
            # As every SD checkpoint's own DDIM config (and diffusers' checkpoint conversion):
            # no clipping, for latents are not in [-1, 1]; and the final step's ᾱ from the
            # schedule, not 1, unless the config (PNDM's, say) says otherwise.
            return DDIMScheduler.from_config(
                scheduler.config,
                clip_sample=False,
                set_alpha_to_one=scheduler.config.get("set_alpha_to_one", False),
            )
        if name not in DETERMINISTIC_SCHEDULERS or "sde" in scheduler.config.get(
            "algorithm_type", ""
        ):
            raise FissureError(
                f"the pipeline's {name} is not a deterministic scheduler this generator supports "
                f"({', '.join(sorted(DETERMINISTIC_SCHEDULERS))}); use sampler='ddim'"
            )
        return scheduler

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    def encode(
        self,
        prompts: str | Sequence[str],
        free_tokens: FreeTokens | None = None,
        negative_prompts: str | Sequence[str] | None = None,
    ) -> PromptEmbeddings:
        """Prompt embeddings as the stock pipeline computes them, with free tokens spliced in.

        Free token vectors replace the token-embedding lookup's output at their
        positions (a forward hook on the input embedding), so position embeddings,
        the causal mask and the final layer norm are the text encoder's own.
        """
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if any(not prompt.strip() for prompt in prompts):  # "" is the negative side's, not a prompt
            raise FissureError("empty prompt: give the words the image should show")
        if negative_prompts is None:
            negative_prompts = [""] * len(prompts)
        elif isinstance(negative_prompts, str):
            negative_prompts = [negative_prompts] * len(prompts)
        if not prompts or len(negative_prompts) != len(prompts):
            raise FissureError("give one negative prompt per prompt, and at least one prompt")
        inserted = free_tokens.count if free_tokens and free_tokens.insert else 0
        input_ids, words = self._tokenize(prompts, inserted)
        negative_ids, _ = self._tokenize(list(negative_prompts), what="negative prompt")
        free_positions = None
        if free_tokens is not None:
            input_ids, free_positions = self._splice_ids(input_ids, words, free_tokens)
        return PromptEmbeddings(
            prompt_embeds=self._text_states(input_ids, free_tokens, free_positions),
            negative_prompt_embeds=self._text_states(negative_ids),
            input_ids=input_ids,
            free_positions=free_positions,
        )

    def _tokenize(
        self, prompts: list[str], inserted: int = 0, what: str = "prompt"
    ) -> tuple[torch.Tensor, list[int]]:
        """Padded token ids, and each prompt's number of word tokens; refuses truncation."""
        words = [check_prompt_length(self.tokenizer, prompt, inserted, what) for prompt in prompts]
        input_ids = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        return input_ids, words

    def _splice_ids(
        self, input_ids: torch.Tensor, words: list[int], free: FreeTokens
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids with slots for the free tokens (inserted or replaced), and the slots' positions."""
        count = free.count
        hidden = self.text_encoder.get_input_embeddings().embedding_dim
        shape = tuple(free.embeddings.shape)
        if not (
            (len(shape) == 2 or (len(shape) == 3 and shape[0] in (1, len(input_ids))))
            and shape[-2:] == (count, hidden)
        ):
            raise FissureError(
                f"free token embeddings must be {count}×{hidden} or B×{count}×{hidden} "
                f"for {count} positions, not {'×'.join(map(str, shape))}"
            )
        rows, all_positions = [], []
        for row, (ids, length) in enumerate(zip(input_ids.tolist(), words, strict=True)):
            length += count if free.insert else 0
            given = free.of_row(row)
            positions = [p if p > 0 else length + 1 + p for p in given]
            if (
                len(given) != count
                or any(not 1 <= p <= length for p in positions)
                or len(set(positions)) < count
            ):
                raise FissureError(
                    f"free-token positions {list(given)} must be {count} distinct word positions "
                    f"(1..{length} or -{length}..-1) in a prompt of {length} tokens"
                )
            for position in sorted(positions):
                if free.insert:
                    ids.insert(position, self.tokenizer.unk_token_id)
                else:
                    ids[position] = self.tokenizer.unk_token_id
            rows.append(ids[: input_ids.shape[1]])
            all_positions.append(positions)
        return torch.tensor(rows), torch.tensor(all_positions)

    def _text_states(
        self,
        input_ids: torch.Tensor,
        free: FreeTokens | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The text encoder's last hidden states, with the free vectors as the tokens at ``positions``."""
        embedding = self.text_encoder.get_input_embeddings()
        hook = None
        if free is not None:
            batch, count = positions.shape
            vectors = free.embeddings.expand(batch, count, -1).reshape(batch * count, -1)
            rows = torch.arange(batch).repeat_interleave(count)

            def splice(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
                index = (rows.to(output.device), positions.flatten().to(output.device))
                return output.index_put(index, vectors.to(output))

            hook = embedding.register_forward_hook(splice)
        try:
            return self.text_encoder(input_ids.to(self.text_encoder.device))[0]
        finally:
            if hook is not None:
                hook.remove()

    def initial_latents(
        self, seeds: Sequence[int], height: int | None = None, width: int | None = None
    ) -> torch.Tensor:
        """Gaussian latents, one CPU generator per seed, equal to the stock pipeline's for that seed."""
        seeds = check_seeds(seeds)
        height, width = check_image_size(self.pipeline, height, width)
        scale = self.pipeline.vae_scale_factor
        shape = (len(seeds), self.unet.config.in_channels, height // scale, width // scale)
        generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
        return randn_tensor(shape, generator=generators, device=self.device, dtype=self.dtype)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] (B×3×H×W); differentiable, unlike the stock pipeline's decoding."""
        images = self.vae.decode(latents / self.vae.config.scaling_factor, return_dict=False)[0]
        return (images * 0.5 + 0.5).clamp(0, 1)

    def sample(
        self,
        latents: torch.Tensor,
        prompt: PromptEmbeddings | str | Sequence[str],
        *,
        steps: int = 25,
        guidance: float = 7.5,
        gradient: GradientMode = "none",
        k: int = 1,
        weight: float = 1.0,
        capture: CaptureSpec | None = None,
    ) -> GeneratorOutput:
        """Denoise ``latents`` (B×C×h×w, as from :meth:`initial_latents`) into images.

        Gradients reach whatever inputs require grad, as ``gradient`` allows; ``k``
        is the number of final steps on the gradient path for ``residual``,
        ``residual-added`` and ``last-k``, of first steps differentiated through the
        UNet for ``first-k``, and of the short chain's steps for ``short-chain``;
        ``weight`` is ``residual-added``'s w. Guidance above 1 is classifier-free, as
        in the stock pipeline.
        """
        scheduler = scheduler_with_steps(self.scheduler, steps, device=self.device)
        capture = capture or CaptureSpec()
        embeddings = prompt if isinstance(prompt, PromptEmbeddings) else self.encode(prompt)
        context = self._guidance_context(embeddings, len(latents), guided=guidance > 1)
        loop_length = len(scheduler.timesteps)
        first_gradient_step = self._first_gradient_step(latents, gradient, k, guidance, loop_length)
        if not math.isfinite(weight):
            raise FissureError(f"weight must be a finite number, not {weight}")
        initial = latents.to(device=self.device, dtype=self.dtype) * scheduler.init_noise_sigma

        recorder = self._attention_recorder(capture, initial, guidance > 1, loop_length)
        recording = (
            record_cross_attention(self.unet, recorder, capture.attention_layers)
            if recorder is not None
            else nullcontext()
        )
        with recording:
            latents, x0_predictions = self._denoise(
                scheduler, initial, context, guidance, gradient, k, weight,
                first_gradient_step, recorder, capture.x0 is not None,
            )  # fmt: skip
        with torch.no_grad() if gradient in ("none", "short-chain") else nullcontext():
            images = self.decode(latents)
        if gradient == "short-chain":  # the full render's value, the short chain's gradient
            chain = scheduler_with_steps(
                self.scheduler, k, "k (the short chain's steps)", self.device
            )
            short, _ = self._denoise(chain, initial, context, guidance, "exact-stored", k)
            short_images = self.decode(short)
            images = images + (short_images - short_images.detach())
        cost = evaluation_cost(gradient, k, loop_length)
        return GeneratorOutput(
            images=images,
            latents=latents,
            timesteps=[int(t) for t in scheduler.timesteps],
            unet_evals=cost.forward,
            gradient_steps=cost.gradient_steps,
            backward_evals=cost.backward,
            x0_predictions=self._stack_x0(x0_predictions, capture.x0),
            attention=recorder.maps() if recorder is not None else None,
        )

    def _denoise(
        self,
        scheduler: SchedulerMixin,
        initial: torch.Tensor,
        context: torch.Tensor,
        guidance: float,
        gradient: GradientMode,
        k: int,
        weight: float = 1.0,
        first_gradient_step: int = 0,
        recorder: CrossAttentionRecorder | None = None,
        keep_x0: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The sampling loop from ``initial`` to the last latent, with the mode's gradient path;
        and each step's x0 prediction (detached) when ``keep_x0``."""
        latents, x0_predictions = initial, []
        for index, t in enumerate(scheduler.timesteps):
            on_gradient_path = index >= first_gradient_step
            held = gradient == "first-k" and index >= k  # the UNet's output held fixed
            if index == first_gradient_step and gradient == "residual":
                latents = latents.detach() + (initial - initial.detach())
            if index == len(scheduler.timesteps) - k and gradient == "residual-added":
                latents = latents + weight * (initial - initial.detach())
            if recorder is not None:
                recorder.step = index
            with nullcontext() if on_gradient_path else torch.no_grad():
                next_latents, noise_pred = self._denoising_step(
                    scheduler, latents, t, context, guidance,
                    checkpointed=on_gradient_path and gradient != "exact-stored", held=held,
                )  # fmt: skip
            if keep_x0:
                x0_predictions.append(predict_x0(scheduler, latents, t, noise_pred).detach())
            latents = next_latents
        return latents, x0_predictions

    def _denoising_step(
        self,
        scheduler: SchedulerMixin,
        latents: torch.Tensor,
        t: torch.Tensor,
        context: torch.Tensor,
        guidance: float,
        checkpointed: bool,
        held: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of every mode: the guided noise prediction, then the scheduler's update.

        Only the UNet call is checkpointed: the scheduler may keep state between
        steps (PNDM's history), which a recomputation must not touch. ``held``: the
        prediction carries no gradient, the update still does (``first-k``).
        """
        model_input = scheduler.scale_model_input(latents, t)
        if held:
            with torch.no_grad():
                noise_pred = self._guided_noise(model_input, t, context, guidance)
        elif checkpointed and torch.is_grad_enabled():
            noise_pred = checkpoint(
                self._guided_noise, model_input, t, context, guidance, use_reentrant=False
            )
        else:
            noise_pred = self._guided_noise(model_input, t, context, guidance)
        return scheduler.step(noise_pred, t, latents, return_dict=False)[0], noise_pred

    def _guided_noise(
        self, latents: torch.Tensor, t: torch.Tensor, context: torch.Tensor, guidance: float
    ) -> torch.Tensor:
        guided = guidance > 1
        model_input = torch.cat([latents] * 2) if guided else latents
        noise_pred = self.unet(model_input, t, encoder_hidden_states=context, return_dict=False)[0]
        if guided:
            noise_uncond, noise_text = noise_pred.chunk(2)
            noise_pred = noise_uncond + guidance * (noise_text - noise_uncond)
        return noise_pred

    def _guidance_context(
        self, embeddings: PromptEmbeddings, batch: int, guided: bool
    ) -> torch.Tensor:
        """Encoder states for the UNet batch: [negatives; prompts] under guidance, as stock does."""
        if len(embeddings) not in (1, batch):
            raise FissureError(
                f"{len(embeddings)} prompts for {batch} latents: give one prompt, or one per latent"
            )
        parts = [embeddings.negative_prompt_embeds] if guided else []
        parts.append(embeddings.prompt_embeds)
        parts = [part.expand(batch, *part.shape[1:]) for part in parts]
        return torch.cat(parts).to(device=self.device, dtype=self.dtype)

    def _first_gradient_step(
        self, latents: torch.Tensor, gradient: str, k: int, guidance: float, loop_length: int
    ) -> int:
        """Validate the sampling inputs; the loop index where the gradient path starts."""
        check_guidance(guidance)
        channels = self.unet.config.in_channels
        if latents.ndim != 4 or latents.shape[1] != channels:
            raise FissureError(
                f"latents must be B×{channels}×h×w for this model, not {tuple(latents.shape)}"
            )
        scale = self.pipeline.vae_scale_factor
        check_image_size(self.pipeline, latents.shape[2] * scale, latents.shape[3] * scale)
        if gradient not in get_args(GradientMode):
            raise FissureError(
                f"unknown gradient mode {gradient!r}: use {', '.join(get_args(GradientMode))}"
            )
        if gradient in TRUNCATED and not 1 <= k <= loop_length:
            raise FissureError(f"k must be between 1 and {loop_length} steps, not {k}")
        if gradient in ("none", "short-chain"):  # the main loop carries no gradient
            return loop_length
        if gradient in ("residual", "last-k"):
            return loop_length - k
        return 0

    @staticmethod
    def _attention_recorder(
        capture: CaptureSpec, latents: torch.Tensor, guided: bool, loop_length: int
    ) -> CrossAttentionRecorder | None:
        """A recorder for the prompts' rows of the UNet batch at the chosen steps, if asked for."""
        if not capture.attention:
            return None
        chosen = capture.attention_steps
        if chosen is None:
            chosen = range(loop_length)
        elif any(not -loop_length <= step < loop_length for step in chosen):
            raise FissureError(f"attention steps {list(chosen)} outside 0..{loop_length - 1}")
        rows = slice(len(latents), None) if guided else slice(None)
        steps = {step % loop_length for step in chosen}
        return CrossAttentionRecorder(tuple(latents.shape[-2:]), rows, steps)

    @torch.no_grad()
    def _stack_x0(self, predictions: list[torch.Tensor], kind: str | None) -> torch.Tensor | None:
        if kind is None:
            return None
        if kind == "images":
            predictions = [self.decode(x0) for x0 in predictions]
        return torch.stack(predictions, dim=1)
