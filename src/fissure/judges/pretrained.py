"""Judges for real checkpoints: transformers image classifiers and CLIP zero-shot.

Both load with ``from_pretrained`` from a hub id or a local folder, so any
ImageNet-1k classifier on the hub can judge images from a real SD checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import (
    AutoImageProcessor,
    AutoModelForImageClassification,
    AutoTokenizer,
    CLIPModel,
)

from fissure.errors import FissureError, first_line
from fissure.hub import hub_offline
from fissure.judges.base import Judge, plain_label

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@cache
def imagenet_labels() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names, in index order."""
    return tuple((Path(__file__).parent / "imagenet_labels.txt").read_text().splitlines())


def _load(loader: Any, source: str, what: str, **kwargs: Any) -> Any:
    """``loader.from_pretrained`` with failures turned into one actionable line."""
    try:
        return loader.from_pretrained(source, local_files_only=hub_offline(), **kwargs)
    except Exception as error:
        raise FissureError(
            f"could not load {what} from {source!r} ({first_line(error)}); check the id or path"
        ) from error


#: PIL resampling filters of image processors, as ``F.interpolate`` modes.
_INTERPOLATION = {2: "bilinear", 3: "bicubic"}


def _side(size: Any) -> int | None:
    """One side of a processor's size: an int, or a dict (transformers 5: a SizeDict)."""
    if size is None or isinstance(size, int):
        return size
    return size.get("height") or size.get("shortest_edge")


def _resizes_shortest_edge(size: Any) -> bool:
    """Whether a processor's size keeps the aspect ({"shortest_edge": n}), not {"height", "width"}."""
    return size is not None and not isinstance(size, int) and bool(size.get("shortest_edge"))


def _preprocessing(
    source: str, default_mean: Sequence[float], default_std: Sequence[float], default_size: int
) -> dict[str, Any]:
    """The judge's preprocessing as the model's image processor does it, if it has one.

    A processor's resize (of the shortest edge, keeping the aspect, or to a fixed
    height and width), then its centre crop (``crop_pct`` for ConvNeXt-style
    processors, ``crop_size`` otherwise), its rescale and normalisation (either may
    be off) and its channel order.
    """
    try:
        processor = AutoImageProcessor.from_pretrained(source, local_files_only=hub_offline())
    except OSError as error:
        if (Path(source) / "preprocessor_config.json").is_file():  # there, but unreadable
            raise FissureError(
                f"could not read the image processor of {source} ({first_line(error)})"
            ) from error
        return dict(mean=default_mean, std=default_std, input_size=default_size)
    size = _side(getattr(processor, "size", None)) or default_size
    crop_pct = getattr(processor, "crop_pct", None)
    if crop_pct and size < 384:  # ConvNeXt's rule: resize to size / crop_pct, crop size
        input_size, resize_size = size, int(size / crop_pct)
    elif getattr(processor, "do_center_crop", False):
        input_size, resize_size = _side(getattr(processor, "crop_size", None)) or size, size
    else:
        input_size, resize_size = size, size
    image_std = tuple(getattr(processor, "image_std", None) or default_std)
    if getattr(processor, "do_normalize", None):
        mean, std = tuple(getattr(processor, "image_mean", None) or default_mean), image_std
    else:  # MobileViT's processor only rescales
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    rescale = getattr(processor, "do_rescale", True) is not False
    scale = 255 * (getattr(processor, "rescale_factor", None) or 1 / 255) if rescale else 255.0
    offset = 1.0 if rescale and getattr(processor, "rescale_offset", False) else 0.0
    if getattr(processor, "include_top", False):  # EfficientNet's: by the std once more
        std = tuple(s * t for s, t in zip(std, image_std, strict=True))
    # the processor computes ((255·x·factor − offset) − mean) / std for x in [0, 1]
    return dict(
        mean=tuple((m + offset) / scale for m in mean),
        std=tuple(s / scale for s in std),
        bgr=bool(getattr(processor, "do_flip_channel_order", False)),
        input_size=input_size,
        resize_size=resize_size,
        interpolation=_INTERPOLATION.get(int(getattr(processor, "resample", 2) or 2), "bilinear"),
        keep_aspect=_resizes_shortest_edge(getattr(processor, "size", None)),
    )


