"""ATM's prompt sets: short and long prompts that name a class, or a user's file.

ATM's released prompts are "a photo of a <class> and a" (short) and one or two sentences
describing the class (long). For emoji-sd the long ones are built from the world's own
vocabulary (caption templates, size words, backgrounds), so the text encoder knows every
word; for a real checkpoint any text or CSV file of prompts with their classes serves.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from fissure.attacks.naming import class_phrase, names_of
from fissure.attacks.targets import find_target
from fissure.errors import FissureError
from fissure.world import class_names, get_class
from fissure.world.backgrounds import BACKGROUNDS
from fissure.world.captions import SIZE_WORDS
from fissure.world.draws import Draws
from fissure.world.grammar import noun_phrase

SHORT_TEMPLATE = "a photo of {} and a"
_OPENINGS = ("a photo of {}", "a close-up photo of {}", "a bright photo of {}", "a picture of {}")
_SECOND = (
    "the {name} is {place}",
    "there is only one {name} in the picture",
    "the {name} is easy to see {place}",
)
_PLACES = ("on the left", "on the right", "in the middle")


def short_prompt(label: str) -> str:
    """ATM's short prompt: "a photo of a <class> and a" (an extension already begun)."""
    return SHORT_TEMPLATE.format(class_phrase(label))


def long_prompt(label: str) -> str:
    """Two sentences about one object of ``label`` in a scene, in the world's words, drawn
    by the class's name (the same prompt every time)."""
    draws = Draws(0, f"atm-long:{label}")
    size = draws.choice(SIZE_WORDS[draws.choice(tuple(SIZE_WORDS))])
    subject = class_phrase(label)
    if label in class_names():
        subject = noun_phrase(label, 1, size, get_class(label).counter)
    background = draws.choice(draws.choice(tuple(BACKGROUNDS.values())).phrases)
    first = draws.choice(_OPENINGS).format(f"{subject} {background}")
    second = draws.choice(_SECOND).format(name=names_of(label)[0], place=draws.choice(_PLACES))
    return f"{first}. {second}."


def prompt_set(kind: str, labels: Sequence[str], classes: Sequence[str]) -> list[tuple[str, str]]:
    """(prompt, class) pairs: ``kind`` short or long for each of ``classes``, or the path of
    a file: a CSV with a ``prompt`` column and a ``classname`` (or ``class``) column, or a
    text file of one prompt a line, each naming one of ``labels``."""
    if kind == "short":
        return [(short_prompt(label), label) for label in classes]
    if kind == "long":
        return [(long_prompt(label), label) for label in classes]
    return read_prompt_file(Path(kind), labels)


def read_prompt_file(path: Path, labels: Sequence[str]) -> list[tuple[str, str]]:
    """The (prompt, class) pairs of a prompt file (see :func:`prompt_set`)."""
    if not path.is_file():
        raise FissureError(f"no prompt file {path}: give short, long, or a .csv or .txt file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        header = rows[0].keys() if rows else []
        column = next((name for name in ("classname", "class") if name in header), None)
        if rows and ("prompt" not in header or column is None):
            raise FissureError(
                f"{path} needs a 'prompt' column and a 'classname' (or 'class') column"
            )
        pairs = [(row["prompt"].strip(), row[column].strip()) for row in rows if row["prompt"]]
    else:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        pairs = [(line, find_target(line, labels)) for line in lines]
    if not pairs:
        raise FissureError(f"{path} holds no prompts: one a line, or a CSV with a prompt column")
    return pairs
