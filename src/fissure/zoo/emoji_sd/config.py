"""Everything that decides emoji-sd's weights: one frozen dataclass per stage.

:func:`default_config` is the recipe that ships; :func:`tiny_config` has the
same structure at toy sizes so tests run every stage end to end in seconds.
A stage's :meth:`fingerprint` covers its own settings and those of the stages it
builds on, so a resume point made by another recipe is refused, not silently mixed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fissure.atomic import write_json
from fissure.zoo.scene_bank import BankSpec


@dataclass(frozen=True)
class DataConfig:
    """The training scenes (Noto only: the generator's emoji set) and the tokenizer (stage 0)."""

    first_seed: int = 20_000_000  # far from the judges' (0…, 5,000,000…) and evaluation seeds
    count: int = 60_000
    object_counts: tuple[int, ...] = (1, 1, 2, 2, 3)
    tokenizer_captions: int = 50_000
    vocab_size: int = 6000
    max_length: int = 32
    """Tokens CLIP trains on (captions are ≤ 30); the pipeline's prompts: ``unet.context_length``."""

    def bank_spec(self) -> BankSpec:
        return BankSpec(self.first_seed, self.count, self.object_counts, emoji_sets=("noto",))


@dataclass(frozen=True)
class ClipStage:
    """Stage 1: a CLIP text tower (the pipeline's text encoder) and vision tower, contrastive."""

    text_hidden: int = 256
    text_layers: int = 4
    text_heads: int = 4
    vision_hidden: int = 192
    vision_layers: int = 4
    vision_heads: int = 4
    patch_size: int = 8
    projection_dim: int = 128
    batch_size: int = 128
    steps: int = 2000
    learning_rate: float = 1e-3
    warmup_steps: int = 200
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0
    class_prompt_share: float = 0.2
    """Share of single-object scenes whose caption is replaced by "a photo of a <term>"."""
    seed: int = 1
    gate_scenes: int = 3000
    gate_top1: float = 0.70


@dataclass(frozen=True)
class VaeStage:
    """Stage 2: an AutoencoderKL 64×64×3 ↔ 16×16×``latent_channels``."""

    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    latent_channels: int = 8
    norm_num_groups: int = 32
    batch_size: int = 32
    steps: int = 6000
    learning_rate: float = 1e-3
    warmup_steps: int = 200
    max_grad_norm: float = 1.0
    l1_weight: float = 1.0
    mse_weight: float = 1.0
    perceptual_weight: float = 0.1
    """Weight of the feature loss in the frozen CLIP vision tower of stage 1 (0: off)."""
    kl_weight: float = 1e-6
    judge_weight: float = 0.0
    """Weight of KL(judge(original) ‖ judge(reconstruction)) under a frozen surrogate judge."""
    judge: str = "emoji/resnet"
    """That judge: a surrogate member, never the verifier that gates this stage."""
    seed: int = 2
    gate_scenes: int = 500
    gate_retention: float = 0.97
    """Stage 2's gate, measured on the autoencoder as stage 2b leaves it."""


@dataclass(frozen=True)
class DecoderStage:
    """Stage 2b: the VAE's decoder fine-tuned on its frozen encoder, for what judges see.

    Stable Diffusion's improved decoders (ft-MSE, ft-EMA) were made this way: the
    latent space, and so the UNet's training data, stays as stage 2 left it, and
    only the decoding sharpens. Stage 2's pixel and feature losses are kept, and
    the KL of a frozen surrogate judge from original to reconstruction is added:
    the small objects of two-object scenes are what a plain reconstruction loss
    lets blur away first.
    """

    steps: int = 1500
    learning_rate: float = 1e-4
    warmup_steps: int = 50
    batch_size: int = 32
    judge_weight: float = 0.2
    judge: str = "emoji/resnet"
    """A surrogate member, never the verifier that gates stage 2."""
    extra_layers: int = 0
    """Resnets added to every block first, as the identity: a deeper decoder, same latents."""
    seed: int = 4


@dataclass(frozen=True)
class UnetStage:
    """Stage 3: a UNet2DConditionModel on the frozen text encoder's last hidden states."""

    block_out_channels: tuple[int, ...] = (48, 96, 192)
    layers_per_block: int = 2
    attention_levels: tuple[int, ...] | None = (1,)
    """Resolutions with cross-attention, 0 the finest; None: all but the coarsest."""
    attention_heads: int = 4
    norm_num_groups: int = 16
    context_length: int | None = 77
    """Tokens the UNet's prompts are padded to (SD's 77); the text encoder's positions
    beyond ``data.max_length`` copy its last one. None: ``data.max_length``."""
    batch_size: int = 64
    steps: int = 40_000
    learning_rate: float = 1e-3
    warmup_steps: int = 500
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    caption_dropout: float = 0.1
    min_snr_gamma: float | None = 5.0
    """min-SNR-γ loss weighting (arXiv 2303.09556); None: plain ε-MSE."""
    repa_weight: float = 0.5
    """REPA (arXiv 2410.06940): weight of aligning the mid block to CLIP vision patches (0: off)."""
    repa_hidden: int = 256
    ema_decay: float = 0.999
    seed: int = 3
    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    gate_seeds: int = 4
    gate_pairs: int = 100
    gate_steps: int = 25
    gate_guidance: float = 7.5


#: The settings each stage's weights depend on. The UNet learns from the encoder's
#: latents, so the decoder's fine-tuning (stage 2b) leaves it untouched.
INPUTS = {
    "data": ("data",),
    "clip": ("data", "clip"),
    "vae": ("data", "clip", "vae"),
    "decoder": ("data", "clip", "vae", "decoder"),
    "unet": ("data", "clip", "vae", "unet"),
}

GATE_READS = {"clip": ("clip",), "vae": (), "decoder": ("vae",), "unet": ("unet", "clip")}
"""Whose ``gate_*`` settings each stage's gate reads (stage 2's gate runs after the decoder)."""

CONFIG_FILE = "config.json"
"""Where a work folder (or a calibration variant's folder) keeps its recipe."""

#: Settings added after weights were trained with the recipe: at these values they
#: change nothing, so they leave the fingerprints (and resume points) as they were.
LATER_SETTINGS = {
    "decoder": {"extra_layers": 0},
    "unet": {"attention_levels": None, "context_length": None},
}


@dataclass(frozen=True)
class EmojiSdConfig:
    """The whole recipe; stages are trained in this order, each gated before the next."""

    data: DataConfig = field(default_factory=DataConfig)
    clip: ClipStage = field(default_factory=ClipStage)
    vae: VaeStage = field(default_factory=VaeStage)
    decoder: DecoderStage = field(default_factory=DecoderStage)
    unet: UnetStage = field(default_factory=UnetStage)
    name: str = "emoji-sd"

    def fingerprint(self, stage: str) -> str:
        """A hash of ``stage``'s settings and those of the stages whose weights feed it."""
        parts = {name: asdict(getattr(self, name)) for name in INPUTS[stage]}
        # Gates and step counts decide what is trained, not what a weight means: a
        # resume point stays usable when a stage is given more steps.
        for name, settings in parts.items():
            for key in [k for k in settings if k.startswith("gate_") or k == "steps"]:
                del settings[key]
            for key, neutral in LATER_SETTINGS.get(name, {}).items():
                if settings[key] == neutral:
                    del settings[key]
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]

    def prompt_length(self) -> int:
        """Tokens the pipeline pads prompts to: ``unet.context_length`` or ``data.max_length``."""
        return self.unet.context_length or self.data.max_length

    def gate_settings(self, stage: str) -> dict[str, Any]:
        """The settings ``stage``'s gate is measured with: a saved gate holds for these only."""
        return {
            f"{owner}.{key}": value
            for owner in GATE_READS[stage]
            for key, value in asdict(getattr(self, owner)).items()
            if key.startswith("gate_")
        }

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, folder: Path) -> None:
        """Write the recipe as ``folder/config.json`` (a work folder's, or a variant's).

        Atomically: every training process rewrites its work folder's recipe while a
        snapshot (``--snapshot``) may be reading it.
        """
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / CONFIG_FILE, self.to_dict())

    @classmethod
    def load(cls, folder: Path) -> EmojiSdConfig:
        return cls.from_dict(json.loads((folder / CONFIG_FILE).read_text()))

    @classmethod
    def read(cls, path: Path) -> EmojiSdConfig:
        """A recipe a user gives: a JSON file, or a folder holding one as ``config.json``."""
        from fissure.errors import FissureError

        file = path / CONFIG_FILE if path.is_dir() else path
        hint = "give a JSON file written like a work folder's config.json"
        if not file.is_file():
            raise FissureError(f"no recipe at {file}: {hint}")
        try:
            return cls.from_dict(json.loads(file.read_text()))
        except (ValueError, KeyError, TypeError) as error:
            raise FissureError(f"{file} is not an emoji-sd recipe ({error}): {hint}") from None

    @classmethod
    def from_dict(cls, values: dict) -> EmojiSdConfig:
        """The recipe a dict holds; a later setting it lacks was written before that
        setting existed, so it takes the setting's neutral value, not today's default."""

        def build(kind, stage: str, settings: dict):
            settings = {**LATER_SETTINGS.get(stage, {}), **settings}
            return kind(
                **{
                    key: tuple(value) if isinstance(value, list) else value
                    for key, value in settings.items()
                }
            )

        return cls(
            data=build(DataConfig, "data", values["data"]),
            clip=build(ClipStage, "clip", values["clip"]),
            vae=build(VaeStage, "vae", values["vae"]),
            decoder=build(DecoderStage, "decoder", values.get("decoder", {})),
            unet=build(UnetStage, "unet", values["unet"]),
            name=values.get("name", "emoji-sd"),
        )


