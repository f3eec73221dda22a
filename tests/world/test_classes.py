import pytest

from fissure.errors import FissureError
from fissure.world import class_names, classes, get_class, mentions, polysemous_words

PAPER_EXAMPLES = [
    "dog",
    "cat",
    "pig",
    "boar",
    "automobile",
    "bicycle",
    "fish",
    "bird",
    "feather",
    "red apple",
    "top hat",
    "turtle",
    "spiral shell",
    "balloon",
    "pistol",
    "sandal",
    "mage",
    "swan",
]


def test_there_are_about_a_hundred_classes_with_unique_names():
    assert 60 <= len(classes()) <= 110
    assert len(set(class_names())) == len(class_names())
    assert all(c.category and c.emoji and c.unicode_name for c in classes())


@pytest.mark.parametrize("name", PAPER_EXAMPLES)
def test_the_papers_examples_are_classes(name):
    assert get_class(name).name == name


def test_an_unknown_class_names_the_valid_ones_in_one_line():
    with pytest.raises(FissureError, match="valid classes: dog, cat") as error:
        get_class("unicorn")
    assert "\n" not in str(error.value)


def test_polysemous_words_name_two_classes_each():
    shared = polysemous_words()
    assert {"bat", "mouse", "cricket", "bow"} <= set(shared)
    assert shared["bat"] == ("bat", "cricket game")
    assert shared["mouse"] == ("mouse", "computer mouse")
    assert all(len(names) == 2 for names in shared.values())


def test_every_term_reads_back_as_its_class_alone_unless_polysemous():
    shared = polysemous_words()
    for emoji_class in classes():
        for term in emoji_class.terms:
            (mention,) = mentions(f"a photo of {term} here")
            assert mention.phrase == term
            assert mention.classes == shared.get(term, (emoji_class.name,))


def test_mentions_prefer_the_longest_phrase():
    found = mentions("a cricket bat next to two mice and a wild boar")
    assert [m.phrase for m in found] == ["cricket bat", "mice", "wild boar"]
    assert found[0].classes == ("cricket game",)
    assert found[1].classes == ("mouse", "computer mouse")
