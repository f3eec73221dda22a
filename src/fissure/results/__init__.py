"""The results store: campaigns, attempts, findings, tags, labels and metrics in one SQLite
file, images and tensors beside it by content hash. Attacks write through it; reports,
exports and the review page read only from it."""

from fissure.results.record import Finding, attempt_key
from fissure.results.store import AttackWriter, CampaignWriter, Failure, ResultsStore
from fissure.results.summary import Summary, summarize

__all__ = [
    "AttackWriter",
    "CampaignWriter",
    "Failure",
    "Finding",
    "ResultsStore",
    "Summary",
    "attempt_key",
    "summarize",
]
