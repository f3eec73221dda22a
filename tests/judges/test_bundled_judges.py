"""The bundled emoji judges: they load by name and see what rendered scenes show."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from fissure.cli import app
from fissure.judges import Ensemble, load_judge
from fissure.judges.registry import EMOJI_JUDGES, SURROGATE_MEMBERS
from fissure.world import class_names
from fissure.zoo.judge_evaluation import EVALUATION_SEED, judge_accuracy
from fissure.zoo.scene_bank import BankSpec, SceneBank


@pytest.fixture(scope="module")
def held_out() -> SceneBank:
    """Single-object scenes of the generator's set, from seeds no judge trained on."""
    spec = BankSpec(EVALUATION_SEED + 7_000_000, 60, object_counts=(1,), emoji_sets=("noto",))
    return SceneBank.build(spec, progress=False)


def test_surrogate_is_the_ensemble_of_four_architectures():
    surrogate = load_judge("emoji/surrogate")
    assert isinstance(surrogate, Ensemble)
    assert surrogate.names == list(SURROGATE_MEMBERS)
    assert surrogate.labels == list(class_names())
    architectures = {member.architecture for member in surrogate.members}
    assert len(architectures) == 4
    assert load_judge("emoji/verifier").architecture not in architectures


@pytest.mark.parametrize("name", [*EMOJI_JUDGES, "surrogate"])
def test_bundled_judges_recognise_held_out_scenes(name, held_out):
    judge = load_judge(f"emoji/{name}")
    assert (
        judge_accuracy(judge, held_out) >= 0.6
    )  # a sanity floor against broken weights; the bars are measured by `fissure zoo evaluate-judges`


def test_judge_command_names_the_object_in_a_scene(tmp_path):
    from fissure.world import sample_scene

    scene = sample_scene(EVALUATION_SEED + 7_500_000, n_objects=1, emoji_set="noto")
    scene.image.save(tmp_path / "scene.png")
    result = CliRunner().invoke(
        app, ["judge", str(tmp_path / "scene.png"), "--top-k", "3"], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    assert scene.labels[0] in result.output


def test_surrogate_gradients_reach_the_image():
    surrogate = load_judge("emoji/surrogate")
    images = torch.rand(2, 3, 64, 64, requires_grad=True)
    surrogate.member_probabilities(images)[:, :, 0].sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
