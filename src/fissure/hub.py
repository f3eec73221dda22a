"""How fissure talks to the Hugging Face hub: never, on machines that say they are offline."""

from __future__ import annotations

import os


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` asks for local files only (offline machines never dial out)."""
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
