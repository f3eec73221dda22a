"""Which class a prompt asks for, and the attempts an attack command runs."""

from __future__ import annotations

import re
from collections.abc import Sequence

from fissure.attacks.spaces import Attempt
from fissure.errors import FissureError


def _names(label: str) -> list[str]:
    """A label's names: ImageNet labels list synonyms after commas ("tabby, tabby cat")."""
    return [name.strip().lower() for name in label.split(",") if name.strip()]


def _mention(name: str) -> re.Pattern[str]:
    """``name`` as whole words."""
    return re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])")


def find_target(prompt: str, labels: Sequence[str]) -> str:
    """The one label the prompt names (the longest match, as whole words), or a clear error.

    A shorter name counts only where the prompt says it outside the longest one:
    "a teddy bear" names the teddy bear, "a bear and a teddy bear" names both.
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
        if label not in labels:
            raise FissureError(
                f"unknown class {label!r} for this judge; try `fissure world classes`"
            )
        attempts.extend(Attempt(prompt, label, list(labels).index(label), seed) for seed in seeds)
    return list(dict.fromkeys(attempts))


def class_attempts(
    names: Sequence[str],
    seeds: Sequence[int],
    labels: Sequence[str],
    template: str = "a photo of a {}",
) -> list[Attempt]:
    """The template filled with each class name, each class the target of its own prompt."""
    if template.count("{}") != 1:
        raise FissureError(f"--template needs one {{}} where the class goes, not {template!r}")
    return [
        attempt
        for name in dict.fromkeys(names)  # a class named twice is attacked once
        for attempt in make_attempts([template.replace("{}", name)], seeds, labels, name)
    ]
