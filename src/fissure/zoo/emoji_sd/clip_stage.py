"""Stage 1: a small CLIP, trained contrastively on captioned Noto scenes.

Its text tower becomes the pipeline's (frozen) text encoder, so the UNet is
conditioned on embeddings that already separate the classes from its first
step; its vision tower gives the VAE a perceptual loss and the UNet its REPA
targets; the pair is saved as a ``CLIPModel`` for CLIP scores and zero-shot judging.

Scenes with the same set of classes are positives of each other (a soft
target), so the many duplicate classes in a batch of 128 are not pushed apart.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
    CLIPVisionConfig,
)

from fissure.judges.pretrained import CLIP_MEAN, CLIP_STD
from fissure.world import classes
from fissure.zoo.emoji_sd.common import LOG_EVERY, optimizer_groups
from fissure.zoo.emoji_sd.config import ClipStage
from fissure.zoo.scene_bank import SceneBank
from fissure.zoo.training_loop import Schedule, step_generator, train

CLASS_PROMPT = "a photo of a {}"
MAX_LOGIT_SCALE = 100.0


def build_clip(stage: ClipStage, tokenizer: CLIPTokenizer) -> CLIPModel:
    """A randomly initialised CLIP of ``stage``'s sizes over ``tokenizer``'s vocabulary."""
    text = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=stage.text_hidden,
        intermediate_size=4 * stage.text_hidden,
        num_attention_heads=stage.text_heads,
        num_hidden_layers=stage.text_layers,
        max_position_embeddings=tokenizer.model_max_length,
        hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        projection_dim=stage.projection_dim,
    )
    vision = CLIPVisionConfig(
        image_size=64,
        patch_size=stage.patch_size,
        hidden_size=stage.vision_hidden,
        intermediate_size=4 * stage.vision_hidden,
        num_attention_heads=stage.vision_heads,
        num_hidden_layers=stage.vision_layers,
        hidden_act="quick_gelu",
        projection_dim=stage.projection_dim,
    )
    config = CLIPConfig(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        projection_dim=stage.projection_dim,
    )
    return CLIPModel(config)


def text_encoder_from_clip(clip: CLIPModel) -> CLIPTextModel:
    """The text tower as the ``CLIPTextModel`` a Stable Diffusion pipeline loads."""
    encoder = clip.text_model  # transformers 5: CLIPModel holds a CLIPTextModel
    if not isinstance(encoder, CLIPTextModel):  # earlier layouts held the bare transformer
        encoder = CLIPTextModel(clip.config.text_config)
        encoder.text_model.load_state_dict(clip.text_model.state_dict())
        return encoder.eval()
    return copy.deepcopy(encoder).eval()


def widen_context(
    tokenizer: CLIPTokenizer, clip: CLIPModel, length: int
) -> tuple[CLIPTokenizer, CLIPModel]:
    """Copies of ``tokenizer`` and ``clip`` that read ``length`` tokens (SD pipelines: 77).

    The new positions' embeddings copy the last trained one. Attention in the text
    tower is causal, so every output of a prompt that fitted before is unchanged,
    and with it CLIP's pooled features and scores; only the padding grows.
    """
    trained = clip.config.text_config.max_position_embeddings
    if length < trained:
        raise ValueError(f"cannot narrow the text tower from {trained} to {length} tokens")
    if length == trained:
        return tokenizer, clip
    tokenizer, clip = copy.deepcopy(tokenizer), copy.deepcopy(clip)
    tokenizer.model_max_length = length
    tokenizer.init_kwargs["model_max_length"] = length
    embeddings = clip.text_model.embeddings
    old = embeddings.position_embedding.weight.detach()
    rows = torch.cat([old, old[-1:].expand(length - trained, -1)])
    embeddings.position_embedding = torch.nn.Embedding.from_pretrained(rows, freeze=False)
    embeddings.register_buffer("position_ids", torch.arange(length)[None], persistent=False)
    clip.config.text_config.max_position_embeddings = length
    clip.text_model.config.max_position_embeddings = length  # the same object in transformers 5
    return tokenizer, clip


def image_processor() -> CLIPImageProcessor:
    """The preprocessing our CLIP was trained with (64×64, CLIP's mean and std)."""
    return CLIPImageProcessor(
        size={"shortest_edge": 64},
        crop_size={"height": 64, "width": 64},
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )


def clip_pixels(images: torch.Tensor) -> torch.Tensor:
    """CLIP's normalisation of ``B×3×64×64`` images in ``[0, 1]``, differentiably."""
    mean = images.new_tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(CLIP_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def class_prompts(names: list[str]) -> list[str]:
    return [CLASS_PROMPT.format(name) for name in names]


class ClipBatches:
    """Each step's captions and images: a pure function of (seed, step)."""

    def __init__(self, stage: ClipStage, bank: SceneBank, tokenizer: CLIPTokenizer) -> None:
        self.stage = stage
        self.bank = bank
        self.tokenizer = tokenizer
        self.terms = [emoji_class.terms for emoji_class in classes()]
        self.single = bank.object_counts == 1
        self.first_class = bank.targets.argmax(1)

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token ids (padded to the longest), pixels in ``[0, 1]``, and B×B positives."""
        generator = step_generator(self.stage.seed, step)
        indices = torch.randint(len(self.bank), (self.stage.batch_size,), generator=generator)
        swap = torch.rand(self.stage.batch_size, generator=generator)
        picks = torch.rand(self.stage.batch_size, generator=generator)
        captions = []
        for index, u, pick in zip(indices.tolist(), swap.tolist(), picks.tolist(), strict=True):
            if self.single[index] and u < self.stage.class_prompt_share:
                terms = self.terms[int(self.first_class[index])]
                captions.append(CLASS_PROMPT.format(terms[int(pick * len(terms))]))
            else:
                captions.append(self.bank.captions[index])
        ids = self.tokenizer(
            captions, padding="longest", truncation=True, return_tensors="pt"
        ).input_ids
        targets = self.bank.targets[indices]
        positives = (targets.unsqueeze(1) == targets.unsqueeze(0)).all(-1).float()
        return ids, self.bank.images[indices].float() / 255, positives


def contrastive_loss(
    clip: CLIPModel, ids: torch.Tensor, pixels: torch.Tensor, positives: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE with every same-label pair as a positive (soft targets)."""
    text = F.normalize(clip.get_text_features(input_ids=ids).pooler_output, dim=-1)
    image = F.normalize(
        clip.get_image_features(pixel_values=clip_pixels(pixels)).pooler_output, dim=-1
    )
    scale = clip.logit_scale.clamp(max=torch.log(torch.tensor(MAX_LOGIT_SCALE))).exp()
    logits = scale * text @ image.T
    targets = positives / positives.sum(1, keepdim=True)
    text_loss = -(targets * logits.log_softmax(1)).sum(1).mean()
    image_loss = -(targets.T * logits.T.log_softmax(1)).sum(1).mean()
    return (text_loss + image_loss) / 2


def train_clip(
    stage: ClipStage,
    bank: SceneBank,
    tokenizer: CLIPTokenizer,
    folder: Path,
    device: torch.device,
    progress: bool = True,
    checkpoint_seconds: float = 120.0,
    deadline: float | None = None,
) -> tuple[CLIPModel, int, float]:
    """Train (or resume) the CLIP pair; returns it in eval mode, the step and seconds."""
    torch.manual_seed(stage.seed)
    clip = build_clip(stage, tokenizer).to(device)
    optimizer = torch.optim.AdamW(
        optimizer_groups(clip, stage.weight_decay), lr=stage.learning_rate, betas=(0.9, 0.98)
    )
    batches = ClipBatches(stage, bank, tokenizer)

    def step_loss(step: int) -> torch.Tensor:
        ids, pixels, positives = batches(step)
        return contrastive_loss(clip, ids.to(device), pixels.to(device), positives.to(device))

    step, seconds = train(
        {"clip": clip},
        optimizer,
        step_loss,
        Schedule(stage.learning_rate, stage.steps, stage.warmup_steps),
        folder,
        "emoji-sd 1/3 CLIP",
        progress,
        checkpoint_seconds,
        max_grad_norm=stage.max_grad_norm,
        log_every=LOG_EVERY,
        deadline=deadline,
    )
    return clip.eval(), step, seconds
