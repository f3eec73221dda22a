"""Readable file names that two different prompts never share."""

from __future__ import annotations

import hashlib
import re


def prompt_file_stem(prompt: str, seed: int, *identity: str) -> str:
    """``<slug>-<hash>-seed<seed>``: the slug to read, the hash of the exact prompt (and
    ``identity``, e.g. an attack's target) to keep apart prompts whose slugs merge
    ("A dog!" and "a dog", or two long prompts that differ late)."""
    slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:48] or "prompt"
    digest = hashlib.sha256("\0".join((prompt, *identity)).encode()).hexdigest()[:8]
    return f"{slug}-{digest}-seed{seed}"
