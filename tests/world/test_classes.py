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


def test_an_unknown_class_is_one_short_line_with_the_nearest_names():
    """The whole list made a 1,000-character line that the CLI cut off mid-list."""
    for name, hint in [("Dog", "'dog'"), ("puppy", "'dog'"), ("mouse", None), ("unicorn", "")]:
        if hint is None:
            assert get_class(name).name == name
            continue
        with pytest.raises(FissureError, match="`fissure world classes` lists all 104") as error:
            get_class(name)
        message = str(error.value)
        assert "\n" not in message and len(message) <= 200
        assert hint in message and ("did you mean" in message) == bool(hint)


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


def test_a_possessive_still_names_its_class():
    """The apostrophe was read as part of a word: "the dog's ball" named nothing."""
    assert [m.classes for m in mentions("the dog's ball")] == [("dog",)]
    assert [m.phrase for m in mentions("a jack-o-lantern's grin")] == ["jack-o-lantern"]
