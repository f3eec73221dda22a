"""The gates between emoji-sd's stages, measured on scenes no stage trains on.

1. CLIP: text→image retrieval top-1 with the class prompts ("a photo of a
   <class>") over galleries of single-object Noto scenes, one per class.
2. VAE: the held-out verifier judge must keep its accuracy on reconstructions
   (single objects and pairs alike); PSNR is reported beside it.
3. UNet: the quality bars of :mod:`fissure.zoo.emoji_sd.evaluate`, on fewer seeds.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from transformers import CLIPModel, CLIPTokenizer

from fissure.judges.base import Judge
from fissure.judges.pretrained import CLIP_MEAN, CLIP_STD, ClipJudge
from fissure.world import class_names
from fissure.zoo.judge_evaluation import judge_accuracy
from fissure.zoo.scene_bank import BankSpec, SceneBank

#: Scene seeds of the gates: above the judges' evaluation range, below nothing we train on.
GATE_SEED = 1_500_000_000


def gate_bank(
    count: int, n_objects: int, folder: Path, progress: bool = False, first_seed: int = GATE_SEED
) -> SceneBank:
    """``count`` held-out Noto scenes of ``n_objects`` distinct classes each; the gates' own
    unless ``first_seed`` says otherwise (the evaluation's CLIP bar has its own scenes)."""
    spec = BankSpec(
        first_seed=first_seed + n_objects * 10_000_000,
        count=count,
        object_counts=(n_objects,),
        emoji_sets=("noto",),
    )
    return SceneBank.cached(spec, folder, progress).where(n_objects=n_objects)


def clip_judge(clip: CLIPModel, tokenizer: CLIPTokenizer, labels: list[str] | None = None):
    """Our CLIP as a zero-shot judge over the class prompts."""
    judge = ClipJudge(
        clip, tokenizer, labels or class_names(), "a photo of a {}", mean=CLIP_MEAN, std=CLIP_STD
    )
    return judge.eval().requires_grad_(False)


@torch.no_grad()
def retrieval(similarities: torch.Tensor, labels: torch.Tensor, max_rounds: int = 20) -> dict:
    """Top-1 retrieval both ways from image×prompt ``similarities`` and image ``labels``.

    ``text_to_image``: galleries hold one image per class (round r takes each class's
    r-th image); a prompt scores when its nearest gallery image shows its class.
    ``image_to_text``: an image scores when its nearest prompt (of all) is its class.
    """
    image_to_text = (similarities.argmax(1) == labels).float().mean().item()
    by_class = [(labels == c).nonzero().flatten() for c in range(similarities.shape[1])]
    present = [c for c, rows in enumerate(by_class) if len(rows)]
    rounds = min(max_rounds, min(len(by_class[c]) for c in present))
    hits = total = 0
    for r in range(rounds):
        rows = torch.stack([by_class[c][r] for c in present])
        block = similarities[rows][:, present]  # gallery image × prompt
        hits += int((block.argmax(0) == torch.arange(len(present))).sum())
        total += len(present)
    return {
        "text_to_image_top1": hits / total,
        "image_to_text_top1": image_to_text,
        "classes": len(present),
        "rounds": rounds,
    }


@torch.no_grad()
def clip_retrieval_scores(
    judge: ClipJudge, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256
) -> dict:
    """:func:`retrieval` of images in ``[0, 1]`` under a CLIP judge."""
    similarities = torch.cat(
        [
            judge.similarities(images[start : start + batch_size])
            for start in range(0, len(images), batch_size)
        ]
    )
    return retrieval(similarities, labels)


def scene_retrieval_scores(judge: ClipJudge, bank: SceneBank) -> dict:
    """:func:`retrieval` over rendered single-object scenes, each labelled by its one class."""
    return clip_retrieval_scores(judge, bank.images.float() / 255, bank.targets.argmax(1))


def clip_gate(
    clip: CLIPModel, tokenizer: CLIPTokenizer, count: int, threshold: float, folder: Path
) -> tuple[dict, bool]:
    """Stage 1's gate on ``count`` held-out single-object scenes."""
    bank = gate_bank(count, 1, folder)
    device = next(clip.parameters()).device
    judge = clip_judge(clip.float().cpu(), tokenizer)
    scores = scene_retrieval_scores(judge, bank)
    clip.to(device)
    scores["threshold"] = threshold
    return scores, scores["text_to_image_top1"] >= threshold


@torch.no_grad()
def reconstruct(vae: AutoencoderKL, images: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Encode (posterior mean) and decode ``uint8`` images; returns ``uint8`` images."""
    device = next(vae.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        pixels = images[start : start + batch_size].to(device).float() / 127.5 - 1
        decoded = vae.decode(vae.encode(pixels).latent_dist.mean).sample
        out.append(((decoded.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu())
    return torch.cat(out)


def psnr(original: torch.Tensor, reconstructed: torch.Tensor) -> float:
    """Mean PSNR (dB) of ``uint8`` image pairs."""
    error = (original.float() / 255 - reconstructed.float() / 255).square().mean((1, 2, 3))
    return float((10 * torch.log10(1 / error.clamp(min=1e-10))).mean())


def vae_gate(
    vae: AutoencoderKL, verifier: Judge, count: int, threshold: float, folder: Path
) -> tuple[dict, bool]:
    """Stage 2's gate: the verifier's accuracy on reconstructions over that on originals."""
    scores: dict[str, float] = {}
    passed = True
    for n_objects, name in ((1, "single"), (2, "pairs")):
        bank = gate_bank(count, n_objects, folder)
        reconstructed = replace(bank, images=reconstruct(vae, bank.images))
        original = judge_accuracy(verifier, bank)
        recovered = judge_accuracy(verifier, reconstructed)
        retention = recovered / original if original > 0 else 0.0
        scores[f"{name}_original"] = original
        scores[f"{name}_reconstructed"] = recovered
        scores[f"{name}_retention"] = retention
        scores[f"{name}_psnr"] = psnr(bank.images, reconstructed.images)
        passed &= retention >= threshold
    scores["threshold"] = threshold
    return scores, passed
