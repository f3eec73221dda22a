"""The goal asks every surrogate member, and with ``views`` every view, to miss the target."""

from __future__ import annotations

import torch

from fissure.attacks.goals import TargetAbsent
from fissure.attacks.views import VIEW_COUNT, image_views
from fissure.judges.base import Judge
from fissure.judges.ensemble import Ensemble

from .conftest import BrightnessJudge


class LeftHalfJudge(Judge):
    """ "light" when the left half of the image is bright: a flip can change its mind."""

    def __init__(self) -> None:
        super().__init__(["light", "dark", "grey"], input_size=32)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        left = self.preprocess(images)[..., : images.shape[-1] // 2].mean(dim=(1, 2, 3))
        light = 200.0 * (left - 0.5)
        return torch.stack([light, -light, torch.zeros_like(light)], dim=1)


def test_the_goal_holds_only_when_every_member_says_absent():
    images = torch.full((1, 3, 32, 32), 0.5)
    dark_enough = BrightnessJudge(threshold=0.9)  # "light" absent
    still_light = BrightnessJudge(threshold=0.1)  # "light" present
    target = torch.tensor([0])
    assert TargetAbsent(Ensemble([dark_enough, dark_enough])).evaluate(images, target).achieved
    split = TargetAbsent(Ensemble([dark_enough, still_light, dark_enough, dark_enough]))
    evaluation = split.evaluate(images, target)
    assert evaluation.probabilities[0, 0] < 0.3  # the mean vote alone would call it gone
    assert not evaluation.achieved


class FlatJudge(Judge):
    """Twenty classes, the first a little ahead: under 10% and still first."""

    def __init__(self) -> None:
        super().__init__([f"class{i}" for i in range(20)], input_size=32)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(images), 20).index_fill(1, torch.tensor([0]), 0.5)


def test_a_target_still_first_is_not_gone_however_low_its_probability():
    evaluation = TargetAbsent(FlatJudge()).evaluate(torch.zeros(1, 3, 32, 32), torch.tensor([0]))
    assert evaluation.probabilities[0, 0] < 0.1 and not evaluation.achieved


def test_views_are_the_image_flipped_shifted_and_zoomed():
    images = torch.rand(2, 3, 32, 32)
    views = image_views(images, shift=4)
    assert views.shape == (VIEW_COUNT, 2, 3, 32, 32)
    assert torch.equal(views[0], images) and torch.equal(views[1], images.flip(-1))
    assert torch.equal(views[2][..., 4:, 4:], images[..., :-4, :-4])  # moved right and down
    assert torch.equal(views[3][..., :-4, :-4], images[..., 4:, 4:])  # moved left and up


def test_with_views_a_target_hidden_only_at_one_alignment_is_not_gone():
    images = torch.zeros(1, 3, 32, 32)
    images[..., 16:] = 1.0  # bright on the right only: the left-half judge sees no light
    target = torch.tensor([0])
    plain = TargetAbsent(LeftHalfJudge()).evaluate(images, target)
    viewed = TargetAbsent(LeftHalfJudge(), views=True).evaluate(images, target)
    assert plain.achieved and not viewed.achieved  # the flipped view shows the light
    assert torch.equal(viewed.probabilities, plain.probabilities)  # reported: the image itself
    assert viewed.loss > plain.loss


def test_the_view_loss_has_a_gradient():
    images = torch.full((2, 3, 32, 32), 0.6, requires_grad=True)
    loss = (
        TargetAbsent(BrightnessJudge(threshold=0.5, sharpness=5.0), views=True)
        .evaluate(images, torch.tensor([0, 0]))
        .loss
    )
    (gradient,) = torch.autograd.grad(loss.sum(), images)
    assert gradient.abs().sum() > 0


def test_the_targeted_log_loss_keeps_a_gradient_where_the_target_is_unlikely():
    """SAGE's loss is flat where the target's probability is near 0, as a universal token
    starts; the log loss is not, and both succeed only when every member reads it first."""
    from fissure.attacks.goals import TargetPresent

    judge = Ensemble([BrightnessJudge(threshold=0.2), BrightnessJudge(threshold=0.3)])
    gradients = {}
    for loss in ("log", "sage"):
        images = torch.full((1, 3, 32, 32), 0.45, requires_grad=True)  # "light" everywhere
        evaluation = TargetPresent(judge, loss=loss).evaluate(images, torch.tensor([1]))
        assert not evaluation.achieved  # "dark" is the target, and no member reads it
        (gradients[loss],) = torch.autograd.grad(evaluation.loss.sum(), images)
    assert gradients["log"].abs().sum() > 1e6 * gradients["sage"].abs().sum()
    assert (gradients["log"] > 0).all()  # darker lowers the loss
    dark = torch.full((1, 3, 32, 32), 0.05)
    assert TargetPresent(judge).evaluate(dark, torch.tensor([1])).achieved
