"""The emoji classes: what the world can show, and the words that name each thing.

Names follow the Unicode (CLDR) names of the emoji, made singular where the
Unicode name is plural. Some synonyms are shared on purpose (``bat``, ``mouse``,
``cricket``, ``bow``, ...) so that polysemy has a ground truth: the word names
two classes that look nothing alike.
"""

from __future__ import annotations

import difflib
import unicodedata
from dataclasses import dataclass
from functools import cache

from fissure.errors import FissureError


@dataclass(frozen=True)
class EmojiClass:
    """One kind of object: its emoji, name, synonyms and category."""

    name: str
    emoji: str
    synonyms: tuple[str, ...]
    category: str
    counter: str | None = None
    """For names that are plural only ("glasses"): the noun they are counted with ("pair")."""

    @property
    def terms(self) -> tuple[str, ...]:
        """Every word or phrase that names this class in a caption, the name first."""
        return (self.name, *self.synonyms)

    @property
    def codepoints(self) -> str:
        """The emoji's code points, e.g. ``U+1F415``, without the emoji variation selector."""
        return " ".join(f"U+{ord(char):04X}" for char in self.emoji if char != "\ufe0f")

    @property
    def unicode_name(self) -> str:
        """The Unicode character name of the emoji, e.g. ``DOG``."""
        return unicodedata.name(self.emoji[0], "")


def _class(
    emoji: str, name: str, synonyms: str, category: str, counter: str | None = None
) -> EmojiClass:
    return EmojiClass(name, emoji, tuple(filter(None, synonyms.split(", "))), category, counter)