def default_config() -> EmojiSdConfig:
    """The recipe of the bundled model."""
    return EmojiSdConfig()


def tiny_config() -> EmojiSdConfig:
    """The same recipe at toy sizes: every stage runs a few steps in seconds (tests)."""
    return EmojiSdConfig(
        data=DataConfig(
            first_seed=777_000, count=40, tokenizer_captions=200, vocab_size=600, max_length=16
        ),
        clip=ClipStage(
            text_hidden=32,
            text_layers=1,
            text_heads=2,
            vision_hidden=32,
            vision_layers=1,
            vision_heads=2,
            patch_size=16,
            projection_dim=16,
            batch_size=8,
            steps=3,
            warmup_steps=1,
            gate_scenes=40,
        ),
        vae=VaeStage(
            block_out_channels=(8, 8, 16),
            norm_num_groups=8,
            batch_size=4,
            steps=3,
            warmup_steps=1,
            gate_scenes=8,
        ),
        decoder=DecoderStage(steps=2, warmup_steps=1, batch_size=4),
        unet=UnetStage(
            block_out_channels=(16, 16, 32),
            layers_per_block=1,
            attention_heads=2,
            norm_num_groups=8,
            context_length=24,
            batch_size=4,
            steps=4,
            warmup_steps=1,
            repa_hidden=16,
            gate_seeds=1,
            gate_pairs=2,
            gate_steps=2,
        ),
        name="emoji-sd-tiny",
    )


def with_steps(config: EmojiSdConfig, **steps: int) -> EmojiSdConfig:
    """A copy of ``config`` with other step counts, e.g. ``with_steps(c, clip=500)``."""
    return dataclasses.replace(
        config,
        **{
            stage: dataclasses.replace(getattr(config, stage), steps=count)
            for stage, count in steps.items()
        },
    )
