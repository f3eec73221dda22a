"""Just enough English grammar for captions: plurals, articles and counts."""

from __future__ import annotations

_IRREGULAR_PLURALS = {
    "mouse": "mice",
    "fish": "fish",
    "sheep": "sheep",
    "swine": "swine",
    "die": "dice",
    "dice": "dice",
    "knife": "knives",
    "cactus": "cacti",
    "octopus": "octopuses",
    "bow and arrow": "bows and arrows",
    "nut and bolt": "nuts and bolts",
}
_NUMBERS = ("zero", "one", "two", "three", "four", "five")
# Vowel letters that sound like "you" or "one" take "a", not "an".
_A_BEFORE = ("eu", "ew", "uni", "use", "one")


def plural(term: str) -> str:
    """The plural of a singular noun phrase: "red apple" -> "red apples", "ear of corn" -> "ears of corn"."""
    for singular, irregular in _IRREGULAR_PLURALS.items():
        if term == singular or (" " in singular and term.endswith(f" {singular}")):
            return term.removesuffix(singular) + irregular  # "small nut and bolt" too
    head, of, rest = term.partition(" of ")
    if of:
        return plural(head) + of + rest
    *words, last = term.split(" ")
    return " ".join([*words, _plural_word(last)])


def _plural_word(word: str) -> str:
    if word in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[word]
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def indefinite(phrase: str) -> str:
    """``phrase`` with "a" or "an" in front: "a dog", "an owl", "a ewe"."""
    starts_with_vowel = phrase[0] in "aeiou" and not phrase.startswith(_A_BEFORE)
    return ("an " if starts_with_vowel else "a ") + phrase


def number_word(count: int) -> str:
    """The English word for a small count."""
    return _NUMBERS[count]


def noun_phrase(term: str, count: int, adjective: str = "", counter: str | None = None) -> str:
    """A counted noun phrase: "a small dog", "two dogs", "a pair of glasses", "three big cars".

    ``counter`` counts nouns that are plural only ("glasses" by the "pair").
    """
    described = f"{adjective} {term}" if adjective else term
    if counter is not None:
        unit = counter if count == 1 else plural(counter)
        counted = f"{unit} of {described}"
    else:
        counted = described if count == 1 else plural(described)
    return indefinite(counted) if count == 1 else f"{number_word(count)} {counted}"
