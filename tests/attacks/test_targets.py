"""Which class a prompt names."""

from __future__ import annotations

import pytest

from fissure.attacks import class_attempts, find_target, make_attempts
from fissure.errors import FissureError

EMOJI = [
    "cat", "dog", "red apple", "bat", "cricket game", "bear", "teddy bear", "mouse",
    "computer mouse", "glasses", "owl",
]  # fmt: skip


@pytest.mark.parametrize(
    ("prompt", "target"),
    [
        ("a photo of a cat", "cat"),
        ("A Photo of a Red Apple", "red apple"),
        ("a bat at night", "bat"),
        ("a big cricket game", "cricket game"),
        ("a teddy bear and a teddy bear", "teddy bear"),
        ("a photo of two dogs", "dog"),  # plurals and synonyms, as in the world's captions
        ("a photo of a puppy", "dog"),
        ("a photo of a mouse", "mouse"),  # polysemous, but the name of one class
        ("a photo of a computer mouse", "computer mouse"),
        ("a pair of spectacles", "glasses"),
    ],
)
def test_the_named_class_is_found(prompt, target):
    assert find_target(prompt, EMOJI) == target


def test_imagenet_labels_match_any_of_their_names():
    labels = ["tabby, tabby cat", "Egyptian cat", "tiger cat"]
    assert find_target("a tabby cat on a sofa", labels) == "tabby, tabby cat"
    assert find_target("an egyptian cat", labels) == "Egyptian cat"


def test_words_inside_other_words_do_not_count():
    with pytest.raises(FissureError, match="--target"):
        find_target("a photo of a category", EMOJI)


def test_two_classes_need_an_explicit_target():
    with pytest.raises(FissureError, match="several classes"):
        find_target("a cat and a dog", EMOJI)
    with pytest.raises(FissureError, match="several classes"):
        find_target("a bear hugging a teddy bear", EMOJI)
    with pytest.raises(FissureError, match="several classes"):
        find_target("a bat and a cricket game", EMOJI)
    attempts = make_attempts(["a cat and a dog"], [0, 1], EMOJI, target="dog")
    assert [(a.target, a.target_index, a.seed) for a in attempts] == [("dog", 1, 0), ("dog", 1, 1)]


def test_an_unknown_target_is_refused():
    with pytest.raises(FissureError, match="unknown class 'unicorn'"):
        make_attempts(["a unicorn"], [0], EMOJI, target="unicorn")


def test_class_attempts_fill_the_template_and_target_each_class():
    attempts = class_attempts(["cat", "red apple"], [0, 1], EMOJI, "a drawing of {}")
    assert [(a.prompt, a.target, a.seed) for a in attempts] == [
        ("a drawing of a cat", "cat", 0), ("a drawing of a cat", "cat", 1),
        ("a drawing of a red apple", "red apple", 0), ("a drawing of a red apple", "red apple", 1),
    ]  # fmt: skip
    prompts = [a.prompt for a in class_attempts(["owl", "glasses"], [0], EMOJI)]
    assert prompts == ["a photo of an owl", "a photo of a pair of glasses"]  # as captions say
    imagenet = class_attempts(["tabby, tabby cat"], [0], ["tabby, tabby cat", "Egyptian cat"])
    assert imagenet[0].prompt == "a photo of a tabby"
    with pytest.raises(FissureError, match="needs one"):
        class_attempts(["cat"], [0], EMOJI, "a {} and a {}")


def test_a_class_named_twice_is_attacked_once():
    assert len(class_attempts(["cat", "cat"], [0], EMOJI)) == 1
