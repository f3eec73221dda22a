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
from contextlib import nullcontext
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import torch

from fissure.attacks.naming import mention_start
from fissure.models.generator import (
    TRUNCATED,
    FreeTokens,
    Generator,
    GradientMode,
    PromptEmbeddings,
)
from fissure.models.language import LanguageModel

if TYPE_CHECKING:
    from fissure.attacks.distributions import WordDistributions


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


def padded(rows: Sequence | torch.Tensor, size: int) -> list | torch.Tensor:
    """``rows`` with copies of the last appended up to ``size`` (a tensor's copies carry no
    gradient): every batch a space renders or a goal scores has one shape."""
    pad = max(0, size - len(rows))
    if isinstance(rows, torch.Tensor):
        return torch.cat([rows, rows[-1:].detach().expand(pad, *rows.shape[1:])]) if pad else rows
    return list(rows) + list(rows[-1:]) * pad


def target_rows(indices: Sequence[int], images: torch.Tensor) -> torch.Tensor:
    """Class indices for a goal, padded like ``images``' rows, on their device."""
    return torch.tensor(padded(indices, len(images)), device=images.device)


def generator_settings(generator: Generator) -> dict[str, object]:
    """What of the model decides every image: its sampler, precision and weights."""
    return dict(
        sampler=type(generator.scheduler).__name__,
        dtype=str(generator.dtype).removeprefix("torch."),
        weights=generator.weights_digest(),
    )


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
            **generator_settings(self.generator),
        )

    keeps_target_word = False
    """Any prompt will do: the words stay as they are."""

    def finding_fields(self, attempt: Attempt, prompt: str | None) -> dict[str, object]:
        """Nothing beyond every finding's fields: the prompt is the attempt's."""
        return {}

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
        starts, deltas = padded(starts, self.batch_size), padded(deltas, self.batch_size)
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


def render_prompts(
    space: PromptExtension | WordDistributions,
    starts: Sequence[PromptStart],
    prompts: Sequence[str],
    tokens: FreeTokens | None,
    differentiable: bool,
) -> Rendering:
    """Images of each prompt from its start's latent, with ``tokens`` spliced in, by the
    space's sampler; both padded to the space's batch size. Gradients reach the free
    tokens (through the space's gradient path) if ``differentiable``."""
    starts, prompts = padded(starts, space.batch_size), padded(prompts, space.batch_size)
    with nullcontext() if differentiable else torch.no_grad():
        embeddings = space.generator.encode(prompts, tokens)
        output = space.generator.sample(
            torch.cat([start.latent for start in starts]),
            embeddings,
            steps=space.steps,
            guidance=space.guidance,
            gradient=space.gradient if differentiable else "none",
            k=space.k,
        )
    return Rendering(output.images, output.unet_evals, output.backward_evals)


@dataclass
class PromptStart:
    """An attempt bound to its inputs for a prompt search: the seed's latent, fixed, and
    where words before the class's name go (a character index into every prompt the search
    makes, and the free modifier token's position there)."""

    attempt: Attempt
    latent: torch.Tensor  # 1×C×h×w, float32
    noun_at: int = 0
    noun_token: int = 1


@dataclass(frozen=True)
class WordChoice:
    """A candidate word and where it goes: appended, or just before the class's name."""

    word: str
    token_id: int
    before_noun: bool = False


