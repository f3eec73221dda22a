"""One resumable training loop for every recipe in the zoo.

A recipe supplies a step function (step index → loss); the loop owns the
learning-rate schedule, the progress bar, and checkpoints written every few
minutes by atomic rename, so a killed run loses at most that much work. Step
functions draw their batch from a generator seeded by (seed, step), which makes
a resumed run see exactly the data an unbroken one would.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from fissure.atomic import atomic_write

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "log.jsonl"
REWARM_STEPS = 100
"""Steps over which the rate climbs back after a resume without optimiser state: from
fresh moments, Adam's first updates move every weight by about the full rate."""


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


def rewarmed(rate: float, step: int, resumed_at: int | None) -> float:
    """``rate``, scaled down linearly over the first :data:`REWARM_STEPS` after ``resumed_at``."""
    if resumed_at is None:
        return rate
    return rate * min(1.0, (step - resumed_at + 1) / REWARM_STEPS)


def step_generator(seed: int, step: int) -> torch.Generator:
    """The CPU generator of one step: its batch and noise depend on nothing else."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def _logged_step(line: str) -> float:
    """The step a log line records; infinity for a line a kill cut short."""
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return math.inf


def _forget_log_after(path: Path, step: int) -> None:
    """Drop the log lines past ``step``: the steps after a checkpoint run again on resume."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if line.endswith("\n") and _logged_step(line) <= step]
    if len(kept) != len(lines):
        with atomic_write(path) as partial:
            partial.write_text("".join(kept))


def train(
    modules: dict[str, nn.Module],
    optimizer: torch.optim.Optimizer,
    step_loss: Callable[[int], torch.Tensor],
    schedule: Schedule,
    folder: Path,
    description: str,
    progress: bool = True,
    checkpoint_seconds: float = 120.0,
    max_grad_norm: float | None = None,
    after_step: Callable[[int], None] | None = None,
    log_every: int = 0,
    deadline: float | None = None,
    position: int | None = None,
) -> tuple[int, float]:
    """Run ``step_loss`` from the last checkpoint in ``folder`` to ``schedule.steps``.

    ``max_grad_norm`` clips the gradient norm of every parameter the optimiser
    holds. ``after_step(step)`` runs after each optimiser step, before the step
    count advances (an exponential moving average updates here; put the averaged
    module in ``modules`` so checkpoints keep it). With ``log_every``, the mean
    loss of every ``log_every`` steps is appended to ``folder/log.jsonl`` (a resume
    drops the lines past its checkpoint, so every step is logged once).
    With ``deadline`` (a ``time.monotonic()`` value), the loop checkpoints and
    returns early once it has passed. ``position`` is the progress bar's line when
    several processes train at once. Returns the step reached and the seconds
    of training spent over all runs.
    """
    # Adam moments of parameters that get no gradient (unused embedding rows) decay
    # geometrically into subnormal floats after a few hundred steps, and CPU
    # arithmetic on subnormals is 10-100× slower: flush them to zero.
    torch.set_flush_denormal(True)
    checkpoint = folder / CHECKPOINT_NAME
    step, seconds, resumed_at = 0, 0.0, None
    if checkpoint.is_file():
        state = torch.load(checkpoint, map_location="cpu")
        for name, module in modules.items():
            module.load_state_dict(state["modules"][name])
        step, seconds = state["step"], state["seconds"]
        window = list(state.get("log_window", []))
        if "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
            resumed_at = state.get("rewarm_from")  # a kill inside a re-warm-up resumes it
            # another schedule length: climb to its rate, never jump (×6 at a finished end)
            if state.get("schedule_steps", schedule.steps) != schedule.steps:
                resumed_at = step
        else:  # a resume point carries weights only: fresh moments, so warm up again
            resumed_at = step
    else:
        window = []  # the losses since the last log line: a resume logs the same means
    _forget_log_after(folder / LOG_NAME, step)
    for module in modules.values():
        module.train()
    last_save = time.monotonic()
    bar = tqdm(
        total=schedule.steps,
        initial=step,
        desc=description,
        disable=not progress,
        mininterval=5,
        position=position,
    )
    while step < schedule.steps:
        started = time.monotonic()
        rate = rewarmed(schedule(step), step, resumed_at)
        for group in optimizer.param_groups:
            group["lr"] = rate
        loss = step_loss(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(
                [p for group in optimizer.param_groups for p in group["params"]], max_grad_norm
            )
        optimizer.step()
        if after_step is not None:
            after_step(step)
        step += 1
        seconds += time.monotonic() - started
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        if log_every:
            window.append(loss.item())
            if step % log_every == 0:
                folder.mkdir(parents=True, exist_ok=True)
                record = {
                    "step": step,
                    "loss": sum(window) / len(window),
                    "lr": rate,
                    "seconds": round(seconds, 1),
                }
                with open(folder / LOG_NAME, "a") as log:
                    log.write(json.dumps(record) + "\n")
                window.clear()
        out_of_time = deadline is not None and time.monotonic() > deadline
        if (
            time.monotonic() - last_save > checkpoint_seconds
            or step == schedule.steps
            or out_of_time
        ):
            folder.mkdir(parents=True, exist_ok=True)
            state = {
                "modules": {name: module.state_dict() for name, module in modules.items()},
                "optimizer": optimizer.state_dict(),
                "step": step,
                "seconds": seconds,
                "rewarm_from": resumed_at,
                "schedule_steps": schedule.steps,
                "log_window": window,
            }
            with atomic_write(checkpoint) as partial:
                torch.save(state, partial)
            last_save = time.monotonic()
        if out_of_time:
            break
    bar.close()
    for module in modules.values():
        module.eval()
    return step, seconds