class TransformersJudge(Judge):
    """Any transformers image-classification model, labels from its config."""

    def __init__(self, model: torch.nn.Module, labels: Sequence[str], **preprocessing: Any) -> None:
        super().__init__(labels, **preprocessing)
        self.model = model

    @classmethod
    def from_pretrained(cls, source: str) -> TransformersJudge:
        model, info = _load(
            AutoModelForImageClassification, source, "an image classifier", output_loading_info=True
        )
        if info["missing_keys"]:  # a head made up on the spot would judge at random
            kind = getattr(model.config, "model_type", "model")
            hint = f"; for CLIP zero-shot use clip:{source}" if kind == "clip" else ""
            raise FissureError(
                f"{source} is a {kind} without a trained classification head "
                f"(missing {sorted(info['missing_keys'])[0]}, ...){hint}"
            )
        labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        size = (
            model.config.image_size
            if isinstance(getattr(model.config, "image_size", None), int)
            else 224
        )
        preprocessing = _preprocessing(source, IMAGENET_MEAN, IMAGENET_STD, size)
        return cls(model, labels, **preprocessing).eval()

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=self.preprocess(images)).logits


class ClipJudge(Judge):
    """CLIP zero-shot: cosine similarity of the image to "a photo of a <label>", scaled."""

    def __init__(
        self,
        model: CLIPModel,
        tokenizer,
        labels: Sequence[str],
        template: str,
        **preprocessing: Any,
    ) -> None:
        """``labels`` may be another judge's (``"crane (517)"`` is prompted as "crane": such a
        class ties with its namesake, so attacks refuse it as a target of this verifier)."""
        super().__init__(labels, model.config.vision_config.image_size, **preprocessing)
        self.model = model
        self.tokenizer = tokenizer
        self.prompts = [template.format(plain_label(label)) for label in labels]
        with torch.no_grad():
            tokens = tokenizer(
                self.prompts, padding="max_length", truncation=True, return_tensors="pt"
            )
            text = model.get_text_features(**tokens).pooler_output
        self.register_buffer("text_features", F.normalize(text, dim=-1), persistent=False)

    @classmethod
    def from_pretrained(
        cls, source: str, labels: Sequence[str] | None = None, template: str = "a photo of a {}"
    ) -> ClipJudge:
        model = _load(CLIPModel, source, "a CLIP model")
        tokenizer = _load(AutoTokenizer, source, "a CLIP tokenizer")
        preprocessing = _preprocessing(
            source, CLIP_MEAN, CLIP_STD, model.config.vision_config.image_size
        )
        if preprocessing.pop("input_size") != model.config.vision_config.image_size:
            preprocessing.pop("resize_size", None)  # the model's own size rules
        labels = list(labels) if labels is not None else imagenet_labels()
        return cls(model, tokenizer, labels, template, **preprocessing).eval()

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        features = self.model.get_image_features(pixel_values=self.preprocess(images)).pooler_output
        return F.normalize(features, dim=-1)

    def similarities(self, images: torch.Tensor) -> torch.Tensor:
        """Cosine similarity ``B×C`` of each image to each label prompt (ATM's CLIP score)."""
        return self.image_features(images) @ self.text_features.T

    @torch.no_grad()
    def text_features_of(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalised text embeddings (B×d) of any texts, as the label prompts are made."""
        tokens = self.tokenizer(
            list(texts), padding="max_length", truncation=True, return_tensors="pt"
        ).to(self.text_features.device)
        return F.normalize(self.model.get_text_features(**tokens).pooler_output, dim=-1)

    @torch.no_grad()
    def text_similarity(self, images: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        """Cosine (B) of each image to its text: the CLIP score (Hessel et al., 2021, less
        its ×2.5 and clipping at 0) of images against the prompts meant to make them."""
        return (self.image_features(images) * self.text_features_of(texts)).sum(dim=-1)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.logit_scale.exp() * self.similarities(images)
