"""Measures of a poisoned model: rates from readings, and the class word's attention."""

from __future__ import annotations

import torch

from fissure.models.loading import load_pipeline
from fissure.poison.measure import (
    Generations,
    Rate,
    accuracy,
    attention_maps,
    poison_success,
    save_attention_figure,
    unpoisoned_classes,
    word_positions,
)
from fissure.world import class_names


def _generations(asked: list[str], read: list[str]) -> Generations:
    return Generations(torch.zeros(len(asked), 3, 8, 8), asked, read)


def test_poison_success_counts_readings_of_the_target():
    made = _generations(["dog", "dog", "dog", "owl"], ["cat", "dog", "cat", "swan"])
    assert poison_success(made, {"dog": "cat", "owl": "swan"}) == Rate(3, 4)
    assert accuracy(made) == Rate(1, 4)
    assert str(Rate(3, 4)).startswith("75.0% (3/4, 95% CI")


def test_a_polysemous_name_accepts_every_class_it_names():
    made = _generations(["mouse", "mouse", "mouse"], ["mouse", "computer mouse", "cat"])
    assert accuracy(made).hits == 2  # "mouse" names the animal and the computer mouse


def test_unpoisoned_classes_leave_out_sources_and_targets():
    kept = unpoisoned_classes([("dog", "cat"), ("owl", "swan")])
    assert len(kept) == len(class_names()) - 4
    assert not {"dog", "cat", "owl", "swan"} & set(kept)


def test_the_class_words_positions_follow_the_prompt(tiny_sd1_dir):
    pipeline = load_pipeline(str(tiny_sd1_dir), device="cpu")
    # one token per letter, none for spaces: the start token, then "aphotoofa" (9), then dog
    assert word_positions(pipeline.tokenizer, "a photo of a dog", "dog") == [10, 11, 12]


def test_attention_maps_are_one_per_prompt_and_scaled(tiny_sd1_dir, tmp_path):
    pipeline = load_pipeline(str(tiny_sd1_dir), device="cpu")
    images, maps = attention_maps(pipeline, ["dog", "cat"], seed=0, steps=2)
    assert images.shape == (2, 3, 64, 64) and maps.shape[0] == 2
    assert torch.allclose(maps.flatten(1).amax(1), torch.ones(2))
    save_attention_figure(images, maps, ["dog", "cat"], tmp_path / "attention.png")
    assert (tmp_path / "attention.png").stat().st_size > 1000