_CLASSES = (
    # animals
    _class("🐕", "dog", "puppy, hound, pooch", "animal"),
    _class("🐈", "cat", "kitten, kitty, tomcat", "animal"),
    _class("🐖", "pig", "hog, swine, piglet", "animal"),
    _class("🐗", "boar", "wild boar, wild hog", "animal"),
    _class("🐄", "cow", "dairy cow, heifer", "animal"),
    _class("🐎", "horse", "pony, stallion, mare", "animal"),
    _class("🐑", "ewe", "sheep, lamb", "animal"),
    _class("🐇", "rabbit", "bunny, hare", "animal"),
    _class("🐁", "mouse", "field mouse, rodent", "animal"),
    _class("🦇", "bat", "fruit bat, vampire bat", "animal"),
    _class("🦗", "cricket", "grasshopper, katydid", "animal"),
    _class("🐢", "turtle", "tortoise, terrapin", "animal"),
    _class("🐍", "snake", "serpent, viper", "animal"),
    _class("🐊", "crocodile", "alligator, croc", "animal"),
    _class("🐘", "elephant", "pachyderm", "animal"),
    _class("🦒", "giraffe", "", "animal"),
    _class("🦁", "lion", "lioness", "animal"),
    _class("🐅", "tiger", "tigress", "animal"),
    _class("🐻", "bear", "grizzly, grizzly bear", "animal"),
    _class("🐼", "panda", "panda bear, giant panda", "animal"),
    _class("🦊", "fox", "vixen", "animal"),
    _class("🦓", "zebra", "", "animal"),
    _class("🦢", "swan", "cygnet", "animal"),
    _class("🐦", "bird", "songbird, birdie", "animal"),
    _class("🦆", "duck", "mallard, duckling", "animal"),
    _class("🦉", "owl", "owlet", "animal"),
    _class("🐓", "rooster", "cockerel", "animal"),
    _class("🦩", "flamingo", "", "animal"),
    _class("🐧", "penguin", "", "animal"),
    _class("🐟", "fish", "", "animal"),
    _class("🐬", "dolphin", "porpoise", "animal"),
    _class("🐋", "whale", "humpback whale", "animal"),
    _class("🐙", "octopus", "", "animal"),
    _class("🦀", "crab", "", "animal"),
    _class("🦭", "seal", "harbor seal, fur seal", "animal"),
    _class("🐚", "spiral shell", "seashell, shell, conch", "animal"),
    _class("🦋", "butterfly", "", "animal"),
    _class("🐝", "honeybee", "bee, bumblebee", "animal"),
    _class("🐞", "lady beetle", "ladybug, ladybird", "animal"),
    _class("🐸", "frog", "toad", "animal"),
    _class("🪶", "feather", "plume, quill", "animal"),
    # plants
    _class("🌵", "cactus", "", "plant"),
    _class("🌻", "sunflower", "", "plant"),
    _class("🌲", "evergreen tree", "pine tree, fir tree", "plant"),
    _class("🍄", "mushroom", "toadstool", "plant"),
    # food
    _class("🍎", "red apple", "apple", "food"),
    _class("🍌", "banana", "", "food"),
    _class("🍉", "watermelon", "melon", "food"),
    _class("🍓", "strawberry", "berry", "food"),
    _class("🍍", "pineapple", "", "food"),
    _class("🥕", "carrot", "", "food"),
    _class("🌽", "ear of corn", "corncob, corn cob", "food"),
    _class("🥜", "peanut", "nut, groundnut", "food"),
    _class("🍕", "pizza", "pizza slice, slice of pizza", "food"),
    _class("🍔", "hamburger", "burger, cheeseburger", "food"),
    _class("🎂", "birthday cake", "cake", "food"),
    _class("☕", "hot beverage", "coffee, cup of coffee, cup of tea", "food"),
    _class("🥂", "clinking glasses", "glasses, champagne glasses", "food", counter="pair"),
    # vehicles
    _class("🚗", "automobile", "car, sedan", "vehicle"),
    _class("🚲", "bicycle", "bike, pushbike", "vehicle"),
    _class("🚂", "locomotive", "steam engine, steam train, train", "vehicle"),
    _class("✈️", "airplane", "plane, aeroplane, airliner", "vehicle"),
    _class("🚁", "helicopter", "chopper", "vehicle"),
    _class("🚀", "rocket", "spaceship, rocket ship", "vehicle"),
    _class("⛵", "sailboat", "sailing boat, yacht", "vehicle"),
    _class("🏍️", "motorcycle", "motorbike", "vehicle"),
    # clothing
    _class("🎩", "top hat", "hat, silk hat", "clothing"),
    _class("👡", "sandal", "strappy sandal", "clothing"),
    _class("👟", "running shoe", "sneaker, trainer, shoe", "clothing"),
    _class("👓", "glasses", "eyeglasses, spectacles", "clothing", counter="pair"),
    _class("👑", "crown", "royal crown", "clothing"),
    # sport and games
    _class("⚽", "soccer ball", "football", "sport"),
    _class("🏀", "basketball", "", "sport"),
    _class("🏏", "cricket game", "cricket bat, cricket, bat", "sport"),
    _class("🏆", "trophy", "cup, prize cup", "sport"),
    _class("🏹", "bow and arrow", "bow, archery bow", "sport"),
    _class("🎲", "game die", "die, dice", "sport"),
    # music
    _class("🎸", "guitar", "", "music"),
    _class("🎺", "trumpet", "horn", "music"),
    _class("🥁", "drum", "snare drum", "music"),
    _class("🎹", "musical keyboard", "keyboard, piano", "music"),
    _class("🎵", "musical note", "note, music note", "music"),
    # objects
    _class("🎈", "balloon", "", "object"),
    _class("🎀", "ribbon", "bow, hair bow", "object"),
    _class("🎁", "wrapped gift", "gift, present", "object"),
    _class("📖", "open book", "book", "object"),
    _class("📝", "memo", "note, notepad", "object"),
    _class("🔑", "key", "", "object"),
    _class("🔨", "hammer", "", "object"),
    _class("✂️", "scissors", "shears", "object", counter="pair"),
    _class("🔩", "nut and bolt", "nut, bolt", "object"),
    _class("⚡", "high voltage", "lightning bolt, bolt, thunderbolt", "object"),
    _class("💡", "light bulb", "bulb, lightbulb", "object"),
    _class("☂️", "umbrella", "parasol", "object"),
    _class("🧸", "teddy bear", "teddy, plush toy", "object"),
    _class("🎃", "jack-o-lantern", "pumpkin", "object"),
    # electronics
    _class("📱", "mobile phone", "cell phone, smartphone, phone", "electronics"),
    _class("🖱️", "computer mouse", "mouse", "electronics"),
    _class("⌨️", "keyboard", "computer keyboard", "electronics"),
    _class("📷", "camera", "", "electronics"),
    # weapons
    _class("🔫", "pistol", "gun, water gun, water pistol", "weapon"),
    _class("🗡️", "dagger", "knife", "weapon"),
    # characters
    _class("🧙", "mage", "wizard, magician, sorcerer", "character"),
    _class("🤖", "robot", "", "character"),
)


def classes() -> tuple[EmojiClass, ...]:
    """Every class, in a fixed order (the order of label vectors)."""
    return _CLASSES


def class_names() -> tuple[str, ...]:
    """The class names in the order of label vectors."""
    return tuple(emoji_class.name for emoji_class in _CLASSES)


@cache
def _by_name() -> dict[str, EmojiClass]:
    return {emoji_class.name: emoji_class for emoji_class in _CLASSES}


def get_class(name: str) -> EmojiClass:
    """The class called ``name``; else a one-line :class:`FissureError` with the nearest names
    (a synonym gives its class's name: classes are named one way only)."""
    try:
        return _by_name()[name]
    except KeyError:
        pass
    named = [c.name for c in _CLASSES if name.lower() in c.terms]
    near = named or difflib.get_close_matches(name.lower(), class_names(), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(map(repr, near))}? " if near else ""
    raise FissureError(
        f"unknown emoji class {name!r}; {hint}`fissure world classes` lists all {len(_CLASSES)}"
    )
