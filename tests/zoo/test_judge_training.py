"""The judge recipe: scene banks, augmentation, and training that resumes after a kill."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fissure.errors import FissureError
from fissure.judges.emoji import EmojiJudge
from fissure.world import class_names
from fissure.zoo import judge_training
from fissure.zoo.augment import StyleAugment, gaussian_blur
from fissure.zoo.judge_evaluation import judge_accuracy
from fissure.zoo.judge_training import RECIPES, JudgeRecipe, _batch, train_judge, train_judges
from fissure.zoo.scene_bank import BankSpec, SceneBank

SPEC = BankSpec(first_seed=123, count=20)
TINY = JudgeRecipe(
    "tiny", "convnet", {"channels": [8, 16]}, steps=3, seed=5, batch_size=8, warmup_steps=1
)


@pytest.fixture(scope="module")
def bank(tmp_path_factory) -> SceneBank:
    return SceneBank.cached(SPEC, tmp_path_factory.mktemp("banks"), progress=False)


def test_bank_holds_the_scenes_of_its_spec(bank, tmp_path):
    assert bank.images.shape == (20, 3, 64, 64) and bank.images.dtype == torch.uint8
    assert bank.targets.shape == (20, len(class_names()))
    assert torch.equal(bank.targets.sum(1).long(), bank.object_counts)
    assert set(bank.emoji_sets) == {"noto", "twemoji", "openmoji"}
    again = SceneBank.build(SPEC, progress=False)
    assert torch.equal(again.images, bank.images)
    assert len(bank.where(emoji_set="noto", n_objects=1)) > 0


def test_augmentation_is_seeded_and_keeps_the_range():
    images = torch.rand(16, 3, 64, 64)
    first = StyleAugment()(images, torch.Generator().manual_seed(0))
    second = StyleAugment()(images, torch.Generator().manual_seed(0))
    assert torch.equal(first, second)
    assert first.min() >= 0 and first.max() <= 1
    assert not torch.equal(first, images)


def test_blur_keeps_constant_images_and_smooths_noise():
    flat = torch.full((2, 3, 16, 16), 0.3)
    assert torch.allclose(gaussian_blur(flat, torch.ones(2, 1, 1, 1)), flat, atol=1e-6)
    noise = torch.rand(2, 3, 16, 16)
    assert gaussian_blur(noise, torch.ones(2, 1, 1, 1)).std() < noise.std()


def test_a_folder_of_another_recipe_is_refused(bank, tmp_path):
    cpu = torch.device("cpu")
    train_judge(TINY, bank, tmp_path, cpu, progress=False)
    with pytest.raises(FissureError, match="another recipe \\(learning_rate\\)"):
        train_judge(dataclasses.replace(TINY, learning_rate=1.0), bank, tmp_path, cpu)
    with pytest.raises(FissureError, match="trained for 3 steps, more than the 2"):
        train_judge(dataclasses.replace(TINY, steps=2), bank, tmp_path, cpu)


def test_a_batch_depends_only_on_seed_and_step(bank):
    weights = torch.ones(len(bank))
    first, _ = _batch(TINY, bank, weights, step=7)
    second, _ = _batch(TINY, bank, weights, step=7)
    assert torch.equal(first, second)
    assert not torch.equal(first, _batch(TINY, bank, weights, step=8)[0])


def test_training_resumes_after_a_kill(bank, tmp_path, watch_steps):
    """Killed at step 3 of 5 and resumed: steps 3 and 4 run, to the unbroken run's weights."""
    cpu = torch.device("cpu")
    recipe = dataclasses.replace(TINY, steps=5)
    unbroken = train_judge(recipe, bank, tmp_path / "unbroken", cpu, progress=False)

    watch_steps(judge_training, kill_at=3)
    with pytest.raises(KeyboardInterrupt):
        train_judge(recipe, bank, tmp_path / "killed", cpu, progress=False, checkpoint_seconds=0)
    assert torch.load(tmp_path / "killed" / "tiny" / "checkpoint.pt")["step"] == 3
    steps = watch_steps(judge_training)
    resumed = train_judge(recipe, bank, tmp_path / "killed", cpu, progress=False)

    assert steps == [3, 4]  # a restart from step 0 would end with the same weights
    assert resumed.metadata["recipe"]["steps"] == 5
    for name, value in unbroken.network.state_dict().items():
        assert torch.equal(value, resumed.network.state_dict()[name]), name


