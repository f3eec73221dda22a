"""Stage 0: a CLIP tokenizer whose byte-level BPE is learned from world captions.

It is a stock ``CLIPTokenizer`` (same normaliser, pre-tokeniser and ``</w>``
word ends as OpenAI's), so diffusers loads it without fissure. With a vocabulary
larger than the caption vocabulary, almost every caption word is one token,
which is what word-level prompt attacks search over.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from tokenizers import Tokenizer, models, trainers
from tokenizers.pre_tokenizers import ByteLevel
from transformers import CLIPTokenizer

from fissure.world import sample_scene

SPECIAL_TOKENS = ["<|startoftext|>", "<|endoftext|>"]


def caption_corpus(count: int, first_seed: int = 0) -> Iterable[str]:
    """World captions (no pixels rendered), plus the class prompts attacks will use."""
    from fissure.world import classes

    for emoji_class in classes():
        for term in emoji_class.terms:
            yield f"a photo of a {term}"
    for seed in range(first_seed, first_seed + count):
        yield sample_scene(seed).caption


def train_tokenizer(
    corpus: Iterable[str], vocab_size: int = 6000, max_length: int = 77
) -> CLIPTokenizer:
    """Learn BPE merges on ``corpus`` and wrap them in a ``CLIPTokenizer``."""
    template = CLIPTokenizer()._tokenizer  # CLIP's normaliser and pre-tokeniser
    backend = Tokenizer(models.BPE(unk_token="<|endoftext|>", end_of_word_suffix="</w>"))
    backend.normalizer = template.normalizer
    backend.pre_tokenizer = template.pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=ByteLevel.alphabet(),
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer)
    model = json.loads(backend.to_str())["model"]
    vocab: dict[str, int] = dict(model["vocab"])
    for symbol in sorted(ByteLevel.alphabet()):  # every byte can end a word, seen or not
        vocab.setdefault(symbol, len(vocab))
        vocab.setdefault(symbol + "</w>", len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)
