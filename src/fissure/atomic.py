"""Files written whole or not at all.

Training processes and attack runs are killed mid-write (Ctrl-C, session ends,
``--max-minutes``), and snapshots read folders while they are written: a resumed
run or a reader may never see half a file.
"""

from __future__ import annotations

import os
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
    yield partial
    partial.replace(path)
