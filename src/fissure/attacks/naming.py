"""How prompts name classes: the phrases of a label, and where a prompt says them."""

from __future__ import annotations

import re
from collections.abc import Sequence

from fissure.world import class_names, get_class
from fissure.world.grammar import indefinite, noun_phrase
from fissure.world.lexicon import naming_phrases


def names_of(label: str) -> list[str]:
    """The phrases that name a label in a prompt.

    An emoji class: its terms and their plurals, as in the world's captions ("two
    puppies" names the dog). An ImageNet label: its synonyms after commas ("tabby, tabby cat").
    """
    if label in class_names():
        return [phrase.lower() for phrase in naming_phrases(get_class(label))]
    return [name.strip().lower() for name in label.split(",") if name.strip()]


def class_phrase(label: str) -> str:
    """One of ``label`` as a prompt says it: "an owl", "a pair of glasses", "a tabby"."""
    if label in class_names():
        return noun_phrase(label, 1, counter=get_class(label).counter)
    return indefinite(names_of(label)[0])


def mention(name: str) -> re.Pattern[str]:
    """``name`` as whole words."""
    return re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])")


def class_words(labels: Sequence[str]) -> frozenset[str]:
    """The words that name a class of ``labels``: each one-word name, and the last word
    (the noun) of longer ones ("apple" of "red apple", not "red"). A prompt search that
    adds none of them cannot remove a class by asking for another."""
    return frozenset(name.split()[-1] for label in labels for name in names_of(label))


def names_target(prompt: str, label: str) -> bool:
    """Whether ``prompt`` says ``label`` by one of its names, as whole words."""
    return any(mention(name).search(prompt.lower()) for name in names_of(label))


def mention_span(prompt: str, label: str) -> tuple[int, int] | None:
    """Where ``prompt`` first says ``label`` (its longest name that it says), as character
    indices (start, end); None if it never does."""
    text = prompt.lower()
    for name in sorted(names_of(label), key=len, reverse=True):
        found = mention(name).search(text)
        if found:
            return found.span()
    return None


def mention_start(prompt: str, label: str) -> int | None:
    """Where ``prompt`` first says ``label``, as a character index: the place for words
    before the noun ("a photo of a |cat"); None if it never does."""
    span = mention_span(prompt, label)
    return span[0] if span else None