class PromptExtension:
    """SAGE's prompt space: words appended to the prompt; the seed's latent and sampler fixed.

    A search moves free token embeddings appended after the prompt (SAGE's adversarial
    token [x] and look-ahead token [y]) through the text encoder's input, then commits
    [x] to a word the ``language`` model proposes there. Only prompts of words are
    results: images of free embeddings steer the search and are never counted. Words in
    ``excluded`` (the names of the judge's classes, by default) are never candidates: a
    prompt that asks for another class would remove the target trivially. With
    ``fluency``, a prompt counts as an outcome only if it is at most that many times as
    perplexing as the clean prompt (a fluency constraint, as ATM's), and a candidate must
    keep the words so far within that limit as the start of a longer prompt: "a photo of a
    cat in" may be rendered on the way to "a photo of a cat in the snow", but cannot
    succeed itself. With ``before_noun``, words may
    also go just before the class's name ("a photo of a tiny cat"), steered by a third
    free token [m] there: a modifier can hide an object that no appended word does.
    """

    def __init__(
        self,
        generator: Generator,
        language: LanguageModel,
        steps: int = 25,
        guidance: float = 7.5,
        gradient: GradientMode = "exact-stored",
        k: int = 2,
        batch_size: int = 8,
        free_tokens: int = 2,
        excluded: frozenset[str] = frozenset(),
        fluency: float | None = None,
        before_noun: bool = False,
    ) -> None:
        self.generator = generator
        self.before_noun = before_noun
        self.excluded = excluded
        self.fluency = fluency
        self.language = language
        self.steps = steps
        self.guidance = guidance
        self.gradient = gradient
        self.k = k
        self.batch_size = batch_size
        self.free_tokens = free_tokens
        self._candidates: dict[tuple[str, str, int, int], list[WordChoice]] = {}

    def settings(self) -> dict[str, object]:
        """What decides the images, gradients and candidate words, for the record."""
        return dict(
            space="prompt",
            steps=self.steps,
            guidance=self.guidance,
            gradient=self.gradient,
            k=self.k if self.gradient in TRUNCATED else None,
            free_tokens=self.free_tokens,
            before_noun=self.before_noun,
            excluded_words=len(self.excluded),
            fluency=self.fluency,
            batch_size=self.batch_size,
            **generator_settings(self.generator),
            language_model=self.language.source,
        )

    @property
    def vocabulary(self) -> torch.Tensor:
        """The text encoder's token embedding table (V×D)."""
        return self.generator.text_encoder.get_input_embeddings().weight

    def bind(self, attempt: Attempt) -> PromptStart:
        noun_at = mention_start(attempt.prompt, attempt.target) or 0
        prefix = self.generator.tokenizer(attempt.prompt[:noun_at], add_special_tokens=False)
        return PromptStart(
            attempt,
            self.generator.initial_latents([attempt.seed]).float(),
            noun_at,
            len(prefix.input_ids) + 1,
        )

    @property
    def rows(self) -> int:
        """How many free tokens: [m] before the noun if words may go there, then [x], [y]."""
        return self.free_tokens + self.before_noun

    def origin(self, start: PromptStart) -> torch.Tensor:
        """Where the free tokens start: each at the mean of the vocabulary's embeddings."""
        return self.mean_embedding.expand(self.rows, -1).clone()

    def free_row(self, choice: WordChoice) -> int:
        """The free token that steers ``choice``'s place: [m] before the noun, else [x]."""
        return 0 if choice.before_noun else int(self.before_noun)

    def placed(self, start: PromptStart, prompt: str, choice: WordChoice) -> str:
        """``prompt`` with ``choice``'s word in its place."""
        if choice.before_noun:
            return f"{prompt[: start.noun_at]}{choice.word} {prompt[start.noun_at :]}"
        return f"{prompt} {choice.word}"

    @cached_property
    def mean_embedding(self) -> torch.Tensor:
        return self.vocabulary.detach().float().mean(dim=0, keepdim=True)

    def latent(self, start: PromptStart, variable: torch.Tensor) -> torch.Tensor:
        """The initial latent: the seed's own, whatever the words."""
        return start.latent[0]

    def candidates(self, start: PromptStart, prompt: str, count: int) -> list[WordChoice]:
        """Of the language model's ``count`` most probable words for each place (after
        ``prompt``; with ``before_noun``, also after its text before the class's name), those
        the diffusion model's tokenizer spells as one token, not excluded, and (with
        ``fluency``) leaving a prompt that, read as the start of a longer one, is at most
        ``fluency`` times as perplexing as the clean prompt read so."""
        key = (prompt, start.attempt.prompt, start.noun_at, count)
        if key not in self._candidates:
            places = [(prompt, False)]
            if self.before_noun:
                places.append((prompt[: start.noun_at].rstrip(), True))
            choices = []
            for context, before_noun in places:
                for candidate in self.language.next_words(context, count):
                    ids = self.generator.tokenizer(candidate.word, add_special_tokens=False)
                    if len(ids.input_ids) == 1 and candidate.word not in self.excluded:
                        choices.append(WordChoice(candidate.word, ids.input_ids[0], before_noun))
            if self.fluency is not None and choices:
                texts = [self.placed(start, prompt, choice) for choice in choices]
                fluent = self._within_fluency(start, texts, ended=False)
                choices = [c for c, keep in zip(choices, fluent, strict=True) if keep]
            self._candidates[key] = choices
        return self._candidates[key]

    def readable(self, start: PromptStart, prompts: Sequence[str]) -> list[bool]:
        """Whether each of ``prompts`` may be an outcome: as a finished prompt, within
        ``fluency`` times the clean prompt's perplexity (always, without a fluency limit)."""
        if self.fluency is None:
            return [True] * len(prompts)
        return self._within_fluency(start, list(prompts), ended=True)

    def _within_fluency(self, start: PromptStart, texts: list[str], ended: bool) -> list[bool]:
        clean, *perplexities = self.language.perplexities([start.attempt.prompt, *texts], ended)
        return [perplexity <= self.fluency * clean for perplexity in perplexities]

    def render(
        self,
        starts: Sequence[PromptStart],
        prompts: Sequence[str],
        free: torch.Tensor | None = None,
        differentiable: bool = False,
    ) -> Rendering:
        """Images of each row's prompt, with the rows of ``free`` (B×n×D) as its free tokens
        if given; gradients reach ``free`` if ``differentiable``. Padded like
        :meth:`LatentPerturbation.render`."""
        starts = padded(starts, self.batch_size)
        tokens = None
        if free is not None:
            ends = list(range(-self.free_tokens, 0))
            positions = [[start.noun_token] * self.before_noun + ends for start in starts]
            tokens = FreeTokens(padded(free, self.batch_size), positions, insert=True)
        return render_prompts(self, starts, prompts, tokens, differentiable)

    keeps_target_word = True
    """Attempts must name their class: the words found extend a prompt that still says it."""

    def finding_fields(self, attempt: Attempt, prompt: str | None) -> dict[str, object]:
        """What a finding records of the words found: the prompt, and its fluency beside the
        clean prompt's (perplexity under the language model)."""
        prompt = prompt or attempt.prompt
        clean_perplexity, perplexity = self.language.perplexities([attempt.prompt, prompt])
        return dict(
            delta_linf=None,  # the latent is the seed's; the free tokens steered, nothing more
            delta_l2=None,
            adversarial_prompt=prompt,
            perplexity={"clean": round(clean_perplexity, 3), "adversarial": round(perplexity, 3)},
        )
