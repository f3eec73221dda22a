"""Bundled models and judges, their training recipes and loaders."""

from __future__ import annotations

from pathlib import Path

from fissure.errors import FissureError

WEIGHTS_DIR = Path(__file__).parent / "weights"

#: Names reserved for models that ship inside the package, with how to make them.
BUNDLED_MODELS = {"emoji-sd": "fissure zoo train emoji-sd"}


def bundled_model_path(name: str) -> Path:
    """The folder of a bundled model, or a clear error if it has not been trained yet."""
    if name not in BUNDLED_MODELS:
        raise FissureError(f"unknown bundled model {name!r}; known: {', '.join(BUNDLED_MODELS)}")
    folder = WEIGHTS_DIR / name
    if not (folder / "model_index.json").is_file():
        raise FissureError(
            f"the bundled model {name} is not in this install yet "
            f"(train it with `{BUNDLED_MODELS[name]}`); give --model a folder or hub id instead"
        )
    return folder
