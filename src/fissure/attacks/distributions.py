"""ATM's search space: a distribution over the vocabulary at each position that may change.

ATM (Du et al., "Stable Diffusion is Unstable", arXiv 2306.02583) searches words through
their log-coefficients: one row over the text encoder's vocabulary per free position,
the clean prompt's tokens starting at a large value (15 in its code) so that the first
relaxed prompt is the clean one. A Gumbel-softmax draw mixes the token embeddings into
the text encoder's input (the Generator's free tokens); a hard draw is a prompt of words.
``extend`` frees positions after the prompt, as the released code does (it zeroes the
gradient of every position of the clean prompt); ``substitute`` frees the prompt's own
words other than the class's name, as the paper describes. The class's name never changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import torch

from fissure.attacks.naming import mention_span
from fissure.attacks.spaces import (
    Attempt,
    Rendering,
    generator_settings,
    padded,
    render_prompts,
)
from fissure.errors import FissureError
from fissure.models.generator import TRUNCATED, FreeTokens, Generator, GradientMode
from fissure.models.language import LanguageModel, vocabulary_word
from fissure.models.prompts import check_prompt_length

AtmMode = Literal["extend", "substitute"]


@dataclass
class DistributionStart:
    """An attempt bound to its inputs: the seed's latent, the prompt's word tokens, and the
    free positions with the token each starts at."""

    attempt: Attempt
    latent: torch.Tensor  # 1×C×h×w, float32
    ids: list[int]  # the prompt's word tokens, without start and end tokens
    positions: list[int]  # the free positions, 1 the first word token (extend: appended)
    initial: list[int]  # the token each free position starts at


def gumbel_softmax(
    logits: torch.Tensor, temperature: float, generator: torch.Generator, hard: bool = False
) -> torch.Tensor:
    """``softmax((logits + g) / temperature)`` with Gumbel noise g drawn from ``generator``
    (``torch.nn.functional.gumbel_softmax`` draws from the global generator, which would make
    a resumed run differ); ``hard``: the one-hot argmax instead, a draw of words."""
    uniform = torch.rand(logits.shape, generator=generator, device=generator.device)
    noise = -(-uniform.clamp_min(torch.finfo(uniform.dtype).tiny).log()).log()
    noisy = (logits + noise.to(logits.device, logits.dtype)) / temperature
    if hard:
        return torch.nn.functional.one_hot(noisy.argmax(dim=-1), logits.shape[-1]).to(logits)
    return torch.softmax(noisy, dim=-1)


def edit_distance(a: Sequence[int], b: Sequence[int]) -> int:
    """Levenshtein distance between two token sequences."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


