"""One resumable training loop for every recipe in the zoo.

A recipe supplies a step function (step index → loss); the loop owns the
learning-rate schedule, the progress bar, and checkpoints written every few
minutes by atomic rename, so a killed run loses at most that much work. Step
functions draw their batch from a generator seeded by (seed, step), which makes
a resumed run see exactly the data an unbroken one would.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass(frozen=True)
class Schedule:
    """Linear warm-up to ``peak``, then cosine decay to ``floor × peak`` at ``steps``."""

    peak: float
    steps: int
    warmup_steps: int = 100
    floor: float = 0.05

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.peak * (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps))
        return self.peak * (
            self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * progress))
        )


def step_generator(seed: int, step: int) -> torch.Generator:
    """The CPU generator of one step: its batch and noise depend on nothing else."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def train(
    modules: dict[str, nn.Module],
    optimizer: torch.optim.Optimizer,
    step_loss: Callable[[int], torch.Tensor],
    schedule: Schedule,
    folder: Path,
    description: str,
    progress: bool = True,
    checkpoint_seconds: float = 120.0,
) -> tuple[int, float]:
    """Run ``step_loss`` from the last checkpoint in ``folder`` to ``schedule.steps``.

    Returns the step reached and the seconds of training spent over all runs.
    """
    checkpoint = folder / CHECKPOINT_NAME
    step, seconds = 0, 0.0
    if checkpoint.is_file():
        state = torch.load(checkpoint, map_location="cpu")
        for name, module in modules.items():
            module.load_state_dict(state["modules"][name])
        optimizer.load_state_dict(state["optimizer"])
        step, seconds = state["step"], state["seconds"]
    for module in modules.values():
        module.train()
    last_save = time.monotonic()
    bar = tqdm(
        total=schedule.steps, initial=step, desc=description, disable=not progress, mininterval=5
    )
    while step < schedule.steps:
        started = time.monotonic()
        for group in optimizer.param_groups:
            group["lr"] = schedule(step)
        loss = step_loss(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        seconds += time.monotonic() - started
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        if time.monotonic() - last_save > checkpoint_seconds or step == schedule.steps:
            folder.mkdir(parents=True, exist_ok=True)
            state = {
                "modules": {name: module.state_dict() for name, module in modules.items()},
                "optimizer": optimizer.state_dict(),
                "step": step,
                "seconds": seconds,
            }
            torch.save(state, checkpoint.with_suffix(".tmp"))
            checkpoint.with_suffix(".tmp").replace(checkpoint)
            last_save = time.monotonic()
    bar.close()
    for module in modules.values():
        module.eval()
    return step, seconds
