"""Small pieces every emoji-sd stage uses: optimiser groups, EMA, stage records."""

from __future__ import annotations

import copy
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fissure.atomic import write_json

STAGE_RECORD = "stage.json"
SESSIONS = "sessions.jsonl"
LOG_EVERY = 50  # steps per line of a stage's log.jsonl


def optimizer_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on matrices and kernels, none on biases, norms and scales."""
    decay, no_decay = [], []
    for parameter in module.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


class ExponentialAverage(nn.Module):
    """A frozen copy of ``model`` whose weights trail it by an exponential moving average.

    The decay warms up as ``min(decay, (1 + step) / (10 + step))`` so early averages
    do not hold on to the random initialisation. It is an ``nn.Module`` so the
    training loop checkpoints it with the model.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__()
        self.decay = decay
        self.average = copy.deepcopy(model).requires_grad_(False).eval()

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for averaged, current in zip(self.average.parameters(), model.parameters(), strict=True):
            averaged.lerp_(current.detach(), 1 - decay)
        for averaged, current in zip(self.average.buffers(), model.buffers(), strict=True):
            averaged.copy_(current)

    def train(self, mode: bool = True) -> ExponentialAverage:
        super().train(mode)
        self.average.eval()  # the average is never trained directly
        return self


def machine_description() -> str:
    """Where a stage ran, for the model card: device, CPU count and torch threads."""
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    else:
        device = f"CPU ({platform.processor() or platform.machine()})"
    return (
        f"{device}, {os.cpu_count()} cores visible, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, Python {sys.version.split()[0]}"
    )


@dataclass
class StageRecord:
    """What a finished stage reports: its gate and how it was trained."""

    stage: str
    steps: int
    seconds: float
    gate: dict[str, float] = field(default_factory=dict)
    passed: bool = False
    machine: str = ""
    command: str = ""
    fingerprint: str = ""
    gate_settings: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    sessions: list[dict[str, Any]] = field(default_factory=list)

    def save(self, folder: Path) -> None:
        """Write ``stage.json`` whole: snapshots read it while training runs."""
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / STAGE_RECORD, asdict(self))

    @classmethod
    def load(cls, folder: Path) -> StageRecord | None:
        path = folder / STAGE_RECORD
        if not path.is_file():
            return None
        return cls(**json.loads(path.read_text()))


def checkpoint_step(folder: Path) -> int:
    """The step of the training checkpoint in ``folder`` (0 when there is none)."""
    from fissure.zoo.training_loop import CHECKPOINT_NAME

    path = folder / CHECKPOINT_NAME
    return int(torch.load(path, map_location="cpu")["step"]) if path.is_file() else 0


def log_session(folder: Path, from_step: int, steps: int, command: str) -> None:
    """Append who trains a stage from which step, where and how (stages span sessions)."""
    folder.mkdir(parents=True, exist_ok=True)
    entry = {
        "from_step": from_step,
        "to_step": steps,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine_description(),
        "command": command,
    }
    with open(folder / SESSIONS, "a") as log:
        log.write(json.dumps(entry) + "\n")


def read_sessions(folder: Path) -> list[dict[str, Any]]:
    path = folder / SESSIONS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def count_parameters(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())
