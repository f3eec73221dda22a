"""Where results go: output folders proven writable, and readable file names that two
different prompts never share."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from fissure.errors import FissureError


def prompt_file_stem(prompt: str, seed: int, *identity: str) -> str:
    """``<slug>-<hash>-seed<seed>``: the slug to read, the hash of the exact prompt (and
    ``identity``, e.g. an attack's target) to keep apart prompts whose slugs merge
    ("A dog!" and "a dog", or two long prompts that differ late)."""
    slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:48] or "prompt"
    digest = hashlib.sha256("\0".join((prompt, *identity)).encode()).hexdigest()[:8]
    return f"{slug}-{digest}-seed{seed}"


def check_output_dir(path: str | Path) -> None:
    """Fail early if the folder could not be made or written, without making it: a command
    that stops on bad input leaves no empty folder behind."""
    folder = Path(path).expanduser().absolute()
    existing = next(parent for parent in (folder, *folder.parents) if parent.exists())
    if not existing.is_dir():
        raise FissureError(
            f"{existing} is a file, so {folder} cannot be made: choose another --out"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise FissureError(f"cannot write to {existing}: choose another --out")


def prepare_output_dir(path: str | Path) -> Path:
    """Create the folder and prove it is writable before any compute is spent."""
    folder = Path(path).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".fissure-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise FissureError(
            f"cannot write to {folder} ({error.strerror}): choose another --out"
        ) from error
    return folder
