"""The language model wrapper: words of either tokenizer convention, fluency, similarity."""

from __future__ import annotations

import math

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import CLIPTokenizer, GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

from fissure.errors import FissureError
from fissure.models.language import LanguageModel, vocabulary_word
from fissure.zoo import bundled_model_path

TEXTS = ["a photo of a dog on the grass", "two cats next to a red apple", "a small bird at night"]


def random_gpt2(vocab_size: int, seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=vocab_size, n_embd=32, n_layer=1, n_head=2))


@pytest.fixture(scope="module")
def clip_style() -> LanguageModel:
    tokenizer = CLIPTokenizer.from_pretrained(bundled_model_path("emoji-sd") / "tokenizer")
    return LanguageModel(random_gpt2(len(tokenizer)), tokenizer, "random")


@pytest.fixture(scope="module")
def gpt2_style() -> LanguageModel:
    """A byte-level BPE as GPT-2's: words start with Ġ, the end token starts a text."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    backend.train_from_iterator(TEXTS * 20, trainer)
    tokenizer = GPT2TokenizerFast(
        tokenizer_object=backend, bos_token="<|endoftext|>", eos_token="<|endoftext|>"
    )
    return LanguageModel(random_gpt2(len(tokenizer), seed=1), tokenizer, "random-gpt2")


def test_vocabulary_words_of_each_convention():
    assert vocabulary_word("dog</w>") == "dog"
    assert vocabulary_word("Ġdog") == "dog"
    assert vocabulary_word("▁dog") == "dog"
    for piece in ("do", ",</w>", "Ġ,", "<|endoftext|>", "12</w>"):
        assert vocabulary_word(piece) is None


@pytest.mark.parametrize("style", ["clip_style", "gpt2_style"])
def test_next_words_are_the_most_probable_whole_words(style, request):
    lm: LanguageModel = request.getfixturevalue(style)
    candidates = lm.next_words("a photo of a dog", 5)
    assert len({c.word for c in candidates}) == len(candidates) == 5
    assert [c.log_probability for c in candidates] == sorted(
        (c.log_probability for c in candidates), reverse=True
    )
    ids = lm.token_ids("a photo of a dog")
    if ids[-1] == lm.tokenizer.eos_token_id and len(ids) > 1:
        ids = ids[:-1]
    with torch.no_grad():
        log_p = torch.log_softmax(lm.model(torch.tensor([ids])).logits[0, -1], dim=-1)
    best_word = max(lm.words, key=lambda index: log_p[index])  # no whole word ranks above it
    assert candidates[0].word == lm.words[best_word]
    assert candidates[0].log_probability == pytest.approx(float(log_p[best_word]), abs=1e-5)


@pytest.mark.parametrize("style", ["clip_style", "gpt2_style"])
def test_perplexity_is_transformers_own_loss(style, request):
    lm: LanguageModel = request.getfixturevalue(style)
    for text, perplexity in zip(TEXTS, lm.perplexities(TEXTS), strict=True):
        ids = torch.tensor([lm.token_ids(text)])
        with torch.no_grad():
            loss = lm.model(ids, labels=ids).loss
        assert perplexity == pytest.approx(math.exp(float(loss)), rel=1e-5)
    pooled = lm.perplexity(TEXTS)
    assert min(lm.perplexities(TEXTS)) <= pooled <= max(lm.perplexities(TEXTS))


@pytest.mark.parametrize("style", ["clip_style", "gpt2_style"])
def test_an_unended_text_is_scored_as_the_start_of_a_longer_one(style, request):
    """Without its end token predicted, "a photo of a cat in" is as fluent as its words."""
    lm: LanguageModel = request.getfixturevalue(style)
    for text, perplexity in zip(TEXTS, lm.perplexities(TEXTS, ended=False), strict=True):
        ids = torch.tensor([lm.token_ids(text)[:-1]])
        with torch.no_grad():
            loss = lm.model(ids, labels=ids).loss
        assert perplexity == pytest.approx(math.exp(float(loss)), rel=1e-5)
    assert lm.perplexities(TEXTS[:1], ended=False) != lm.perplexities(TEXTS[:1])


def test_similarity_is_one_for_the_same_text_and_lower_for_another(clip_style):
    assert clip_style.similarity(TEXTS[0], TEXTS[0]) == pytest.approx(1.0, abs=1e-6)
    assert clip_style.similarity(TEXTS[0], TEXTS[1]) < 0.999


def test_loading_errors_are_one_line(tmp_path):
    with pytest.raises(FissureError, match="diffusion pipeline, not a language model"):
        LanguageModel.from_pretrained("emoji-sd")
    with pytest.raises(FissureError, match="could not load a causal language model"):
        LanguageModel.from_pretrained(str(tmp_path / "missing"))
    with pytest.raises(FissureError, match="could not load a causal language model"):
        LanguageModel.from_pretrained(str(bundled_model_path("emoji-sd")))


def test_a_saved_model_loads_by_folder(tmp_path, clip_style):
    clip_style.model.save_pretrained(tmp_path)
    clip_style.tokenizer.save_pretrained(tmp_path)
    loaded = LanguageModel.from_pretrained(str(tmp_path))
    assert loaded.perplexities(TEXTS) == pytest.approx(clip_style.perplexities(TEXTS), rel=1e-5)
