"""Files written whole or not at all.

Training processes and attack runs are killed mid-write (Ctrl-C, session ends,
``--max-minutes``), and snapshots read folders while they are written: a resumed
run or a reader may never see half a file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """Yield a partial file beside ``path`` to write; on success move it into place in one rename.

    The partial file's name holds the process id: two processes that write the same
    path (two runs building one scene bank) never share a partial file.
    """
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        yield partial
    except BaseException:  # Ctrl-C or an error: leave no checkpoint-sized leftovers
        partial.unlink(missing_ok=True)
        raise
    with partial.open("rb") as written:  # on disk before the rename: a power cut keeps one whole
        os.fsync(written.fileno())
    partial.replace(path)


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
