"""Captions: what a person might write under a scene, with the words varied.

A caption names every object (by its name or a synonym, counted and sometimes
sized), often the background, sometimes where things are relative to each
other; about a fifth carry common English words that change nothing visible, so
a text encoder meets a natural vocabulary and a prompt attack has words to try.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from fissure.world.backgrounds import BACKGROUNDS, Background
from fissure.world.classes import get_class
from fissure.world.draws import Draws
from fissure.world.grammar import noun_phrase, number_word
from fissure.world.layout import MAX_OBJECTS, SceneObject
from fissure.world.lexicon import words

TEMPLATES = (
    "{}",
    "a photo of {}",
    "a picture of {}",
    "an image of {}",
    "a drawing of {}",
    "an illustration of {}",
    "a cartoon of {}",
    "a close-up photo of {}",
    "a snapshot of {}",
    "a rendering of {}",
    "an emoji of {}",
    "clip art of {}",
    "a nice photo of {}",
    "a bright photo of {}",
    "a cute picture of {}",
    "a painting of {}",
    "a photo showing {}",
    "a scene with {}",
    "an icon of {}",
    "art of {}",
)
_TEMPLATE_WEIGHTS = (4, 4) + (1,) * (len(TEMPLATES) - 2)
SIZE_WORDS = {"small": ("small", "little", "tiny"), "big": ("big", "large", "huge")}
LEFT_RIGHT = (
    "{left} to the left of {right}",
    "{right} to the right of {left}",
    "{left} on the left and {right} on the right",
    "{left} left of {right}",
)
TOGETHER = ("{} and {}", "{} next to {}", "{} with {}", "{} beside {}", "{} near {}")
FILLERS = (
    "{caption}, {words}",
    "{words}: {caption}",
    "{caption} - {words}",
    "{caption} by {words}",
)
COMMON_WORDS = Path(__file__).parent / "assets" / "common_words.txt"
_PLACEHOLDER = re.compile(r"\{\w*\}")
_SIZE_WORD_CHANCE = 0.5
_RELATION_CHANCE = 0.6
_RELATION_MIN_DX = 12  # pixels between centres before "left of" is true at a glance
_BACKGROUND_CHANCE = 0.75
_FILLER_CHANCE = 0.2
_MAX_FILLER_WORDS = 4


@cache
def common_words() -> tuple[str, ...]:
    """Frequent English words that name no class and no scene property (see scripts/build_common_words.py)."""
    return tuple(COMMON_WORDS.read_text().split())


def caption_words() -> frozenset[str]:
    """Every word captions use besides class terms and filler: templates, counts, sizes, relations, places."""
    fixed = [*TEMPLATES, *LEFT_RIGHT, *TOGETHER, *FILLERS, "a an"]
    fixed += [number_word(count) for count in range(1, MAX_OBJECTS + 1)]
    fixed += [word for options in SIZE_WORDS.values() for word in options]
    fixed += [phrase for background in BACKGROUNDS.values() for phrase in background.phrases]
    return frozenset(word for text in fixed for word in words(_PLACEHOLDER.sub(" ", text)))


def _group_phrase(name: str, members: list[SceneObject], draws: Draws) -> str:
    emoji_class = get_class(name)
    term = draws.choice(emoji_class.terms)
    bands = {member.band for member in members}
    adjective = ""
    if len(bands) == 1 and (band := bands.pop()) in SIZE_WORDS and draws.chance(_SIZE_WORD_CHANCE):
        adjective = draws.choice(SIZE_WORDS[band])
    return noun_phrase(term, len(members), adjective, emoji_class.counter)


def _subject(objects: tuple[SceneObject, ...], draws: Draws) -> str:
    """Name every object once, grouped by class, left to right, with a relation where clear."""
    groups: dict[str, list[SceneObject]] = {}
    for scene_object in sorted(objects, key=lambda o: o.center[0]):
        groups.setdefault(scene_object.name, []).append(scene_object)
    phrases = [_group_phrase(name, members, draws) for name, members in groups.items()]
    if len(phrases) == 1:
        return phrases[0]
    if len(phrases) == 2:
        left, right = (members[0] for members in groups.values())
        apart = right.center[0] - left.center[0] >= _RELATION_MIN_DX
        if apart and len(objects) == 2 and draws.chance(_RELATION_CHANCE):
            return draws.choice(LEFT_RIGHT).format(left=phrases[0], right=phrases[1])
        if draws.chance(0.5):
            phrases.reverse()
        return draws.choice(TOGETHER).format(*phrases)
    return f"{', '.join(phrases[:-1])} and {phrases[-1]}"


def write_caption(objects: tuple[SceneObject, ...], background: Background, draws: Draws) -> str:
    """A caption for a layout on a background: objects, maybe the place, maybe filler words."""
    text = _subject(objects, draws)
    if draws.chance(_BACKGROUND_CHANCE):
        text = f"{text} {draws.choice(background.phrases)}"
    text = draws.weighted(TEMPLATES, _TEMPLATE_WEIGHTS).format(text)
    if draws.chance(_FILLER_CHANCE):
        vocabulary = common_words()
        filler = " ".join(
            draws.choice(vocabulary) for _ in range(draws.integer(1, _MAX_FILLER_WORDS))
        )
        text = draws.choice(FILLERS).format(caption=text, words=filler)
    return text
