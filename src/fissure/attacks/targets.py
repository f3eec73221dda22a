"""Which class a prompt asks for, and the attempts an attack command runs."""

from __future__ import annotations

import re
from collections.abc import Sequence

from fissure.attacks.spaces import Attempt
from fissure.errors import FissureError
from fissure.judges.base import label_column
from fissure.world import class_names, get_class
from fissure.world.grammar import indefinite, noun_phrase
from fissure.world.lexicon import naming_phrases

CLASS_TEMPLATE = "a photo of {}"


def _names(label: str) -> list[str]:
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
    return indefinite(_names(label)[0])


def _mention(name: str) -> re.Pattern[str]:
    """``name`` as whole words."""
    return re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])")


def class_words(labels: Sequence[str]) -> frozenset[str]:
    """The words that name a class of ``labels``: each one-word name, and the last word
    (the noun) of longer ones ("apple" of "red apple", not "red"). A prompt search that
    adds none of them cannot remove a class by asking for another."""
    return frozenset(name.split()[-1] for label in labels for name in _names(label))


def names_target(prompt: str, label: str) -> bool:
    """Whether ``prompt`` says ``label`` by one of its names, as whole words."""
    return any(_mention(name).search(prompt.lower()) for name in _names(label))


def find_target(prompt: str, labels: Sequence[str]) -> str:
    """The one label the prompt names (the longest match, as whole words), or a clear error.

    A shorter name counts only where the prompt says it outside the longest one:
    "a teddy bear" names the teddy bear, "a bear and a teddy bear" names both. A
    word that names several classes and is one's name means that one ("a bat").
    """
    text = prompt.lower()
    matches: dict[str, str] = {}
    for label in labels:
        for name in _names(label):
            if _mention(name).search(text) and len(name) > len(matches.get(label, "")):
                matches[label] = name
    if not matches:
        raise FissureError(f"no class of the judge is named in {prompt!r}: say which with --target")
    longest = max(matches.values(), key=len)
    rest = _mention(longest).sub(" ", text)
    rivals = sorted(
        label for label, name in matches.items() if name == longest or _mention(name).search(rest)
    )
    if longest in rivals and all(matches[label] == longest for label in rivals):
        return longest  # a polysemous word that is one class's name: "a bat" is the bat
    if len(rivals) > 1:
        raise FissureError(
            f"{prompt!r} names several classes ({', '.join(sorted(matches))}): say which with --target"
        )
    return rivals[0]


def make_attempts(
    prompts: Sequence[str], seeds: Sequence[int], labels: Sequence[str], target: str | None = None
) -> list[Attempt]:
    """Every (prompt, seed), each with its target label looked up in ``labels``."""
    attempts = []
    for prompt in prompts:
        label = target if target is not None else find_target(prompt, labels)
        column = label_column(labels, label)
        attempts.extend(Attempt(prompt, label, column, seed) for seed in seeds)
    return list(dict.fromkeys(attempts))


def class_attempts(
    names: Sequence[str],
    seeds: Sequence[int],
    labels: Sequence[str],
    template: str | None = None,
) -> list[Attempt]:
    """The template (default ``"a photo of {}"``) filled with each class as a prompt says
    it ("a photo of an owl"), each class the target of its own prompt."""
    template = CLASS_TEMPLATE if template is None else template
    if template.count("{}") != 1:
        raise FissureError(f"--template needs one {{}} where the class goes, not {template!r}")
    return [
        attempt
        for name in dict.fromkeys(names)  # a class named twice is attacked once
        for attempt in make_attempts(
            [template.replace("{}", class_phrase(name))], seeds, labels, name
        )
    ]
