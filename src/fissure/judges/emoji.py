"""Judges of the emoji world: a network of a named architecture, saved with its config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from fissure.atomic import atomic_write, write_json
from fissure.errors import FissureError
from fissure.judges.base import Judge
from fissure.judges.networks import build_network

CONFIG_NAME = "judge.json"
WEIGHTS_NAME = "model.safetensors"


class EmojiJudge(Judge):
    """A classifier over the emoji classes; the architecture is named in its config."""

    def __init__(
        self,
        labels: list[str],
        architecture: str,
        network_config: dict[str, Any],
        input_size: int = 64,
        mean: tuple[float, ...] = (0.5, 0.5, 0.5),
        std: tuple[float, ...] = (0.25, 0.25, 0.25),
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(labels, input_size, mean, std)
        self.architecture = architecture
        self.network_config = dict(network_config)
        self.metadata = dict(metadata or {})
        self.network = build_network(architecture, len(labels), self.network_config)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(self.preprocess(images))

    def config(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "network_config": self.network_config,
            "labels": self.labels,
            "input_size": self.input_size,
            "mean": self.mean.flatten().tolist(),
            "std": self.std.flatten().tolist(),
            "metadata": self.metadata,
        }

    def save_pretrained(self, folder: str | Path, half: bool = True) -> None:
        """Write ``model.safetensors`` (float16 by default: half the size), then ``judge.json``.

        Each file is written whole or not at all, and ``judge.json`` last: a folder
        that has it holds a complete judge, so a save cut short is redone, never loaded.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {
            name: (value.half() if half and value.is_floating_point() else value).contiguous()
            for name, value in self.network.state_dict().items()
        }
        with atomic_write(folder / WEIGHTS_NAME) as partial:
            save_file(state, partial)
        write_json(folder / CONFIG_NAME, self.config())

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> EmojiJudge:
        """Load a saved judge in float32, in eval mode."""
        folder = Path(folder)
        if not (folder / CONFIG_NAME).is_file():
            raise FissureError(f"{folder} holds no emoji judge ({CONFIG_NAME} is missing)")
        try:
            config = json.loads((folder / CONFIG_NAME).read_text())
            judge = cls(
                labels=config["labels"],
                architecture=config["architecture"],
                network_config=config["network_config"],
                input_size=config["input_size"],
                mean=tuple(config["mean"]),
                std=tuple(config["std"]),
                metadata=config.get("metadata"),
            )
        except (
            ValueError,
            KeyError,
            TypeError,
            FissureError,
        ) as error:  # cut, or another version's
            raise FissureError(
                f"{folder / CONFIG_NAME} is unreadable ({type(error).__name__}: {error}); "
                "retrain with `fissure zoo train-judges`"
            ) from error
        try:
            state = load_file(folder / WEIGHTS_NAME)
            judge.network.load_state_dict(
                {
                    name: value.float() if value.is_floating_point() else value
                    for name, value in state.items()
                }
            )
        except Exception as error:
            raise FissureError(
                f"could not read the weights in {folder} ({error}); retrain with `fissure zoo train-judges`"
            ) from error
        return judge.eval()
