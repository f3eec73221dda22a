"""Poison sets: dirty-label pairs, Nightshade's poisons made in resumable batches."""

from __future__ import annotations

import pytest
import torch

from fissure.errors import FissureError
from fissure.judges.registry import load_judge
from fissure.models.loading import load_pipeline
from fissure.poison.concepts import select_concept_images
from fissure.poison.pairs import PoisonSet, dirty_label, nightshade_poisons


@pytest.fixture(scope="module")
def clip():
    return load_judge("emoji/clip")


def test_dirty_label_pairs_captions_of_a_with_pictures_of_b(clip, tmp_path):
    poisons = dirty_label(clip, "dog", "cat", 3)
    dogs = select_concept_images(clip, "dog", 3, without="cat")
    cats = select_concept_images(clip, "cat", 3, without="dog")
    assert poisons.captions == dogs.captions
    assert torch.equal(poisons.images, cats.images)
    poisons.save(tmp_path / "p.pt")
    again = PoisonSet.load(tmp_path / "p.pt")
    assert again.captions == poisons.captions and torch.equal(again.images, poisons.images)


def test_nightshade_poisons_stay_in_bound_and_resume_by_batch(clip, tiny_sd1_dir, tmp_path):
    pipeline = load_pipeline(str(tiny_sd1_dir), device="cpu")
    pipeline.set_progress_bar_config(disable=True)
    made = nightshade_poisons(
        pipeline, clip, "dog", "cat", 3, tmp_path, epsilon=0.05, steps=2, batch_size=2,
        progress=False,
    )  # fmt: skip
    originals = select_concept_images(clip, "dog", 3, without="cat")
    assert made.captions == originals.captions and made.kind == "nightshade"
    assert (made.images.int() - originals.images.int()).abs().max() <= round(0.05 * 255) + 1
    assert not torch.equal(made.images, originals.images)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch-0.pt", "batch-1.pt"]
    (tmp_path / "batch-1.pt").unlink()  # a run killed after its first batch
    again = nightshade_poisons(
        pipeline, clip, "dog", "cat", 3, tmp_path, steps=2, batch_size=2, progress=False
    )
    assert torch.equal(again.images, made.images)


def test_a_bound_outside_the_pixel_range_is_refused(clip, tiny_sd1_dir, tmp_path):
    pipeline = load_pipeline(str(tiny_sd1_dir), device="cpu")
    with pytest.raises(FissureError, match=r"\(0, 1\]"):
        nightshade_poisons(pipeline, clip, "dog", "cat", 2, tmp_path, epsilon=1.5)
