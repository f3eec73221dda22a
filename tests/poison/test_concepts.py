"""Which concepts a sweep poisons, and the world's pictures of a concept chosen by CLIP."""

from __future__ import annotations

import pytest
import torch

from fissure.errors import FissureError
from fissure.judges.registry import load_judge
from fissure.poison.concepts import (
    check_pair,
    concept_candidates,
    concept_pairs,
    select_concept_images,
)
from fissure.world import class_names, sample_scene


@pytest.fixture(scope="module")
def clip():
    return load_judge("emoji/clip")


def test_pairs_are_disjoint_and_a_larger_sweep_extends_a_smaller_one():
    pairs = concept_pairs(32)
    names = [name for pair in pairs for name in pair]
    assert len(names) == len(set(names)) == 64
    assert concept_pairs(4) == pairs[:4]
    assert concept_pairs(4, draw=1) != pairs[:4]
    assert concept_pairs(0) == []
    with pytest.raises(FissureError, match="at most 52"):
        concept_pairs(len(class_names()) // 2 + 1)


def test_a_pair_is_two_distinct_known_classes():
    assert check_pair("dog", "cat") == ("dog", "cat")
    with pytest.raises(FissureError, match="both 'dog'"):
        check_pair("dog", "dog")
    with pytest.raises(FissureError, match="unknown concept 'dgo'"):
        check_pair("dgo", "cat")


def test_candidates_show_the_concept_and_never_the_excluded_one():
    found = concept_candidates("dog", 5, without="cat")
    assert len(found.seeds) == 5 and found.images.dtype == torch.uint8
    for seed, caption in zip(found.seeds, found.captions, strict=True):
        scene = sample_scene(seed, emoji_set="noto")
        assert "dog" in scene.labels and "cat" not in scene.labels
        assert scene.caption == caption


def test_selection_keeps_images_clip_scores_above_the_threshold(clip):
    chosen = select_concept_images(clip, "dog", 4, threshold=0.5)
    prompt = clip.text_features_of(["a photo of a dog"])
    scores = clip.image_features(chosen.images.float() / 255) @ prompt.T
    assert len(chosen.seeds) == 4 and (scores > 0.5).all()
    with pytest.raises(FissureError, match="lower --clip-threshold"):
        select_concept_images(clip, "dog", 4, threshold=0.999)
