"""Files written whole or not at all, and folders written by one process at a time.

Training processes and attack runs are killed mid-write (Ctrl-C, session ends,
``--max-minutes``), and snapshots read folders while they are written: a resumed
run or a reader may never see half a file. Two runs into one folder would redo
each other's work and overwrite each other's checkpoints: :func:`lock_folder`.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from fissure.errors import FissureError


@contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """Yield a partial file beside ``path`` to write; on success move it into place in one rename.

    The partial file's name holds the process id: two processes that write the same
    path (two runs building one scene bank) never share a partial file.
    """
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        yield partial
        with partial.open("rb") as written:  # on disk before the rename: a power cut keeps one
            os.fsync(written.fileno())  # whole; a full disk may only tell here
    except BaseException:  # Ctrl-C or an error: leave no checkpoint-sized leftovers
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)


def write_json(path: Path, data: object) -> None:
    """Write ``data`` as indented JSON to ``path`` whole (:func:`atomic_write`)."""
    with atomic_write(path) as partial:
        partial.write_text(json.dumps(data, indent=2))


@contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """Yield an empty staging folder beside ``path`` to fill; on success swap it in.

    A kill while the folder is filled leaves ``path`` as it was (the bundled model
    stays loadable while a new one is installed). The swap is two renames; a kill
    between them leaves ``path.previous``, which the next call puts back first. The
    staging folder's name holds the process id: two snapshots never fill one folder.
    """
    previous = path.with_name(f"{path.name}.previous")
    if previous.exists() and not path.exists():
        previous.replace(path)
    staging = path.with_name(f"{path.name}.{os.getpid()}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(previous, ignore_errors=True)
    if path.exists():
        path.replace(previous)
    staging.replace(path)
    shutil.rmtree(previous, ignore_errors=True)


def lock_folder(folder: Path) -> IO[bytes]:
    """An exclusive lock on ``folder``, held while the returned file stays open (the
    operating system drops it when the process dies, however it dies)."""
    handle = open(folder / ".lock", "wb")  # noqa: SIM115 - held open for the writer's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise FissureError(
            f"another run is writing {folder}: wait for it to finish, or use another --out"
        ) from None
    return handle