class WordDistributions:
    """ATM's space: log-coefficients (n×V) over the vocabulary at each free position.

    ``extra``: how many positions ``extend`` appends (None: every position to the text
    encoder's length, as the released code frees its padding); they start as the clean
    prompt's padded tail does, an end token and then padding, and padding drawn is no word.
    ``words_only``: draws take whole-word tokens only (random words, ATM's baseline). The
    seed's latent, the DDIM steps and the guidance stay fixed. ``language`` scores the
    fluency of found prompts.
    """

    def __init__(
        self,
        generator: Generator,
        language: LanguageModel,
        mode: AtmMode = "extend",
        extra: int | None = None,
        start_value: float = 15.0,
        steps: int = 25,
        guidance: float = 7.5,
        gradient: GradientMode = "last-k",
        k: int = 1,
        batch_size: int = 8,
        words_only: bool = False,
    ) -> None:
        if mode not in ("extend", "substitute"):
            raise FissureError(f"mode must be extend or substitute, not {mode!r}")
        self.generator = generator
        self.language = language
        self.mode = mode
        self.extra = extra
        self.start_value = start_value
        self.steps = steps
        self.guidance = guidance
        self.gradient = gradient
        self.k = k
        self.batch_size = batch_size
        self.words_only = words_only

    def settings(self) -> dict[str, object]:
        """What decides the images, gradients and words, for the record."""
        return dict(
            space="word distributions",
            mode=self.mode,
            extra=self.extra,
            start_value=self.start_value,
            steps=self.steps,
            guidance=self.guidance,
            gradient=self.gradient,
            k=self.k if self.gradient in TRUNCATED else None,
            batch_size=self.batch_size,
            words_only=self.words_only,
            **generator_settings(self.generator),
            language_model=self.language.source,
        )

    keeps_target_word = True
    """Attempts must name their class: the class's name is never a free position."""

    @property
    def vocabulary(self) -> torch.Tensor:
        """The text encoder's token embedding table (V×D)."""
        return self.generator.text_encoder.get_input_embeddings().weight

    @property
    def _padding(self) -> int:
        """The token that fills a prompt to the encoder's length (the end token in SD 1.x's
        tokenizer, "!" in SD 2.x's)."""
        tokenizer = self.generator.tokenizer
        return tokenizer.eos_token_id if tokenizer.pad_token_id is None else tokenizer.pad_token_id

    def word_ids(self, text: str) -> list[int]:
        """The diffusion tokenizer's word tokens of ``text`` (no start or end token)."""
        return self.generator.tokenizer(text, add_special_tokens=False).input_ids

    def bind(self, attempt: Attempt) -> DistributionStart:
        tokenizer = self.generator.tokenizer
        ids = self.word_ids(attempt.prompt)
        if self.mode == "extend":
            room = tokenizer.model_max_length - 2 - len(ids)
            count = room if self.extra is None else self.extra
            check_prompt_length(tokenizer, attempt.prompt, count)
            positions = list(range(len(ids) + 1, len(ids) + count + 1))
            initial = [tokenizer.eos_token_id, *[self._padding] * (count - 1)]
        else:
            span = mention_span(attempt.prompt, attempt.target) or (0, 0)
            first = len(self.word_ids(attempt.prompt[: span[0]]))
            last = len(self.word_ids(attempt.prompt[: span[1]]))
            positions = [p for p in range(1, len(ids) + 1) if not first < p <= last]
            initial = [ids[p - 1] for p in positions]
        if not positions:
            raise FissureError(
                f"{attempt.prompt!r} leaves no word to change in {self.mode} mode: "
                "give a prompt with words besides its class, or extend it"
            )
        latent = self.generator.initial_latents([attempt.seed]).float()
        return DistributionStart(attempt, latent, ids, positions, initial)

    def origin(self, start: DistributionStart) -> torch.Tensor:
        """The log-coefficients a search starts from: ``start_value`` at each position's
        starting token, 0 elsewhere (with ``words_only``, -inf at tokens that are not whole
        words: a draw is the start token or a word), so the first relaxed prompt is the
        clean one."""
        logits = torch.zeros(len(start.positions), self.vocabulary.shape[0])
        if self.words_only:
            logits[:, ~self.word_tokens] = -torch.inf
        logits[torch.arange(len(start.positions)), torch.tensor(start.initial)] = self.start_value
        return logits

    @cached_property
    def word_tokens(self) -> torch.Tensor:
        """Which tokens of the vocabulary are whole words (V, bool)."""
        mask = torch.zeros(self.vocabulary.shape[0], dtype=torch.bool)
        for token, index in self.generator.tokenizer.get_vocab().items():
            if index < len(mask) and vocabulary_word(token) is not None:
                mask[index] = True
        return mask

    def latent(self, start: DistributionStart, variable: torch.Tensor) -> torch.Tensor:
        """The initial latent: the seed's own, whatever the words."""
        return start.latent[0]

    def render(
        self,
        starts: Sequence[DistributionStart],
        prompts: Sequence[str],
        coefficients: torch.Tensor | None = None,
        differentiable: bool = False,
    ) -> Rendering:
        """Images of each row's prompt; with ``coefficients`` (B×n×V, rows of equal n), the
        free positions carry their mixtures of token embeddings instead. Gradients reach
        ``coefficients`` if ``differentiable``. Padded like the other spaces."""
        tokens = None
        if coefficients is not None:
            table = self.vocabulary
            mixed = padded(coefficients, self.batch_size).to(table.dtype) @ table
            if self.mode == "extend":
                positions = [list(range(-mixed.shape[1], 0))] * len(mixed)
            else:
                positions = [start.positions for start in padded(starts, self.batch_size)]
            tokens = FreeTokens(mixed, positions, insert=self.mode == "extend")
        return render_prompts(self, starts, prompts, tokens, differentiable)

    def clean_sequence(self, start: DistributionStart) -> torch.Tensor:
        """The clean prompt as one-hot rows (T×V: start token, words, end token)."""
        tokenizer = self.generator.tokenizer
        ids = [tokenizer.bos_token_id, *start.ids, tokenizer.eos_token_id]
        return torch.nn.functional.one_hot(torch.tensor(ids), self.vocabulary.shape[0]).float()

    def sequence(self, start: DistributionStart, coefficients: torch.Tensor) -> torch.Tensor:
        """The whole relaxed text as distributions (T×V: start token, words, end token), the
        free positions' rows from ``coefficients`` (n×V) and one-hot rows elsewhere: what the
        language model's similarity and fluency terms read."""
        rows = self.clean_sequence(start).to(coefficients)
        if self.mode == "extend":
            return torch.cat([rows[:-1], coefficients, rows[-1:]])
        return rows.index_put((torch.tensor(start.positions),), coefficients)  # 0 is the start

    def words(self, start: DistributionStart, drawn: torch.Tensor) -> list[int]:
        """The word tokens of a hard draw (n token ids at the free positions), special
        tokens left out as the prompt's text leaves them."""
        drawn = drawn.tolist()
        if self.mode == "extend":
            tokens = [*start.ids, *drawn]
        else:
            tokens = list(start.ids)
            for position, token in zip(start.positions, drawn, strict=True):
                tokens[position - 1] = token
        special = {*self.generator.tokenizer.all_special_ids, self._padding}
        return [token for token in tokens if token not in special]

    def text(self, start: DistributionStart, tokens: Sequence[int]) -> str:
        """The prompt a draw's word tokens (:meth:`words`) spell: extend keeps the clean
        prompt's own text and appends the words drawn; substitute spells them all. Cut
        where the text encoder stops reading, as a pipeline's tokenizer truncates (drawn
        pieces of words can spell more tokens than were drawn)."""
        tokenizer = self.generator.tokenizer
        if self.mode == "extend":
            added = tokenizer.decode(tokens[len(start.ids) :], skip_special_tokens=True)
            text = f"{start.attempt.prompt} {added.strip()}".strip()
        else:
            text = tokenizer.decode(tokens, skip_special_tokens=True).strip()
        limit = tokenizer.model_max_length - 2
        cut = limit
        while len(spelled := self.word_ids(text)) > limit:
            text = tokenizer.decode(spelled[:cut], skip_special_tokens=True).strip()
            cut -= 1  # a cut can spell longer again: cut deeper until it fits
        return text

    def token_error_rate(self, tokens: Sequence[int], text: str) -> float:
        """How far ``text``, the prompt the tokens drawn spell (:meth:`text`), re-tokenises
        from them (edit distance over the tokens drawn, as ATM reports): words drawn as
        pieces may not come back."""
        return edit_distance(tokens, self.word_ids(text)) / max(1, len(tokens))

    def finding_fields(self, attempt: Attempt, prompt: str | None) -> dict[str, object]:
        """The prompt found, its fluency beside the clean prompt's (perplexity under the
        language model) and its similarity to it (BERTScore F1 over the model's states)."""
        prompt = prompt or attempt.prompt
        clean_perplexity, perplexity = self.language.perplexities([attempt.prompt, prompt])
        return dict(
            delta_linf=None,
            delta_l2=None,
            adversarial_prompt=prompt,
            perplexity={"clean": round(clean_perplexity, 3), "adversarial": round(perplexity, 3)},
        )
