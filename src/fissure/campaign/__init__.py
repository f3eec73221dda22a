"""Campaigns: models × attacks × prompts × seeds, run into one results store, resumable,
in this process or over a Ray cluster."""

from fissure.campaign.config import AttackSpec, CampaignConfig, load_campaign
from fissure.campaign.runner import CampaignOutcome, run_campaign

__all__ = ["AttackSpec", "CampaignConfig", "CampaignOutcome", "load_campaign", "run_campaign"]
