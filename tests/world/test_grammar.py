import pytest

from fissure.world import sample_scene
from fissure.world.grammar import indefinite, noun_phrase, plural
from fissure.world.lexicon import mentions


@pytest.mark.parametrize(
    ("singular", "expected"),
    [
        ("dog", "dogs"),
        ("mouse", "mice"),
        ("fox", "foxes"),
        ("butterfly", "butterflies"),
        ("key", "keys"),
        ("red apple", "red apples"),
        ("ear of corn", "ears of corn"),
        ("field mouse", "field mice"),
        ("bow and arrow", "bows and arrows"),
        ("small nut and bolt", "small nuts and bolts"),
        ("tiny bow and arrow", "tiny bows and arrows"),
    ],
)
def test_plural(singular, expected):
    assert plural(singular) == expected


def test_articles_follow_the_sound():
    assert indefinite("owl") == "an owl"
    assert indefinite("ewe") == "a ewe"
    assert indefinite("dog") == "a dog"


def test_noun_phrases_count_and_size():
    assert noun_phrase("dog", 1, "small") == "a small dog"
    assert noun_phrase("dog", 2) == "two dogs"
    assert noun_phrase("nut and bolt", 2, "small") == "two small nuts and bolts"
    assert noun_phrase("glasses", 1, counter="pair") == "a pair of glasses"
    assert noun_phrase("glasses", 3, "big", counter="pair") == "three pairs of big glasses"


def test_a_sized_pair_of_nouns_is_one_mention_in_a_caption():
    caption = sample_scene(13033).caption  # two small nut-and-bolt emoji
    assert "small nuts and bolts" in caption
    assert [m.classes for m in mentions(caption)] == [("nut and bolt",)]
