"""Load a Stable Diffusion pipeline by name, local folder or hub id.

Every command goes through :func:`load_pipeline`, so the rules for devices,
precision and bad input live in one place. Errors a user can fix raise
:class:`~fissure.errors.FissureError` with a one-line message.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import torch
from diffusers import DiffusionPipeline, StableDiffusionPipeline
from diffusers.utils import is_accelerate_available

from fissure.errors import FissureError, first_line
from fissure.hub import hub_offline
from fissure.zoo import BUNDLED_LANGUAGE_MODELS, BUNDLED_MODELS, bundled_model_path

#: Pipelines whose components (tokenizer, CLIP text encoder, VAE, conditional
#: UNet, scheduler) are those of Stable Diffusion 1.x / 2.x.
SD_PIPELINE_CLASSES = frozenset(
    {
        "StableDiffusionPipeline",
        "StableDiffusionImg2ImgPipeline",
        "StableDiffusionInpaintPipeline",
    }
)
SD_COMPONENTS = ("tokenizer", "text_encoder", "vae", "unet", "scheduler")

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The torch device to run on; a missing one is a one-line error here, not a traceback later."""
    if device is None:
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise FissureError(f"unknown device {device!r}: use cpu, cuda, cuda:N or mps") from error
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise FissureError(f"unsupported device {device!r}: use cpu, cuda, cuda:N or mps")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise FissureError(
            f"device {device!r} asked for, but PyTorch sees no GPU: use --device cpu"
        )
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise FissureError(
            f"device {device!r} asked for, but PyTorch sees only GPUs "
            f"0..{torch.cuda.device_count() - 1}: use cuda:0 or cpu"
        )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise FissureError(
            f"device {device!r} asked for, but PyTorch has no MPS backend here: use --device cpu"
        )
    return resolved


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 kernels natively (elsewhere autocast would be slower)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """float32 by default; float16 on a GPU only; bfloat16 anywhere (fast where native)."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise FissureError(f"unknown dtype {dtype!r}: use float32, float16 or bfloat16")
        dtype = DTYPES[dtype]
    if dtype == torch.float16 and device.type == "cpu":
        raise FissureError(
            "float16 is not supported on the CPU: use float32 there, or --device cuda"
        )
    return dtype


def _looks_like_path(model: str) -> bool:
    """Hub ids are `name` or `owner/name`; anything else is meant as a path."""
    return (
        model.startswith((".", "/", "~"))
        or model.count("/") > 1
        or "\\" in model
        or os.path.exists(model)
    )


def _check_pipeline_folder(folder: Path) -> None:
    """Refuse folders that are not diffusers Stable Diffusion pipelines, before loading."""
    if not folder.exists():
        raise FissureError(f"no such model folder: {folder}")
    if folder.is_file():
        raise FissureError(
            f"{folder} is a file; give a diffusers pipeline folder (one with model_index.json)"
        )
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise FissureError(
            f"{folder} is not a diffusers pipeline folder (no model_index.json); "
            "save one with pipeline.save_pretrained(folder)"
        )
    try:
        index = json.loads(index_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FissureError(
            f"{index_file} is not valid JSON ({error}); re-save the pipeline"
        ) from error
    _check_pipeline_index(index, str(folder))
    absent = [name for name in SD_COMPONENTS if not (folder / name).is_dir()]
    if absent:
        raise FissureError(
            f"{folder} lacks the component folders its model_index.json names: "
            f"{', '.join(absent)}; copy them from where the pipeline came or re-save it"
        )


def _check_pipeline_index(index: dict, where: str) -> None:
    """Refuse a model_index.json of another pipeline class, before any weights are read."""
    if not isinstance(index, dict):
        raise FissureError(f"{where}'s model_index.json is no JSON object; re-save the pipeline")
    class_name = index.get("_class_name")
    if class_name not in SD_PIPELINE_CLASSES:
        held = f"holds a {class_name}" if class_name else "names no pipeline class (_class_name)"
        raise FissureError(f"{where} {held}, not a Stable Diffusion 1.x/2.x pipeline")
    missing = [
        name
        for name in SD_COMPONENTS  # each ["library", "ClassName"]
        if not isinstance(index.get(name), list) or len(index[name]) != 2 or None in index[name]
    ]
    if missing:
        raise FissureError(f"{where} lacks pipeline components: {', '.join(missing)}")


def _load_error(source: str, error: Exception) -> FissureError:
    """One line for whatever diffusers or the hub raised (they raise many types)."""
    where = "the local cache or the hub" if not Path(source).exists() else source
    close = difflib.get_close_matches(source, BUNDLED_MODELS, n=1, cutoff=0.75)
    hint = f"did you mean {close[0]}?" if close else "check the path or id, or re-save the weights"
    return FissureError(
        f"could not load a Stable Diffusion pipeline {source!r} from {where} "
        f"({first_line(error)}); {hint}"
    )


def _check_hub_pipeline(model_id: str, local_files_only: bool) -> None:
    """Refuse a hub id of another pipeline class from its model_index.json alone.

    StableDiffusionPipeline.from_pretrained loads an SDXL checkpoint with only a
    warning, after downloading all of its weights.
    """
    try:
        index = DiffusionPipeline.load_config(model_id, local_files_only=local_files_only)
    except Exception as error:  # the hub client raises many types for missing or offline files
        raise _load_error(model_id, error) from error
    _check_pipeline_index(index, model_id)


def _check_components(pipeline: StableDiffusionPipeline, model: str) -> None:
    """Refuse UNets that a Stable Diffusion 1.x/2.x pipeline class loads but cannot drive."""
    unet = pipeline.unet.config
    latent_channels = pipeline.vae.config.latent_channels
    if unet.in_channels != latent_channels:
        raise FissureError(
            f"{model}'s UNet takes {unet.in_channels} input channels, not the VAE's "
            f"{latent_channels} (an inpainting or otherwise conditioned UNet): "
            "give a text-to-image checkpoint"
        )
    if unet.get("addition_embed_type") or unet.get("time_cond_proj_dim"):
        raise FissureError(
            f"{model}'s UNet takes extra conditioning (addition_embed_type or "
            "time_cond_proj_dim, as SDXL and LCM UNets do): give a Stable Diffusion 1.x/2.x model"
        )
    hidden_size = pipeline.text_encoder.config.hidden_size
    if unet.cross_attention_dim != hidden_size:
        raise FissureError(
            f"{model}'s UNet attends to {unet.cross_attention_dim}-wide text states, but its "
            f"text encoder makes {hidden_size}-wide ones: the components do not belong together"
        )


def resolve_model_source(model: str) -> str:
    """Turn a model name into what ``from_pretrained`` takes: a folder or a hub id."""
    if not model or not model.strip():
        raise FissureError("empty model name: give emoji-sd, a local folder or a hub id")
    if model in BUNDLED_MODELS:
        return str(bundled_model_path(model))
    if model in BUNDLED_LANGUAGE_MODELS:
        raise FissureError(f"{model} is a language model, not a Stable Diffusion pipeline")
    if _looks_like_path(model):
        folder = Path(model).expanduser()
        _check_pipeline_folder(folder)
        return str(folder)
    return model


def model_label(model: str) -> str:
    """How records name ``model`` so that it loads the same model again from anywhere: a
    bundled name as it is, a folder by its absolute path, a hub id as it is (the order
    :func:`resolve_model_source` tries them in)."""
    if model in BUNDLED_MODELS or not _looks_like_path(model):
        return model
    return str(Path(model).expanduser().resolve())


def load_pipeline(
    model: str = "emoji-sd",
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    local_files_only: bool | None = None,
) -> StableDiffusionPipeline:
    """Load a Stable Diffusion 1.x/2.x pipeline, ready to run.

    ``model`` is ``"emoji-sd"`` (the bundled model), a local diffusers folder, or
    a Hugging Face hub id. ``local_files_only`` defaults to the ``HF_HUB_OFFLINE``
    environment variable, so offline machines never try the network.
    """
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    source = resolve_model_source(model)
    if local_files_only is None:
        local_files_only = hub_offline()
    if not Path(source).exists():
        _check_hub_pipeline(source, local_files_only)
    try:
        pipeline = StableDiffusionPipeline.from_pretrained(
            source,
            dtype=torch_dtype,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
            local_files_only=local_files_only,
            low_cpu_mem_usage=is_accelerate_available(),  # else diffusers warns to install it
        )
    except FissureError:
        raise
    except Exception as error:  # diffusers raises many types for unreadable weights
        raise _load_error(source, error) from error
    _check_components(pipeline, model)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(torch_device)
