from fissure.world import BACKGROUNDS, mentions, polysemous_words, sample_scene
from fissure.world.captions import (
    FILLERS,
    LEFT_RIGHT,
    TEMPLATES,
    TOGETHER,
    caption_words,
    common_words,
)
from fissure.world.lexicon import class_words, words


def test_there_are_at_least_15_templates():
    assert len(TEMPLATES) >= 15


def test_templates_relations_and_places_never_name_a_class():
    fixed = [*TEMPLATES, *LEFT_RIGHT, *TOGETHER, *FILLERS]
    fixed += [phrase for background in BACKGROUNDS.values() for phrase in background.phrases]
    assert [phrase for phrase in fixed if mentions(phrase)] == []


def test_filler_words_are_thousands_of_words_that_name_nothing():
    filler = set(common_words())
    assert len(filler) >= 2000
    assert not filler & (class_words() | caption_words())


def test_about_a_fifth_of_captions_carry_filler_words():
    filler = set(common_words())
    with_filler = sum(bool(filler & set(words(sample_scene(s).caption))) for s in range(5000))
    assert 0.15 <= with_filler / 5000 <= 0.25


def test_captions_name_every_object_and_nothing_else():
    for seed in range(3000):
        scene = sample_scene(seed)
        named = mentions(scene.caption)
        for label in scene.labels:
            assert any(label in m.classes for m in named), (label, scene.caption)
        for mention in named:
            assert set(mention.classes) & set(scene.labels), (mention, scene.caption)


def test_polysemous_words_appear_for_both_meanings():
    seen = set()
    for seed in range(5000):  # all 18 pairs show up by scene 584
        scene = sample_scene(seed)
        for mention in mentions(scene.caption):
            if len(mention.classes) > 1:
                seen |= {
                    (mention.phrase, label) for label in scene.labels if label in mention.classes
                }
    expected = {(word, name) for word, names in polysemous_words().items() for name in names}
    assert expected <= seen


def test_captions_over_10k_scenes_use_at_least_2000_words():
    vocabulary = set()
    for seed in range(10_000):  # about 3,000 words; 100k scenes give about 3,500
        vocabulary.update(words(sample_scene(seed).caption))
    assert len(vocabulary) >= 2000
