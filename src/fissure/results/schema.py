"""The results store's tables, as numbered migrations: a store of any earlier version opens
and is brought up to date in place, one transaction per step; a newer store is refused."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from fissure.errors import FissureError

#: Each entry takes a store from version ``i`` to ``i + 1`` (SQLite's ``user_version``).
MIGRATIONS: tuple[str, ...] = (
    # 1: campaigns, what each (model, attack) of a campaign is bound to, its planned
    # attempts, and the attempts run
    """
    CREATE TABLE campaigns (
        name TEXT PRIMARY KEY,
        config TEXT NOT NULL,            -- JSON: what `fissure campaign run` was given
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE TABLE planned (
        campaign TEXT NOT NULL REFERENCES campaigns(name),
        model TEXT NOT NULL,
        key TEXT NOT NULL,
        PRIMARY KEY (campaign, model, key)
    );
    CREATE TABLE bindings (
        campaign TEXT NOT NULL REFERENCES campaigns(name),
        model TEXT NOT NULL,
        attack TEXT NOT NULL,
        settings TEXT NOT NULL,          -- JSON: every choice that decides a finding
        PRIMARY KEY (campaign, model, attack)
    );
    CREATE TABLE attempts (
        key TEXT PRIMARY KEY,
        campaign TEXT NOT NULL REFERENCES campaigns(name),
        model TEXT NOT NULL,
        attack TEXT NOT NULL,
        prompt TEXT NOT NULL,
        target TEXT NOT NULL,
        seed INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
        verified_failure INTEGER,
        finding TEXT,                    -- JSON of the Finding when done
        error TEXT,                      -- one line when failed
        recorded REAL NOT NULL
    );
    CREATE INDEX attempts_by_campaign ON attempts (campaign, model, attack, status);
    """,
    # 2: what people and analyses add to findings: category tags, review labels, metrics
    """
    CREATE TABLE tags (
        key TEXT NOT NULL REFERENCES attempts(key),
        category TEXT NOT NULL,
        source TEXT NOT NULL,            -- who tagged it: "verifiers", an analysis, a reviewer
        PRIMARY KEY (key, category, source)
    );
    CREATE TABLE labels (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL REFERENCES attempts(key),
        reviewer TEXT NOT NULL,
        shows_prompt INTEGER,            -- 1: the image shows the prompt, 0: it does not
        category TEXT,
        note TEXT,
        recorded REAL NOT NULL
    );
    CREATE TABLE metrics (
        campaign TEXT NOT NULL REFERENCES campaigns(name),
        name TEXT NOT NULL,
        value REAL,
        detail TEXT,                     -- JSON: sample size, interval, what it was measured on
        recorded REAL NOT NULL,
        PRIMARY KEY (campaign, name)
    );
    """,
)
VERSION = len(MIGRATIONS)


def migrate(connection: sqlite3.Connection, where: object, upto: int = VERSION) -> None:
    """Bring the store to version ``upto`` (tests stop earlier to make an old store)."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version > VERSION:
        raise FissureError(
            f"{where} was written by a newer fissure (store version {version}, this one reads "
            f"up to {VERSION}): upgrade fissure (pip install -U fissure)"
        )
    for number in range(version, upto):
        with transaction(connection):  # a kill between steps leaves the last whole version
            for statement in MIGRATIONS[number].split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {number + 1}")


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (the connection is in autocommit mode): all of it or none.

    ``BEGIN IMMEDIATE`` takes the write lock at once, so two writers wait for each other
    (the connection's timeout) instead of failing half-way.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:  # a failed COMMIT (a full disk) may have rolled back
            connection.execute("ROLLBACK")
        raise
