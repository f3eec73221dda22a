"""Judges found by name, as garak finds its plug-ins.

- ``emoji/surrogate``: SAGE's ensemble (ResNet, ViT, RegNet, edge), the attack loss;
- ``emoji/verifier``: a held-out architecture and data mix, never in a loss;
- ``emoji/<member>``: one bundled emoji judge (``emoji/resnet``, ``emoji/edge``, ...);
- ``emoji/clip``: emoji-sd's own CLIP, zero-shot over the emoji classes (a second verifier);
- ``clip:<id or folder>``: CLIP zero-shot over ImageNet-1k names (or ``labels``);
- a folder holding ``judge.json``: an emoji judge trained by ``fissure zoo train-judges``;
- anything else: a transformers image-classification model id or folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from fissure.errors import FissureError
from fissure.judges.base import Judge
from fissure.judges.emoji import CONFIG_NAME as EMOJI_CONFIG
from fissure.judges.emoji import EmojiJudge
from fissure.judges.ensemble import Ensemble
from fissure.judges.pretrained import ClipJudge, TransformersJudge
from fissure.world import class_names
from fissure.zoo import WEIGHTS_DIR, bundled_model_path

JUDGES_DIR = WEIGHTS_DIR / "judges"
SURROGATE_MEMBERS = ("resnet", "vit", "regnet", "edge")
VERIFIER = "verifier"
EMOJI_JUDGES = (*SURROGATE_MEMBERS, VERIFIER)


def bundled_judge_names() -> list[str]:
    """Every emoji judge name :func:`load_judge` accepts."""
    return ["emoji/surrogate", *(f"emoji/{name}" for name in EMOJI_JUDGES), "emoji/clip"]


def ensemble_members(name: str) -> list[str]:
    """The judges an ensemble name stands for (emoji/surrogate: its four), else the name."""
    if name == "emoji/surrogate":
        return [f"emoji/{member}" for member in SURROGATE_MEMBERS]
    return [name]


def judges_in_loss(name: str) -> set[str]:
    """Every judge name a surrogate puts in the loss: the ensemble and each of its members."""
    return {name, *ensemble_members(name)}


def is_zero_shot(name: str) -> bool:
    """Whether the judge ``name`` is CLIP zero-shot, so it can score any list of labels."""
    return name == "emoji/clip" or name.startswith("clip:")


def _load_emoji_member(name: str) -> EmojiJudge:
    if name not in EMOJI_JUDGES:
        raise FissureError(
            f"unknown emoji judge {name!r}; known: {', '.join(bundled_judge_names())}"
        )
    folder = JUDGES_DIR / name
    if not folder.is_dir():
        raise FissureError(
            f"the emoji judge {name} is not in this install; train it with `fissure zoo train-judges`"
        )
    return EmojiJudge.from_pretrained(folder)


def load_judge(
    name: str, device: str | torch.device = "cpu", labels: Sequence[str] | None = None
) -> Judge:
    """A judge ready to score images: eval mode, frozen weights, on ``device``."""
    from fissure.models.loading import resolve_device

    if not name or not name.strip():
        raise FissureError("empty judge name; try emoji/surrogate, emoji/verifier or a hub id")
    device = resolve_device(device)  # a bad device fails before any weights load
    if labels is not None and not is_zero_shot(name):
        raise FissureError(
            f"{name} has its own labels; labels are for CLIP zero-shot judges (clip:<id>, emoji/clip)"
        )
    if name == "emoji/surrogate":
        judge: Judge = Ensemble(
            [_load_emoji_member(m) for m in SURROGATE_MEMBERS], names=SURROGATE_MEMBERS
        )
    elif name == "emoji/clip":
        try:
            folder = bundled_model_path("emoji-sd") / "clip"
        except FissureError:
            raise FissureError(
                "emoji/clip is emoji-sd's CLIP: train emoji-sd first (`fissure zoo train emoji-sd`)"
            ) from None
        judge = ClipJudge.from_pretrained(str(folder), labels=labels or class_names())
    elif name.startswith("emoji/"):
        judge = _load_emoji_member(name.removeprefix("emoji/"))
    elif name.startswith("clip:"):
        judge = ClipJudge.from_pretrained(name.removeprefix("clip:"), labels=labels)
    elif (Path(name) / EMOJI_CONFIG).is_file():  # a judge `fissure zoo train-judges` made
        judge = EmojiJudge.from_pretrained(name)
    elif name in (*EMOJI_JUDGES, "surrogate", "clip") and not Path(name).exists():
        raise FissureError(f"unknown judge {name!r}: did you mean emoji/{name}?")
    else:
        judge = TransformersJudge.from_pretrained(name)
    judge.requires_grad_(False)
    judge.source = name
    return judge.eval().to(device)
