"""A fingerprint of the world itself, for caches of what it renders.

A cached scene bank is named by its seeds; without the world in the name, a change to
the classes, captions, layout or sprites would go on serving the old world's scenes.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from fissure.world.atlas import EMOJI_SETS
from fissure.world.classes import classes
from fissure.world.scenes import sample_scene

ASSETS = Path(__file__).parent / "assets"

#: Seeds rendered into the fingerprint: each emoji set and object count several times.
PROBE_SEEDS = 36


@functools.cache
def world_fingerprint() -> str:
    """A hash of the class table, the asset files (sprites, filler words) and what the world
    makes of :data:`PROBE_SEEDS` seeds (labels, caption, pixels).

    A change to code that none of those scenes exercises can slip through: bump a cache's
    own format version for such a change.
    """
    digest = hashlib.sha256(json.dumps([asdict(c) for c in classes()]).encode())
    for path in sorted(ASSETS.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    for seed in range(PROBE_SEEDS):
        emoji_set = EMOJI_SETS[seed % len(EMOJI_SETS)]
        scene = sample_scene(seed, n_objects=1 + seed % 3, emoji_set=emoji_set)
        digest.update(json.dumps([scene.caption, list(scene.labels)]).encode())
        digest.update(scene.image.tobytes())
    return digest.hexdigest()[:12]
