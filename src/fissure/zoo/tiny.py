"""Tiny random Stable Diffusion pipelines, built from configs without downloads.

They have the exact architecture classes of SD 1.x (epsilon prediction, PNDM)
and SD 2.x (v-prediction, DDIM, linear attention projections) at toy sizes, so
tests and the demo exercise the real loading and sampling code paths in seconds.
"""

from __future__ import annotations

from typing import Literal

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    PNDMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from tokenizers.pre_tokenizers import ByteLevel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

TinyKind = Literal["sd1", "sd2"]


def build_byte_tokenizer(model_max_length: int = 77) -> CLIPTokenizer:
    """A CLIP tokenizer with a byte-level vocabulary and no merges (one token per character)."""
    symbols = sorted(ByteLevel.alphabet())
    tokens = ["<|startoftext|>", "<|endoftext|>"] + symbols + [s + "</w>" for s in symbols]
    vocab = {token: index for index, token in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def build_tiny_pipeline(kind: TinyKind = "sd1", seed: int = 0) -> StableDiffusionPipeline:
    """A randomly initialised SD-shaped pipeline making 64×64 images from 32×32×4 latents."""
    if kind not in ("sd1", "sd2"):
        raise ValueError(f"kind must be 'sd1' or 'sd2', not {kind!r}")
    sd2 = kind == "sd2"
    torch.manual_seed(seed)
    tokenizer = build_byte_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            hidden_act="gelu" if sd2 else "quick_gelu",
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=(2, 4) if sd2 else 8,
        use_linear_projection=sd2,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        sample_size=64,
        norm_num_groups=32,
    )
    schedule = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    if sd2:
        scheduler = DDIMScheduler(
            **schedule,
            clip_sample=False,
            set_alpha_to_one=False,
            steps_offset=1,
            prediction_type="v_prediction",
        )
    else:
        scheduler = PNDMScheduler(**schedule, skip_prk_steps=True, steps_offset=1)
    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline
