"""Alignment Difficulty (AD), as "Understanding Implosion in Text-to-Image Generative Models"
(Ding et al., CCS 2024, arXiv 2409.12314) defines it and its ``compute_AD.py`` computes it.

For n image–text pairs with L2-normalised CLIP embeddings, each pair's feature alignment is
``s_i = clip((cos(img_i, txt_i) − a) · b, 0, 1)``; the feature term is the mean
misalignment ``D_fea = mean(1 − s_i)``; the structure term compares how the images and the
texts relate among themselves, ``D_stru = (2 / n²) Σ_{i<j} |cos(img_i, img_j) − cos(txt_i,
txt_j)|``; and ``AD = α · D_fea + (1 − α) · D_stru``. Poisoned pairs (captions of A with
images of B) raise both terms: the paper's Theorem 4.2 is that AD grows with the number of
poisoned concepts. Unlike the released script, this is deterministic (no random crop of
the images: embed them as you like beforehand) and vectorised (no O(n²) Python loop).
"""

from __future__ import annotations

import torch

from fissure.errors import FissureError


def alignment_difficulty(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    a: float = 0.2,
    b: float = 4.0,
    alpha: float = 0.8,
) -> float:
    """AD of n pairs given as n×d image and text embeddings, paired by row (normalised here).

    ``a`` and ``b`` place the band of image–text cosines that counts as partly aligned: a
    pair at or below ``a`` is wholly misaligned, one at or above ``a + 1/b`` wholly aligned
    (the paper's values suit its CLIP; another CLIP model needs its own band).
    """
    if image_embeds.ndim != 2 or image_embeds.shape != text_embeds.shape:
        raise FissureError(
            "alignment_difficulty takes n×d image and text embeddings of one shape, paired by "
            f"row: got {tuple(image_embeds.shape)} and {tuple(text_embeds.shape)}"
        )
    count = image_embeds.shape[0]
    if count < 2:
        raise FissureError("alignment_difficulty needs at least 2 pairs to compare structure")
    images = torch.nn.functional.normalize(image_embeds.double(), dim=-1)
    texts = torch.nn.functional.normalize(text_embeds.double(), dim=-1)
    aligned = (((images * texts).sum(dim=-1) - a) * b).clamp(0, 1)
    feature = (1 - aligned).mean()
    gap = (images @ images.T - texts @ texts.T).abs()
    structure = 2 / count**2 * gap.triu(diagonal=1).sum()
    return float(alpha * feature + (1 - alpha) * structure)


@torch.no_grad()
def embed_pairs(clip, images: torch.Tensor, captions: list[str], batch_size: int = 256):
    """CLIP image and text embeddings (normalised, n×d each) of n image–caption pairs
    (``images`` N×3×H×W uint8), for :func:`alignment_difficulty`. ``clip``: a ClipJudge."""
    image_embeds, text_embeds = [], []
    for start in range(0, len(images), batch_size):
        stop = start + batch_size
        image_embeds.append(clip.image_features(images[start:stop].float() / 255).cpu())
        text_embeds.append(clip.text_features_of(captions[start:stop]).cpu())
    return torch.cat(image_embeds), torch.cat(text_embeds)


def calibrate_band(image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> tuple[float, float]:
    """``a`` and ``b`` for a CLIP model other than the paper's, from clean pairs.

    The paper's band (a = 0.2, b = 4: cosines from 0.2 to 0.45) runs, for its CLIP, from
    between mismatched and matched pairs to the top of matched ones. The same placement
    here: ``a`` halfway between the median cosine of mismatched pairs (each image with the
    next pair's text) and that of matched pairs, ``a + 1/b`` at the matched pairs' 95th
    percentile.
    """
    images = torch.nn.functional.normalize(image_embeds.double(), dim=-1)
    texts = torch.nn.functional.normalize(text_embeds.double(), dim=-1)
    matched = (images * texts).sum(dim=-1)
    mismatched = (images * texts.roll(1, dims=0)).sum(dim=-1)
    a = float((matched.median() + mismatched.median()) / 2)
    top = float(matched.quantile(0.95))
    if top <= a:
        raise FissureError("matched pairs score no higher than mismatched ones: not a CLIP model")
    return a, 1 / (top - a)
