"""The Ray backend: actors that keep a model loaded and attack shares of a campaign; the
driver alone writes the store.

Work goes out in chunks of one to four batches, each to the next idle actor, and every
chunk's findings are written as it comes back: a killed driver loses only the chunks in
flight, and the actors die with it. Actors ask for a GPU each when the campaign's device
is CUDA.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from tqdm.auto import tqdm

from fissure.attacks import Attempt
from fissure.campaign.config import AttackSpec, CampaignConfig
from fissure.campaign.worker import CampaignWorker, Collector, Plan
from fissure.errors import FissureError, error_line

#: No usage reports, no auth token written to ~/.ray, no autoscaler chatter (Ray 2.60).
QUIET = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "RAY_SCHEDULER_EVENTS": "0"}
INSTALL = "the ray backend needs Ray: pip install 'fissure[ray]' (or use --backend local)"


def _ray():
    try:
        import ray
    except ImportError:
        raise FissureError(INSTALL) from None
    return ray


def connect(address: str | None = None, cpus: int | None = None) -> None:
    """Join the Ray cluster at ``address``, or start a local one (of ``cpus`` CPUs), quietly."""
    ray = _ray()
    for name, value in QUIET.items():
        os.environ.setdefault(name, value)
    local = {"object_store_memory": 256 * 1024**2, "num_cpus": cpus} if address is None else {}
    ray.init(
        address=address,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="error",
        **local,
    )


class _Actor:
    """A :class:`CampaignWorker` in a Ray actor process.

    A worker that cannot load (a bad model path, a missing judge) keeps its error and
    raises it from each call, where Ray hands the driver the error itself rather than an
    "actor died" traceback.
    """

    def __init__(self, config: CampaignConfig, model: str, threads: int | None) -> None:
        import fissure.console  # noqa: F401  (library chatter off before transformers loads)

        self.campaign, self.failed = config.name, None
        try:
            self.worker = CampaignWorker(config, model, threads)
        except FissureError as error:
            self.failed = error

    def _loaded(self) -> CampaignWorker:
        if self.failed is not None:
            raise self.failed
        return self.worker

    def plan(self) -> Plan:
        return self._loaded().plan()

    def settings(self, spec: AttackSpec) -> dict[str, object]:
        return self._loaded().settings(spec)

    def run(self, spec: AttackSpec, attempts: list[Attempt]) -> Collector:
        worker = self._loaded()
        collector = Collector(self.campaign, worker.model, spec.label)
        worker.run(spec, attempts, collector, progress=False)
        return collector


class RayPool:
    """A connection to a Ray cluster and the campaign's actors on it."""

    def __init__(self, workers: int, threads: int, device: str) -> None:
        self.workers, self.threads, self.device = workers, threads, device
        self._actors: list = []

    @classmethod
    def start(
        cls, address: str | None, workers: int | None, threads: int | None, device: str
    ) -> RayPool:
        """Join the cluster at ``address`` (``auto``: the one this machine belongs to), or
        start a local one. ``workers`` defaults to the cluster's CPUs (GPUs on CUDA) over
        ``threads`` (default 1) each."""
        ray = _ray()
        threads = threads or 1
        if not ray.is_initialized():
            try:
                connect(address)
            except ConnectionError as error:
                raise FissureError(
                    f"no Ray cluster at {address} ({error}): start one with `ray start --head`, "
                    "or leave out --address to start a local one"
                ) from None
        resources = ray.cluster_resources()
        cuda = str(device).startswith("cuda")
        if cuda and not resources.get("GPU"):
            raise FissureError(
                "the campaign runs on CUDA but the Ray cluster has no GPU: add GPU nodes, "
                'or set device = "cpu"'
            )
        slots = int(resources.get("GPU", 0)) if cuda else int(resources.get("CPU", 1)) // threads
        if slots < 1 or (workers or 0) > slots:
            what = "GPUs" if cuda else f"CPUs for {threads} threads each"
            raise FissureError(
                f"the Ray cluster has {what} for {slots} workers, not {workers or 1}: ask for "
                "fewer --workers or --threads, or add nodes (actors that do not fit would wait "
                "forever)"
            )
        return cls(workers or slots, threads, device)

    def load(self, config: CampaignConfig, model: str) -> RayWorkers:
        """Actors holding ``model`` (the previous model's actors are let go)."""
        ray = _ray()
        self._release()
        remote = ray.remote(_Actor).options(
            num_cpus=self.threads, num_gpus=1 if str(self.device).startswith("cuda") else 0
        )
        self._actors = [remote.remote(config, model, self.threads) for _ in range(self.workers)]
        return RayWorkers(self._actors)

    def _release(self) -> None:
        ray = _ray()
        for actor in self._actors:
            ray.kill(actor)
        self._actors = []

    def shutdown(self) -> None:
        self._release()


