"""Where results go: output folders proven writable, and readable file names that two
different prompts never share."""

from __future__ import annotations

import hashlib
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