def test_a_finished_judge_asked_for_more_steps_trains_only_those(bank, tmp_path, watch_steps):
    cpu = torch.device("cpu")
    train_judge(TINY, bank, tmp_path, cpu, progress=False)
    steps = watch_steps(judge_training)
    longer = train_judge(dataclasses.replace(TINY, steps=5), bank, tmp_path, cpu, progress=False)
    assert steps == [3, 4]
    assert longer.metadata["recipe"]["steps"] == 5


def test_accuracy_counts_exact_top_k_matches(bank):
    pairs = bank.where(n_objects=2)

    def oracle(images: torch.Tensor) -> torch.Tensor:  # knows the answers, in bank order
        return pairs.targets[: len(images)]

    def wrong_once(images: torch.Tensor) -> torch.Tensor:
        scores = pairs.targets[: len(images)].clone()
        scores[0] = scores[0].roll(1)
        return scores

    assert judge_accuracy(oracle, pairs) == 1.0
    assert judge_accuracy(wrong_once, pairs) == pytest.approx(1 - 1 / len(pairs))


def test_every_bundled_judge_has_a_recipe():
    assert set(RECIPES) == {"resnet", "vit", "regnet", "edge", "verifier"}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_builds_a_judge_of_the_world(name):
    recipe = RECIPES[name]
    judge = EmojiJudge(
        class_names(), recipe.architecture, recipe.network_config, mean=recipe.mean, std=recipe.std
    )
    probabilities = judge.eval()(torch.rand(2, 3, 64, 64))
    assert probabilities.shape == (2, len(class_names()))


def test_parallel_jobs_train_the_same_judges_as_one_process(bank, tmp_path, one_thread):
    """Two worker processes (one thread each) give each judge the weights a serial run gives."""
    recipes = {
        "first": dataclasses.replace(TINY, name="first"),
        "second": dataclasses.replace(TINY, name="second", seed=6, steps=4),
    }
    kwargs = dict(install=False, progress=False, recipes=recipes, bank_specs={"surrogate": SPEC})
    train_judges(tmp_path / "serial", jobs=1, **kwargs)  # on one thread, as each worker
    torch.set_num_threads(2)  # each of 2 workers gets 2 // 2 = 1, on a machine of any size
    assert set(train_judges(tmp_path / "parallel", jobs=2, **kwargs)) == {"first", "second"}
    for name in recipes:
        serial = torch.load(tmp_path / "serial" / name / "checkpoint.pt")["modules"]["network"]
        parallel = torch.load(tmp_path / "parallel" / name / "checkpoint.pt")["modules"]["network"]
        for key, value in serial.items():
            assert torch.equal(value, parallel[key]), (name, key)


def test_a_judge_records_the_bank_it_trained_on(tmp_path, one_thread):
    """The metadata read the default bank of the recipe's name: a custom bank raised
    KeyError after training; a name given twice trained twice at once."""
    recipe = dataclasses.replace(TINY, bank="custom")
    judges = train_judges(
        tmp_path, names=["tiny", "tiny"], install=False, progress=False,
        recipes={"tiny": recipe}, bank_specs={"custom": SPEC},
    )  # fmt: skip
    assert list(judges) == ["tiny"]
    saved = EmojiJudge.from_pretrained(tmp_path / "tiny" / "final")
    bank = saved.metadata["bank"]
    assert (bank["first_seed"], bank["count"]) == (SPEC.first_seed, SPEC.count)
