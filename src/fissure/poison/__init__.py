"""Poisoning, Alignment Difficulty and model implosion (Ding et al., CCS 2024).

``concepts`` chooses pairs and pictures, ``pairs`` makes poison sets (dirty-label,
``nightshade``), ``finetune`` trains on them, ``measure`` reads the result, ``alignment``
is the AD metric, and ``sweep`` runs the whole curve against the number of poisoned
concepts.
"""

from fissure.poison.alignment import alignment_difficulty, calibrate_band, embed_pairs
from fissure.poison.finetune import FinetuneSettings, finetune_unet
from fissure.poison.pairs import PoisonSet, PoisonSettings, dirty_label, nightshade_poisons
from fissure.poison.sweep import SweepSettings, run_sweep

__all__ = [
    "FinetuneSettings",
    "PoisonSet",
    "PoisonSettings",
    "SweepSettings",
    "alignment_difficulty",
    "calibrate_band",
    "dirty_label",
    "embed_pairs",
    "finetune_unet",
    "nightshade_poisons",
    "run_sweep",
]