class RayWorkers:
    """The actors of one model, used as one :class:`CampaignWorker` is."""

    def __init__(self, actors: Sequence) -> None:
        self.actors = list(actors)

    def plan(self) -> Plan:
        plans = _get([actor.plan.remote() for actor in self.actors])  # each loads first
        return plans[0]

    def settings(self, spec: AttackSpec) -> dict[str, object]:
        return _get(self.actors[0].settings.remote(spec))

    def run(self, spec: AttackSpec, attempts: list[Attempt], writer, progress: bool = True) -> None:
        """Send the attempts the store lacks in chunks to idle actors (:func:`_chunk_size`);
        write each chunk's findings and failures as it returns."""
        ray = _ray()
        todo = [attempt for attempt in attempts if not writer.has(attempt)]
        batch = int(spec.options.get("batch_size", 8))
        running: dict = {}
        idle = list(self.actors)
        with tqdm(
            total=len(attempts),
            initial=len(attempts) - len(todo),
            desc=f"{spec.label} (ray ×{len(self.actors)})",
            unit="attempt",
            disable=not progress,
        ) as bar:
            while todo or running:
                if not idle and not running:
                    raise FissureError("every Ray worker died: see the Ray logs, then resume")
                while idle and todo:
                    size = _chunk_size(len(todo), len(self.actors), batch)
                    actor, chunk, todo = idle.pop(), todo[:size], todo[size:]
                    running[actor.run.remote(spec, chunk)] = (actor, chunk)
                (done,), _ = ray.wait(list(running), num_returns=1)
                actor, chunk = running.pop(done)
                try:
                    collector = ray.get(done)
                    added, failed = collector.added, collector.failed
                except ray.exceptions.RayError as error:  # the chunk's attempts fail, not the run
                    added, failed = [], [(attempt, error_line(_cause(error))) for attempt in chunk]
                    if isinstance(error, ray.exceptions.RayActorError):  # died: not reused
                        self.actors.remove(actor)
                    else:
                        idle.append(actor)
                else:
                    idle.append(actor)
                for finding, before, after, delta in added:
                    finding.id = writer.key(finding)  # the driver's key, whatever the actor's paths
                    writer.add(finding, before, after, delta)
                for attempt, error in failed:
                    writer.fail(attempt, error)
                bar.update(len(added) + len(failed))


def _cause(error: BaseException) -> BaseException:
    """What an actor raised, out of Ray's wrapper (its traceback says nothing to a user)."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error


def _get(refs):
    """``ray.get``, with an actor's FissureError (a bad model, a missing judge) raised here as
    the one line it is, and anything else as one line naming the Ray failure."""
    ray = _ray()
    try:
        return ray.get(refs)
    except ray.exceptions.RayError as error:
        cause = _cause(error)
        if isinstance(cause, FissureError):
            raise FissureError(str(cause)) from None
        raise FissureError(f"a Ray worker failed: {error_line(cause)}") from None


def _chunk_size(remaining: int, workers: int, batch: int) -> int:
    """Guided self-scheduling: a share of what remains, so chunks shrink towards the end and
    no worker waits long for the last; at least one batch (a smaller one pads its batches),
    at most four (a killed driver loses the chunks in flight)."""
    return max(batch, min(4 * batch, -(-remaining // (2 * workers))))
