"""Soft constraints: terms added to an attack's loss rather than sets it is projected onto.

ATM keeps its relaxed prompts close to the clean one with an IDF-weighted BERTScore over a
language model's states (weight 4 in its code) and, optionally, fluent (the language
model's log-perplexity of the relaxed text; weight 0 in its code). Both read the text as
distributions over the vocabulary (:meth:`WordDistributions.sequence`), so the language
model must number tokens as the diffusion model's tokenizer does (emoji-lm reads emoji-sd's
own; ATM trained a GPT-2 on CLIP's tokenizer for Stable Diffusion).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from transformers import PreTrainedTokenizerBase

from fissure.attacks.distributions import DistributionStart, WordDistributions
from fissure.models.language import LanguageModel


@runtime_checkable
class Penalty(Protocol):
    def penalty(
        self,
        space: WordDistributions,
        starts: Sequence[DistributionStart],
        coefficients: torch.Tensor,
    ) -> torch.Tensor:
        """The term each row adds to the loss (B), with gradients to ``coefficients``."""
        ...


def _per_text(
    starts: Sequence[DistributionStart],
    coefficients: torch.Tensor,
    term: Callable[[DistributionStart, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """A term per relaxed text (B): the language model reads texts of different lengths."""
    return torch.stack(
        [term(start, rows) for start, rows in zip(starts, coefficients, strict=True)]
    )


@dataclass(frozen=True)
class IdfWeights:
    """Inverse document frequencies as BERTScore's ``get_idf_dict`` computes them over a
    prompt set: ``log((M + 1) / (df + 1))`` for a token in ``df`` of the ``M`` texts (so the
    start and end tokens, in every text, weigh 0); a token in none weighs ``log(M + 1)``."""

    weights: Mapping[int, float]
    documents: int

    @classmethod
    def of(cls, texts: Sequence[str], tokenizer: PreTrainedTokenizerBase) -> IdfWeights:
        counts = Counter(token for text in texts for token in set(tokenizer(text).input_ids))
        total = len(texts)
        weights = {token: math.log((total + 1) / (count + 1)) for token, count in counts.items()}
        return cls(weights, total)

    def __getitem__(self, token: int) -> float:
        return self.weights.get(token, math.log(self.documents + 1))

    def digest(self) -> str:
        text = json.dumps([self.documents, sorted(self.weights.items())])
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class BertScoreSimilarity:
    """ATM's similarity term: ``−weight × R``, R the IDF-weighted BERTScore recall of the
    clean prompt in the relaxed one: each clean word token's best cosine with a relaxed
    token, over the language model's last-layer states (start and end tokens left out, as
    ATM's ``bert_score``). ``idf`` weighs the clean tokens; None weighs them alike."""

    language: LanguageModel = field(repr=False)
    weight: float = 4.0
    idf: IdfWeights | None = field(default=None, repr=False)
    idf_digest: str | None = None
    _clean: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def over(
        cls, language: LanguageModel, weight: float, idf: IdfWeights | None
    ) -> BertScoreSimilarity:
        return cls(language, weight, idf, idf.digest() if idf else None)

    def _clean_states(self, space: WordDistributions, start: DistributionStart):
        """The clean prompt's word-token states and their normalised weights."""
        key = tuple(start.ids)
        if key not in self._clean:
            with torch.no_grad():
                states, _ = self.language.relaxed(space.clean_sequence(start)[None])
            weights = torch.tensor([self.idf[t] if self.idf else 1.0 for t in start.ids])
            if weights.sum() <= 0:  # every token in every text: no token tells, all count
                weights = torch.ones_like(weights)
            weights = weights / weights.sum()
            self._clean[key] = torch.nn.functional.normalize(states[0, 1:-1], dim=-1), weights
        return self._clean[key]

    def penalty(
        self,
        space: WordDistributions,
        starts: Sequence[DistributionStart],
        coefficients: torch.Tensor,
    ) -> torch.Tensor:
        def term(start: DistributionStart, rows: torch.Tensor) -> torch.Tensor:
            clean, weights = self._clean_states(space, start)
            relaxed, _ = self.language.relaxed(space.sequence(start, rows)[None])
            cosines = clean @ torch.nn.functional.normalize(relaxed[0, 1:-1], dim=-1).T
            return -self.weight * (weights.to(cosines.device) * cosines.max(dim=1).values).sum()

        return _per_text(starts, coefficients, term)


@dataclass(frozen=True)
class RelaxedFluency:
    """ATM's fluency term: ``weight ×`` the language model's log-perplexity of the relaxed
    text, each position's distribution scored against the model's prediction from the
    positions before it."""

    language: LanguageModel = field(repr=False)
    weight: float = 0.0

    def penalty(
        self,
        space: WordDistributions,
        starts: Sequence[DistributionStart],
        coefficients: torch.Tensor,
    ) -> torch.Tensor:
        def term(start: DistributionStart, rows: torch.Tensor) -> torch.Tensor:
            text = space.sequence(start, rows)
            _, log_probabilities = self.language.relaxed(text[None])
            return self.weight * -(text[1:] * log_probabilities[0, :-1]).sum(dim=-1).mean()

        return _per_text(starts, coefficients, term)
