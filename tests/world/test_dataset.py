import torch
from torch.utils.data import DataLoader

from fissure.world import SceneDataset, class_names, sample_scene


def test_items_are_images_captions_and_multi_hot_labels():
    dataset = SceneDataset(10, start=100)
    assert len(dataset) == 10
    image, caption, labels = dataset[3]
    scene = sample_scene(103)
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert caption == scene.caption
    assert labels.shape == (len(class_names()),)
    assert {class_names()[i] for i in labels.nonzero().flatten().tolist()} == set(scene.labels)


def test_a_data_loader_batches_it():
    batch = next(iter(DataLoader(SceneDataset(8, emoji_set="noto"), batch_size=4)))
    assert batch.image.shape == (4, 3, 64, 64)
    assert len(batch.caption) == 4
    assert batch.labels.shape == (4, len(class_names()))


def test_out_of_range_raises_index_error():
    dataset = SceneDataset(2)
    try:
        dataset[2]
    except IndexError:
        return
    raise AssertionError("dataset[2] of 2 did not raise IndexError")
