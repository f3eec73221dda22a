"""The results store: one SQLite file for every campaign, attempt, finding, tag, label and
metric, with images and tensors beside it by content hash.

A store is a folder: ``results.db`` (WAL mode) and ``blobs/``. Writing a finding is its
blobs (synced), then one transaction; a killed run loses at most the attempts in flight,
and running it again skips every attempt already recorded. Readers (status, export, the
report) may read while a campaign writes.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import torch

from fissure.atomic import lock_folder
from fissure.errors import FissureError, RunFolderMismatch, StoreError, error_line, first_line
from fissure.outputs import prepare_output_dir
from fissure.results.blobs import png_bytes, put_blob, tensor_bytes
from fissure.results.record import Finding, attempt_key
from fissure.results.schema import migrate, transaction

DATABASE = "results.db"


class Item(Protocol):
    """What names an attempt of a campaign (an attack's ``Attempt`` is one)."""

    prompt: str
    target: str
    seed: int


@dataclass(frozen=True)
class Failure:
    """An attempt that raised instead of finishing; running the campaign again retries it."""

    key: str
    campaign: str
    model: str
    attack: str
    prompt: str
    target: str
    seed: int
    error: str


@dataclass(frozen=True)
class CampaignRecord:
    name: str
    config: dict
    created: float
    updated: float


@contextmanager
def _store_errors(folder: Path) -> Iterator[None]:
    """A full disk or a read-only folder as one line that says what to do; the transaction
    under way rolls back, so no row is ever half written."""
    try:
        yield
    except sqlite3.OperationalError as error:
        text = str(error)
        if "full" in text:
            raise _full(folder) from None
        if "readonly" in text or "read-only" in text:
            raise StoreError(
                f"cannot write to the results store {folder} (read-only): make it writable "
                "or choose another --store"
            ) from None
        raise
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise _full(folder) from None
        if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise StoreError(
                f"cannot write to the results store {folder} ({error.strerror}): make it "
                "writable or choose another --store"
            ) from None
        raise


def _full(folder: Path) -> StoreError:
    return StoreError(
        f"the disk holding {folder} is full: free some space and run the same command to "
        "resume (every finding recorded so far is kept)"
    )


class ResultsStore:
    """A results store folder, opened for reading and writing (or ``readonly``).

    Opening creates the folder and database if needed and migrates an older store's
    tables in place (:mod:`fissure.results.schema`).
    """

    def __init__(self, folder: str | Path, readonly: bool = False) -> None:
        self.folder = Path(folder).expanduser()
        self.readonly = readonly
        path = self.folder / DATABASE
        if readonly:
            if not path.is_file():
                raise FissureError(f"{self.folder} holds no results store ({DATABASE})")
            # immutable: a store on a read-only disk can still be read and exported, unless
            # a killed run left commits in its WAL, which only a writable folder can read
            wal = self.folder / f"{DATABASE}-wal"
            unwritable = not os.access(self.folder, os.W_OK)
            if unwritable and wal.is_file() and wal.stat().st_size:
                raise FissureError(
                    f"{self.folder} holds commits not yet merged into {DATABASE} (a run was "
                    "killed) and is read-only: open it once where it can be written, e.g. "
                    "`fissure campaign status --store <a writable copy>`"
                )
            immutable = "&immutable=1" if unwritable else ""
            self.connection = self._connect(f"file:{path}?mode=ro{immutable}", uri=True)
        else:
            prepare_output_dir(self.folder)
            self.connection = self._connect(str(path))
        try:
            with _store_errors(self.folder):
                if readonly:
                    version = self.connection.execute("PRAGMA user_version").fetchone()[0]
                    migrate(self.connection, self.folder, upto=version)  # refuses a newer one
                else:
                    self.connection.execute("PRAGMA journal_mode=WAL")
                    # blobs are synced before their row commits; a power cut may undo the
                    # last commits (those attempts run again), never leave a row half done
                    self.connection.execute("PRAGMA synchronous=NORMAL")
                    migrate(self.connection, self.folder)
        except sqlite3.DatabaseError as error:
            self.connection.close()
            raise FissureError(
                f"{path} is not a readable results store ({first_line(error)}): move it away "
                "or choose another --store"
            ) from None
        except BaseException:
            self.connection.close()
            raise

    def _connect(self, target: str, uri: bool = False) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(target, timeout=60, isolation_level=None, uri=uri)
        except sqlite3.Error as error:
            raise FissureError(
                f"cannot open the results store {self.folder} ({first_line(error)}): "
                "check the path or choose another --store"
            ) from None
        connection.row_factory = sqlite3.Row
        return connection

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------

    def campaign(self, name: str, config: dict | None = None) -> CampaignWriter:
        """Open campaign ``name`` for writing, recording ``config`` (what a rerun needs).

        One process at a time writes a campaign (a lock released by ``close``, at exit,
        or when the process dies): two would attack the same attempts twice.
        """
        if not name or not name.strip():
            raise FissureError("a campaign needs a name")
        return CampaignWriter(self, name, config)

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """One transaction, with a full disk or read-only folder said in one line."""
        with _store_errors(self.folder), transaction(self.connection) as connection:
            yield connection

    def put_image(self, image: torch.Tensor) -> str:
        with _store_errors(self.folder):
            return put_blob(self.folder, png_bytes(image), ".png")

    def put_tensor(self, tensor: torch.Tensor) -> str:
        with _store_errors(self.folder):
            return put_blob(self.folder, tensor_bytes(tensor), ".safetensors")

    def tag(self, key: str, category: str, source: str) -> None:
        """File a finding under a failure category (SAGE's kinds, an analysis's, a reviewer's)."""
        with self.writing() as db:
            db.execute("INSERT OR IGNORE INTO tags VALUES (?, ?, ?)", (key, category, source))

    def add_label(
        self,
        key: str,
        reviewer: str,
        shows_prompt: bool | None,
        category: str | None = None,
        note: str | None = None,
    ) -> None:
        """A person's judgement of a finding: every label is kept, for agreement statistics."""
        with self.writing() as db:
            db.execute(
                "INSERT INTO labels (key, reviewer, shows_prompt, category, note, recorded) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (key, reviewer, shows_prompt, category, note, time.time()),
            )

    def put_metric(
        self, campaign: str, name: str, value: float | None, detail: dict | None = None
    ) -> None:
        """A campaign-wide measurement (a rate with its sample size and interval), replaced
        when measured again."""
        with self.writing() as db:
            db.execute(
                "INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?, ?)",
                (campaign, name, value, json.dumps(detail or {}), time.time()),
            )

    # -- reading ---------------------------------------------------------------------------

    def campaigns(self) -> list[CampaignRecord]:
        rows = self.connection.execute("SELECT * FROM campaigns ORDER BY created")
        return [
            CampaignRecord(r["name"], json.loads(r["config"]), r["created"], r["updated"])
            for r in rows
        ]

    def bindings(self, campaign: str | None = None) -> list[dict]:
        """Each (campaign, model, attack)'s settings, with those three keys added."""
        rows = self._select("bindings", campaign)
        return [
            {"campaign": r["campaign"], **json.loads(r["settings"]), "model": r["model"]}
            for r in rows
        ]

    def findings(self, campaign: str | None = None, **where: str) -> list[Finding]:
        """Every finished attempt (of ``campaign``, and ``model``/``attack`` if given), in the
        order recorded. A row that is not a finding is an error, not an attempt to redo."""
        findings = []
        for row in self._select("attempts", campaign, status="done", **where):
            try:
                findings.append(Finding(**json.loads(row["finding"])))
            except (json.JSONDecodeError, TypeError) as error:
                raise FissureError(
                    f"the record {row['key']} in {self.folder / DATABASE} is not a finding "
                    f"({first_line(error)}): a newer fissure may have written it"
                ) from None
        return findings

    def failures(self, campaign: str | None = None, **where: str) -> list[Failure]:
        rows = self._select("attempts", campaign, status="failed", **where)
        return [
            Failure(
                *(
                    r[c]
                    for c in (
                        "key",
                        "campaign",
                        "model",
                        "attack",
                        "prompt",
                        "target",
                        "seed",
                        "error",
                    )
                )
            )
            for r in rows
        ]

    def counts(self, campaign: str) -> list[dict]:
        """Per (model, attack): attempts done, failed, and verified failures."""
        rows = self.connection.execute(
            "SELECT model, attack, SUM(status = 'done') AS done, SUM(status = 'failed') AS failed,"
            " SUM(COALESCE(verified_failure, 0)) AS verified FROM attempts WHERE campaign = ?"
            " GROUP BY model, attack ORDER BY MIN(rowid)",
            (campaign,),
        )
        return [dict(row) for row in rows]

    def still_to_run(self, campaign: str) -> int:
        """Planned attempts of ``campaign`` not yet finished (failed ones included)."""
        return self.connection.execute(
            "SELECT COUNT(*) FROM planned AS p WHERE campaign = ? AND NOT EXISTS "
            "(SELECT 1 FROM attempts AS a WHERE a.key = p.key AND a.status = 'done')",
            (campaign,),
        ).fetchone()[0]

    def tags(self, key: str | None = None) -> list[tuple[str, str, str]]:
        query, values = "SELECT key, category, source FROM tags", ()
        if key is not None:
            query, values = query + " WHERE key = ?", (key,)
        return [tuple(row) for row in self.connection.execute(query, values)]

    def labels(self, key: str | None = None) -> list[dict]:
        query, values = "SELECT * FROM labels", ()
        if key is not None:
            query, values = query + " WHERE key = ?", (key,)
        return [dict(row) for row in self.connection.execute(query + " ORDER BY id", values)]

    def metrics(self, campaign: str) -> dict[str, tuple[float | None, dict]]:
        rows = self.connection.execute("SELECT * FROM metrics WHERE campaign = ?", (campaign,))
        return {r["name"]: (r["value"], json.loads(r["detail"])) for r in rows}

    def _select(self, table: str, campaign: str | None, **where: str) -> list[sqlite3.Row]:
        conditions = {"campaign": campaign, **where} if campaign is not None else where
        clause = " AND ".join(f"{column} = ?" for column in conditions) or "1"
        return list(
            self.connection.execute(
                f"SELECT * FROM {table} WHERE {clause} ORDER BY rowid", tuple(conditions.values())
            )
        )


class CampaignWriter:
    """A campaign open for writing: its lock, its config, and one :class:`AttackWriter` per
    (model, attack)."""

    def __init__(self, store: ResultsStore, name: str, config: dict | None) -> None:
        if store.readonly:
            raise FissureError(f"{store.folder} was opened read-only")
        self.store, self.name = store, name
        locks = store.folder / "locks"
        with _store_errors(store.folder):
            locks.mkdir(exist_ok=True)
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        try:
            (locks / digest).mkdir(exist_ok=True)
            self._lock = lock_folder(locks / digest)
        except FissureError:
            raise FissureError(
                f"another run is writing campaign {name!r} in {store.folder}: wait for it to "
                "finish, or use another --out or campaign name"
            ) from None
        try:
            now = time.time()
            with store.writing() as db:
                db.execute(
                    "INSERT INTO campaigns (name, config, created, updated) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET config = COALESCE(?, config), updated = ?",
                    (name, json.dumps(config or {}), now, now, _json_or_none(config), now),
                )
        except BaseException:
            self.close()
            raise

    def plan(self, model: str, keys: list[str]) -> None:
        """Record the keys of every attempt the campaign asks of ``model`` (for status)."""
        with self.store.writing() as db:
            db.execute("DELETE FROM planned WHERE campaign = ? AND model = ?", (self.name, model))
            db.executemany(
                "INSERT OR IGNORE INTO planned VALUES (?, ?, ?)",
                [(self.name, model, key) for key in keys],
            )

    def attack(self, model: str, attack: str, settings: dict[str, object]) -> AttackWriter:
        return AttackWriter(self, model, attack, settings)

    def close(self) -> None:
        """Let another run write the campaign."""
        self._lock.close()

    def __enter__(self) -> CampaignWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _settings(text: str, where: str) -> dict:
    """A binding's settings, or one line that says the record is damaged."""
    try:
        settings = json.loads(text)
    except json.JSONDecodeError:
        settings = None
    if not isinstance(settings, dict):
        raise FissureError(
            f"the settings recorded for {where} are damaged: resume in another --out or campaign"
        )
    return settings


def _json_or_none(value: dict | None) -> str | None:
    return None if value is None else json.dumps(value)


class AttackWriter:
    """One attack on one model within a campaign: bound to its settings, written one
    finding at a time.

    A (model, attack) holding findings made under other values of its settings is
    refused, so a resumed campaign never mixes two runs' findings.
    """

    def __init__(
        self, campaign: CampaignWriter, model: str, attack: str, settings: dict[str, object]
    ) -> None:
        self.campaign, self.model, self.attack = campaign, model, attack
        self.store = campaign.store
        self.folder = self.store.folder
        row = self.store.connection.execute(
            "SELECT settings FROM bindings WHERE campaign = ? AND model = ? AND attack = ?",
            (campaign.name, model, attack),
        ).fetchone()
        self._recorded: dict = _settings(row["settings"], self._where()) if row else {}
        self._done = {
            r["key"]
            for r in self.store.connection.execute(
                "SELECT key FROM attempts WHERE campaign = ? AND model = ? AND attack = ? "
                "AND status = 'done'",
                (campaign.name, model, attack),
            )
        }
        self._resumed = bool(self._done)
        self.settings: dict[str, object] = {}
        self.bind(**settings)

    def bind(self, **settings: object) -> None:
        """Add settings the findings depend on (the runner adds the model and verifiers)."""
        settings = json.loads(json.dumps(settings))
        changed = sorted(  # a setting a resumed campaign never recorded: another version's
            key
            for key, value in settings.items()
            if (self._recorded[key] != value if key in self._recorded else self._resumed)
        )
        if self._done and changed:
            raise RunFolderMismatch(self._where(), changed)
        self.settings.update(settings)
        self._recorded = {**self._recorded, **self.settings} if self._done else dict(self.settings)
        with self.store.writing() as db:
            db.execute(
                "INSERT OR REPLACE INTO bindings VALUES (?, ?, ?, ?)",
                (self.campaign.name, self.model, self.attack, json.dumps(self._recorded)),
            )

    def _where(self) -> str:
        if self.campaign.name == self.attack:  # a `fissure attack --out` run: the folder
            return str(self.folder)
        return f"campaign {self.campaign.name!r} ({self.attack} on {self.model}) in {self.folder}"

    def key(self, item: Item) -> str:
        return attempt_key(
            self.campaign.name, self.model, self.attack, item.prompt, item.target, item.seed
        )

    def has(self, item: Item) -> bool:
        return self.key(item) in self._done

    def findings(self) -> list[Finding]:
        return self.store.findings(self.campaign.name, model=self.model, attack=self.attack)

    def add(
        self, finding: Finding, before: torch.Tensor, after: torch.Tensor, delta: torch.Tensor
    ) -> None:
        """Write the finding's images and δ, then :meth:`record` it."""
        finding.files = {
            "before": self.store.put_image(before),
            "after": self.store.put_image(after),
            "delta": self.store.put_tensor(delta),
        }
        self.record(finding)

    def record(self, finding: Finding) -> None:
        """The finding's row and its category, in one transaction (its files are stored)."""
        key = finding.id
        with self.store.writing() as db:
            db.execute(
                "INSERT OR REPLACE INTO attempts VALUES (?, ?, ?, ?, ?, ?, ?, 'done', ?, ?, NULL, ?)",
                (
                    key, self.campaign.name, self.model, self.attack, finding.prompt,
                    finding.target, finding.seed, finding.verified_failure,
                    json.dumps(asdict(finding)), time.time(),
                ),
            )  # fmt: skip
            db.execute("DELETE FROM tags WHERE key = ? AND source = 'verifiers'", (key,))
            if finding.verified_failure and finding.kind:
                db.execute("INSERT INTO tags VALUES (?, ?, 'verifiers')", (key, finding.kind))
        self._done.add(key)

    def fail(self, item: Item, error: BaseException | str) -> None:
        """Record that an attempt raised; the campaign goes on, and a rerun retries it."""
        message = error_line(error)
        with self.store.writing() as db:
            db.execute(
                "INSERT INTO attempts VALUES (?, ?, ?, ?, ?, ?, ?, 'failed', NULL, NULL, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET error = excluded.error, "
                "recorded = excluded.recorded WHERE status = 'failed'",
                (
                    self.key(item), self.campaign.name, self.model, self.attack, item.prompt,
                    item.target, item.seed, message, time.time(),
                ),
            )  # fmt: skip
