import numpy as np
import pytest

from fissure.errors import FissureError
from fissure.world import EMOJI_SETS, class_names
from fissure.world.atlas import SPRITE_SIZE, sprites


def test_there_are_at_least_two_emoji_sets():
    assert len(EMOJI_SETS) >= 2


@pytest.mark.parametrize("emoji_set", EMOJI_SETS)
def test_every_set_has_a_visible_sprite_for_every_class(emoji_set):
    atlas = sprites(emoji_set)
    assert set(atlas) == set(class_names())
    for name, sprite in atlas.items():
        assert sprite.size == (SPRITE_SIZE, SPRITE_SIZE) and sprite.mode == "RGBA"
        alpha = np.asarray(sprite.getchannel("A"))
        assert (alpha > 128).mean() > 0.05, f"{emoji_set} {name} is (almost) empty"
        extents = [np.ptp(alpha.max(axis=axis).nonzero()[0]) for axis in (0, 1)]
        assert max(extents) >= SPRITE_SIZE - 2, f"{emoji_set} {name} does not fill its cell"


def test_sets_are_drawn_differently():
    dog = [np.asarray(sprites(emoji_set)["dog"], dtype=float) for emoji_set in EMOJI_SETS]
    for other in dog[1:]:
        assert np.abs(dog[0] - other).mean() > 10


def test_an_unknown_set_names_the_valid_ones():
    with pytest.raises(FissureError, match="valid sets: noto, twemoji"):
        sprites("apple")
