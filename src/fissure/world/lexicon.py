"""Which words name which classes, both ways.

Captions are made from class terms; this module reads them back: it finds the
class mentions in any text (longest phrase first, so "wild boar" is one mention
and "cricket bat" is not a cricket), and lists the words that name more than
one class (polysemy).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from fissure.world.classes import EmojiClass, classes
from fissure.world.grammar import plural

_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")


def words(text: str) -> list[str]:
    """The lower-case words of a text, keeping hyphenated words ("jack-o-lantern") whole;
    an apostrophe ends a word ("the dog's ball" names the dog)."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class Mention:
    """A phrase of a text that names one class, or several when the word is polysemous."""

    phrase: str
    classes: tuple[str, ...]


def naming_phrases(emoji_class: EmojiClass) -> tuple[str, ...]:
    """The phrases that name a class: its terms and their plurals ("dog", "puppies").

    Plural-only terms ("glasses") are counted by their counter, never pluralised.
    """
    if emoji_class.counter:
        return emoji_class.terms
    return tuple(dict.fromkeys([*emoji_class.terms, *map(plural, emoji_class.terms)]))


@cache
def _phrase_table() -> dict[tuple[str, ...], tuple[str, ...]]:
    """Every naming phrase, as a word tuple, mapped to the classes it names."""
    table: dict[tuple[str, ...], tuple[str, ...]] = {}
    for emoji_class in classes():
        for phrase in naming_phrases(emoji_class):
            key = tuple(words(phrase))
            if emoji_class.name not in table.get(key, ()):
                table[key] = (*table.get(key, ()), emoji_class.name)
    return table


def mentions(text: str) -> list[Mention]:
    """The class mentions in ``text``, left to right, matching the longest phrase first."""
    table = _phrase_table()
    longest = max(len(key) for key in table)
    tokens = words(text)
    found: list[Mention] = []
    start = 0
    while start < len(tokens):
        for length in range(min(longest, len(tokens) - start), 0, -1):
            key = tuple(tokens[start : start + length])
            if key in table:
                found.append(Mention(" ".join(key), table[key]))
                start += length
                break
        else:
            start += 1
    return found


def polysemous_words() -> dict[str, tuple[str, ...]]:
    """Each term that names two or more classes, with the classes it names (in the singular:
    ``mentions`` reads the plurals, "mice" or "bats", as just as ambiguous)."""
    named: dict[str, tuple[str, ...]] = {}
    for emoji_class in classes():
        for term in emoji_class.terms:
            named[term] = (*named.get(term, ()), emoji_class.name)
    return {term: names for term, names in named.items() if len(names) > 1}


def class_words() -> frozenset[str]:
    """Every word of any class term, its plural or its counter ("pair"): kept out of filler text."""
    counters = {c.counter for c in classes() if c.counter}
    counter_words = {word for counter in counters for word in (counter, plural(counter))}
    return frozenset({word for key in _phrase_table() for word in key} | counter_words)
