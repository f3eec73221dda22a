"""Which class a prompt asks for, and the attempts an attack command runs."""

from __future__ import annotations

from collections.abc import Sequence

from fissure.attacks.naming import class_phrase, mention, names_of
from fissure.attacks.spaces import Attempt
from fissure.errors import FissureError
from fissure.judges.base import label_column

CLASS_TEMPLATE = "a photo of {}"


def find_target(prompt: str, labels: Sequence[str]) -> str:
    """The one label the prompt names (the longest match, as whole words), or a clear error.

    A shorter name counts only where the prompt says it outside the longest one:
    "a teddy bear" names the teddy bear, "a bear and a teddy bear" names both. A
    word that names several classes and is one's name means that one ("a bat").
    """
    text = prompt.lower()
    matches: dict[str, str] = {}
    for label in labels:
        for name in names_of(label):
            if mention(name).search(text) and len(name) > len(matches.get(label, "")):
                matches[label] = name
    if not matches:
        raise FissureError(f"no class of the judge is named in {prompt!r}: say which with --target")
    longest = max(matches.values(), key=len)
    rest = mention(longest).sub(" ", text)
    rivals = sorted(
        label for label, name in matches.items() if name == longest or mention(name).search(rest)
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
