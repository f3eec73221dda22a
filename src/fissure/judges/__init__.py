"""Judges: image classifiers that score what a generated image shows.

Attacks minimise losses made of surrogate judges; verifiers, which never enter a
loss, decide whether a failure is real.
"""

from fissure.judges.base import Judge
from fissure.judges.emoji import EmojiJudge
from fissure.judges.ensemble import Ensemble
from fissure.judges.losses import margin_loss, sage_loss
from fissure.judges.pretrained import ClipJudge, TransformersJudge, imagenet_labels
from fissure.judges.registry import bundled_judge_names, load_judge

__all__ = [
    "ClipJudge",
    "Ensemble",
    "EmojiJudge",
    "Judge",
    "TransformersJudge",
    "bundled_judge_names",
    "imagenet_labels",
    "load_judge",
    "margin_loss",
    "sage_loss",
]
