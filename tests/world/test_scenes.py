import numpy as np
import pytest

from fissure.errors import FissureError
from fissure.world import BACKGROUNDS, EMOJI_SETS, sample_scene


def test_the_same_seed_gives_the_same_pixels_and_caption():
    first, again = sample_scene(123), sample_scene(123)
    assert first.caption == again.caption and first.objects == again.objects
    assert np.array_equal(np.asarray(first.image), np.asarray(again.image))


def test_the_world_does_not_drift():
    # Trained models and judges depend on these exact scenes; change them deliberately.
    assert [(s.emoji_set, s.background, s.labels) for s in map(sample_scene, range(3))] == [
        ("noto", "beach", ("bow and arrow", "ear of corn")),
        ("noto", "sky", ("clinking glasses", "birthday cake")),
        ("twemoji", "sunset", ("butterfly", "owl")),
    ]
    assert (
        sample_scene(0).caption == "a photo of an archery bow to the left of a corn cob on the sand"
    )


def test_different_seeds_give_different_images():
    images = [np.asarray(sample_scene(seed).image) for seed in range(8)]
    assert all(not np.array_equal(images[0], other) for other in images[1:])


def test_a_scene_is_a_64_pixel_rgb_image_of_one_to_three_objects():
    for seed in range(50):
        scene = sample_scene(seed)
        assert scene.image.size == (64, 64) and scene.image.mode == "RGB"
        assert 1 <= len(scene.objects) <= 3
        assert scene.emoji_set in EMOJI_SETS and scene.background in BACKGROUNDS
        assert set(scene.labels) == {o.name for o in scene.objects}
        for scene_object in scene.objects:
            x0, y0, x1, y1 = scene_object.box
            assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64


def test_the_caller_can_fix_the_set_and_the_object_count():
    for seed in range(20):
        scene = sample_scene(seed, n_objects=2, emoji_set="twemoji")
        assert len(scene.objects) == 2 and scene.emoji_set == "twemoji"


def test_a_scene_in_another_set_keeps_everything_but_the_sprites():
    scene = sample_scene(3)
    other = next(name for name in EMOJI_SETS if name != scene.emoji_set)
    shifted = scene.in_set(other)
    assert shifted.emoji_set == other
    assert (shifted.objects, shifted.caption, shifted.background) == (
        scene.objects,
        scene.caption,
        scene.background,
    )
    assert shifted.image.tobytes() != scene.image.tobytes()
    with pytest.raises(FissureError, match="valid sets"):
        scene.in_set("apple")


def test_seeds_cover_every_background_and_set():
    scenes = [sample_scene(seed) for seed in range(400)]
    assert {s.background for s in scenes} == set(BACKGROUNDS)
    assert {s.emoji_set for s in scenes} == set(EMOJI_SETS)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"seed": -1}, "non-negative"),
        ({"seed": 0, "n_objects": 4}, "between 1 and 3"),
        ({"seed": 0, "emoji_set": "apple"}, "valid sets"),
    ],
)
def test_bad_arguments_raise_one_line(arguments, message):
    with pytest.raises(FissureError, match=message):
        sample_scene(**arguments)


def test_numpy_integer_seeds_give_the_same_scene():
    assert sample_scene(np.int64(5)) == sample_scene(5)
