"""Kill a campaign again and again and resume it: the proof that a store loses nothing.

Used by the test suite (a tiny model) and ``benchmarks/bench_campaign.py`` (emoji-sd at
full size), and by anyone who wants to check a store on their own disk or cluster.
"""

from __future__ import annotations

import hashlib
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fissure.results import ResultsStore
from fissure.results.store import DATABASE


@dataclass(frozen=True)
class Kill:
    """One SIGKILL: after how many seconds, and the findings in the store before and after."""

    seconds: float
    done_before: int
    done_after: int


def done_count(store: Path) -> int:
    """Finished attempts in the store (0 while it is being created), read without a lock."""
    database = Path(store) / DATABASE
    if not database.is_file():
        return 0
    try:
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
        try:
            query = "SELECT COUNT(*) FROM attempts WHERE status = 'done'"
            return connection.execute(query).fetchone()[0]
        finally:
            connection.close()
    except sqlite3.OperationalError:  # no tables yet
        return 0


def kill_repeatedly(
    command: Sequence[str],
    store: Path,
    kills: int,
    seed: int = 0,
    anywhere: float = 0.3,
    early: float = 6.0,
    env: dict | None = None,
) -> list[Kill]:
    """Start ``command`` (a campaign run into ``store``) and SIGKILL it, ``kills`` times.

    A share ``anywhere`` of the kills comes at a random moment of the first ``early``
    seconds (importing, loading, binding, planning, attacking); the others just after a
    finding lands or while the next is being written, so every such run makes progress.
    """
    moments = random.Random(seed)
    log = []
    for _ in range(kills):
        before = done_count(store)
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        started = time.monotonic()
        if moments.random() < anywhere:
            deadline = moments.uniform(0.2, early)
            while process.poll() is None and time.monotonic() - started < deadline:
                time.sleep(0.01)
        else:
            while process.poll() is None and done_count(store) == before:
                time.sleep(0.01)
            time.sleep(moments.uniform(0, 0.4))
        process.send_signal(signal.SIGKILL)
        process.wait()
        log.append(Kill(round(time.monotonic() - started, 2), before, done_count(store)))
    return log


def outcome(store: Path) -> dict[str, tuple]:
    """Each finished attempt's verdicts and its files' hashes, by key: what two runs of one
    campaign must share (seconds differ from run to run)."""
    store = Path(store)
    with ResultsStore(store, readonly=True) as results:
        rows = {}
        for f in results.findings():
            files = tuple(
                hashlib.sha256((store / path).read_bytes()).hexdigest() for path in f.files.values()
            )
            verdict = (f.attack, f.model, f.prompt, f.target, f.seed, f.success, f.verified,
                       f.clean_shows_target, f.kind, f.iterations, f.unet_evals,
                       repr(f.verifier_after))  # fmt: skip
            rows[f.id] = (verdict, files)
    return rows


def store_problems(store: Path) -> list[str]:
    """What is wrong with a store after kills: failed attempts, rows that are not findings,
    a failed integrity check (an empty list when all is well)."""
    with ResultsStore(store, readonly=True) as results:
        problems = [f"failed: {failure.error}" for failure in results.failures()]
        rows = results.connection.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
        findings = len(results.findings())
        if rows != findings:
            problems.append(f"{rows} rows but {findings} findings")
        check = results.connection.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            problems.append(f"integrity check: {check}")
    return problems
