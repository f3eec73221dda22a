"""Run a campaign into a results store: in this process, or over a Ray cluster.

Every (model, attack) is bound to its settings in the store first, then only the
attempts the store lacks are attacked; each finding is one transaction. Kill the run at
any moment and run it again: it ends with exactly the findings of an uninterrupted run.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from fissure.attacks import Attempt
from fissure.campaign.config import CampaignConfig
from fissure.campaign.worker import CampaignWorker
from fissure.errors import FissureError
from fissure.models.loading import model_label
from fissure.results import Failure, Finding, ResultsStore

BACKENDS = ("local", "ray")


PlanHook = Callable[[list[Attempt], int], None]
"""Told each (model, attack)'s attempts and how many are already done, before it runs."""


@dataclass
class CampaignOutcome:
    """After a run: the findings of the attempts this config asks for (``current``), and
    the campaign's findings and failed attempts in the store (earlier configs' too)."""

    store: Path
    current: list[Finding]
    findings: list[Finding]
    failures: list[Failure]


def run_campaign(
    config: CampaignConfig,
    store: str | Path,
    backend: str = "local",
    address: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    on_plan: PlanHook | None = None,
) -> CampaignOutcome:
    """Attack every item of ``config`` not yet in the store at ``store``.

    ``backend``: ``local`` (one worker in this process) or ``ray`` (``workers`` actors on
    the cluster at ``address``, or on a local one; each actor keeps a model loaded, and
    this process alone writes the store). ``threads``: torch threads per worker.
    """
    if backend not in BACKENDS:
        raise FissureError(f"unknown backend {backend!r}: use local or ray")
    if backend == "local" and (address is not None or workers is not None):
        raise FissureError("--address and --workers are for --backend ray")
    pool = None
    if backend == "ray":
        from fissure.campaign.ray_backend import RayPool

        pool = RayPool.start(address, workers, threads, config.device)
    elif threads is not None:
        import torch

        torch.set_num_threads(threads)
    try:
        with ExitStack() as opened:
            campaign = results = None
            current = []
            for model in config.models:
                label = model_label(model)
                worker = pool.load(config, model) if pool else CampaignWorker(config, model)
                plan = worker.plan()
                if plan.refused and not plan.attempts:  # nothing left to attack: say why
                    raise FissureError(plan.refused[0][1])
                if campaign is None:  # opened once the first model's inputs are known good
                    results = opened.enter_context(ResultsStore(store))
                    campaign = opened.enter_context(results.campaign(config.name, config.to_dict()))
                writers = [
                    campaign.attack(label, spec.label, worker.settings(spec))
                    for spec in config.attacks
                ]  # every binding checked before any compute
                items = [attempt for attempt, _ in plan.refused] + plan.attempts
                campaign.plan(label, [w.key(item) for w in writers for item in items])
                for spec, writer in zip(config.attacks, writers, strict=True):
                    for attempt, error in plan.refused:
                        writer.fail(attempt, error)
                    if on_plan is not None:
                        on_plan(plan.attempts, sum(map(writer.has, plan.attempts)))
                    worker.run(spec, plan.attempts, writer, progress)
                    wanted = {writer.key(attempt) for attempt in plan.attempts}
                    current += [f for f in writer.findings() if f.id in wanted]
            return CampaignOutcome(
                results.folder,
                current,
                results.findings(config.name),
                results.failures(config.name),
            )
    finally:
        if pool is not None:
            pool.shutdown()
