"""Bundled models and judges, their training recipes and loaders."""

from __future__ import annotations

from pathlib import Path

from fissure.errors import FissureError

WEIGHTS_DIR = Path(__file__).parent / "weights"

#: Names reserved for the diffusion pipelines that ship inside the package, with how to make them.
BUNDLED_MODELS = {"emoji-sd": "fissure zoo train emoji-sd"}
#: The language models that ship inside the package (prompt attacks use them).
BUNDLED_LANGUAGE_MODELS = {"emoji-lm": "fissure zoo train emoji-lm"}
#: The file a bundled model's folder holds once it is trained.
_MARKERS = {"emoji-sd": "model_index.json", "emoji-lm": "config.json"}


def bundled_model_path(name: str) -> Path:
    """The folder of a bundled model, or a clear error if it has not been trained yet."""
    recipes = {**BUNDLED_MODELS, **BUNDLED_LANGUAGE_MODELS}
    if name not in recipes:
        raise FissureError(f"unknown bundled model {name!r}; known: {', '.join(recipes)}")
    folder = WEIGHTS_DIR / name
    if not (folder / _MARKERS[name]).is_file():
        raise FissureError(
            f"the bundled model {name} is not in this install yet "
            f"(train it with `{recipes[name]}`); give a folder or hub id instead"
        )
    return folder
