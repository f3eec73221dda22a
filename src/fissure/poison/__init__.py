"""Poisoning, Alignment Difficulty and model implosion (Ding et al., CCS 2024)."""

from fissure.poison.alignment import alignment_difficulty

__all__ = ["alignment_difficulty"]
