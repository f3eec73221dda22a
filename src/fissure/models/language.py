"""A causal language model, as prompt attacks use one: words, fluency, similarity.

SAGE draws the candidates for its adversarial word from a language model; ATM keeps
its prompts fluent (perplexity) and close to the original (BERTScore). One wrapper
serves both, for the bundled emoji-lm and any causal LM id or folder (GPT-2, OPT,
Llama ...), whatever its tokenizer: a word is a vocabulary entry that ends a word
(CLIP's ``</w>``) or starts one (GPT-2's ``Ġ``, SentencePiece's ``▁``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from fissure.errors import FissureError, first_line
from fissure.hub import hub_offline
from fissure.zoo import BUNDLED_LANGUAGE_MODELS, BUNDLED_MODELS, bundled_model_path

WORD_END = "</w>"
WORD_STARTS = ("Ġ", "▁")


def vocabulary_word(token: str) -> str | None:
    """The word a vocabulary entry spells as a whole (letters only), or None for pieces,
    punctuation and special tokens."""
    if token.endswith(WORD_END):
        word = token[: -len(WORD_END)]
    elif token.startswith(WORD_STARTS):
        word = token[1:]
    else:
        return None
    return word if word.isascii() and word.isalpha() else None


@dataclass(frozen=True)
class Candidate:
    """A word a language model proposes to come next, with its log-probability there."""

    word: str
    log_probability: float


class LanguageModel:
    """A causal LM and its tokenizer, frozen, in evaluation mode."""

    def __init__(self, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, source: str):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.source = source

    @classmethod
    def from_pretrained(
        cls, source: str = "emoji-lm", device: str | torch.device = "cpu"
    ) -> LanguageModel:
        """``source``: ``emoji-lm`` (bundled), a folder, or a hub id of a causal LM."""
        if not source or not source.strip():
            raise FissureError("empty language model name: give emoji-lm, a folder or a hub id")
        if source in BUNDLED_MODELS:
            raise FissureError(
                f"{source} is a diffusion pipeline, not a language model: give emoji-lm"
            )
        path = str(bundled_model_path(source)) if source in BUNDLED_LANGUAGE_MODELS else source
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=hub_offline())
            model = AutoModelForCausalLM.from_pretrained(path, local_files_only=hub_offline())
        except Exception as error:  # transformers and the hub raise many types
            raise FissureError(
                f"could not load a causal language model {source!r} ({first_line(error)}): "
                "give emoji-lm, a folder saved with save_pretrained, or a hub id like gpt2"
            ) from error
        return cls(model.float().to(device), tokenizer, source)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def token_ids(self, text: str) -> list[int]:
        """``text``'s tokens between a start token (the tokenizer's, or its end token as GPT-2
        uses it) and an end token."""
        ids = self.tokenizer(text).input_ids
        start = self.tokenizer.bos_token_id
        if start is None:
            start = self.tokenizer.eos_token_id
        if start is not None and (not ids or ids[0] != start):
            ids = [start, *ids]
        end = self.tokenizer.eos_token_id
        if end is not None and (len(ids) == 1 or ids[-1] != end):
            ids = [*ids, end]  # a text ends: its perplexity counts that, whatever the tokenizer
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit is not None and len(ids) > limit:
            raise FissureError(
                f"{text[:40]!r}... is {len(ids)} tokens long, but the language model "
                f"{self.source} reads at most {limit}: shorten it"
            )
        return ids

    def _forward(self, ids: list[int], **options: bool):
        """The model on one text's ids (every token attended: there is no padding)."""
        tensor = torch.tensor([ids], device=self.device)
        return self.model(tensor, attention_mask=torch.ones_like(tensor), **options)

    @cached_property
    def words(self) -> dict[int, str]:
        """The vocabulary's whole words, by token id."""
        found = {}
        for token, index in self.tokenizer.get_vocab().items():
            word = vocabulary_word(token)
            if word is not None:
                found[index] = word.lower()
        return found

    @torch.no_grad()
    def next_words(self, prefix: str, count: int) -> list[Candidate]:
        """The ``count`` most probable whole words to follow ``prefix``, most probable first
        (one spelling each)."""
        ids = self.token_ids(prefix)[:-1]  # the prefix goes on: no end
        logits = self._forward(ids).logits[0, -1]
        ranked = torch.log_softmax(logits.float(), dim=-1).sort(descending=True)
        candidates: dict[str, Candidate] = {}
        for value, index in zip(ranked.values.tolist(), ranked.indices.tolist(), strict=True):
            word = self.words.get(index)
            if word is not None and word not in candidates:
                candidates[word] = Candidate(word, value)
                if len(candidates) == count:
                    break
        return list(candidates.values())

    @torch.no_grad()
    def _negative_log_likelihoods(
        self, texts: Sequence[str], ended: bool = True
    ) -> list[tuple[float, int]]:
        """Per text: the summed negative log-likelihood of its predicted tokens, and their count
        (its end token among them if ``ended``)."""
        sums = []
        for text in texts:
            ids = self.token_ids(text)
            if len(ids) < 3:
                raise FissureError(f"cannot score {text!r}: it has no tokens")
            ids = ids if ended else ids[:-1]
            logits = self._forward(ids).logits[0, :-1].float()
            targets = torch.tensor(ids[1:], device=self.device)
            loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
            sums.append((float(loss), len(ids) - 1))
        return sums

    def perplexities(self, texts: Sequence[str], ended: bool = True) -> list[float]:
        """Each text's perplexity: exp of its mean negative log-likelihood per token. With
        ``ended`` False, as the start of a longer text: its end is not predicted, so "a photo
        of a cat in" scores as fluent as the words so far, not as a finished prompt."""
        sums = self._negative_log_likelihoods(texts, ended)
        return [math.exp(total / count) for total, count in sums]

    def perplexity(self, texts: Sequence[str]) -> float:
        """The perplexity of all ``texts`` pooled, token by token."""
        sums = self._negative_log_likelihoods(texts)
        return math.exp(sum(total for total, _ in sums) / sum(count for _, count in sums))

    def shares_vocabulary(self, tokenizer: PreTrainedTokenizerBase) -> bool:
        """Whether ``tokenizer`` numbers tokens as this model's does, so a distribution over
        its vocabulary is one over this model's (emoji-lm reads emoji-sd's own tokenizer)."""
        return tokenizer.get_vocab() == self.tokenizer.get_vocab()

    def relaxed(self, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The last layer's states and the next-token log-probabilities (B×T×D, B×T×V) of
        texts given as distributions over the vocabulary (B×T×V; rows of one-hot vectors
        are the text itself): how a gradient reaches word choices (ATM's similarity and
        fluency terms). Gradients flow to ``weights``, never to the model."""
        table = self.model.get_input_embeddings().weight
        inputs = weights.to(table.dtype) @ table
        mask = torch.ones(inputs.shape[:2], dtype=torch.long, device=inputs.device)
        output = self.model(inputs_embeds=inputs, attention_mask=mask, output_hidden_states=True)
        return output.hidden_states[-1].float(), torch.log_softmax(output.logits.float(), dim=-1)

    @torch.no_grad()
    def hidden_states(self, text: str) -> torch.Tensor:
        """The last layer's states of ``text``'s word tokens (T×D), for similarity."""
        ids = self.token_ids(text)
        if len(ids) < 3:
            raise FissureError(f"cannot compare {text!r}: it has no tokens")
        output = self._forward(ids, output_hidden_states=True)
        return output.hidden_states[-1][0, 1:-1].float()

    def similarity(self, reference: str, candidate: str) -> float:
        """BERTScore's F1 (Zhang et al., 2020) with this model's states: each token matched
        to its most similar token of the other text by cosine, precision and recall averaged."""
        a = torch.nn.functional.normalize(self.hidden_states(reference), dim=-1)
        b = torch.nn.functional.normalize(self.hidden_states(candidate), dim=-1)
        cosines = a @ b.T
        recall = cosines.max(dim=1).values.mean()
        precision = cosines.max(dim=0).values.mean()
        return float(2 * precision * recall / (precision + recall).clamp(min=1e-12))
