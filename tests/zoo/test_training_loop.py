"""The zoo's training loop: a killed run resumes where its checkpoint left it, logging each step once."""

from __future__ import annotations

import json

import pytest
import torch

from fissure.zoo.training_loop import CHECKPOINT_NAME, LOG_NAME, REWARM_STEPS, Schedule, train


class Killed(Exception):
    pass


def _run(
    folder, kill_at: int | None = None, checkpoint_seconds: float = 1e9
) -> tuple[list[int], torch.nn.Linear]:
    """Train 10 steps; returns the steps the step function ran and the trained weights."""
    torch.manual_seed(0)
    weight = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(weight.parameters(), lr=0.1)
    steps: list[int] = []

    def step_loss(step: int) -> torch.Tensor:
        if step == kill_at:
            raise Killed
        steps.append(step)
        return weight(torch.ones(1, 2)).square().sum()

    train(
        {"weight": weight}, optimizer, step_loss, Schedule(0.1, 10, warmup_steps=1), folder,
        "test", progress=False, checkpoint_seconds=checkpoint_seconds, log_every=2,
    )  # fmt: skip
    return steps, weight


def _logged_steps(folder) -> list[int]:
    return [json.loads(line)["step"] for line in (folder / LOG_NAME).read_text().splitlines()]


def test_a_resumed_run_logs_each_step_once(tmp_path):
    with pytest.raises(Killed):
        _run(tmp_path, kill_at=7)  # no checkpoint yet: steps 1-7 run again
    assert _logged_steps(tmp_path) == [2, 4, 6]
    with open(tmp_path / LOG_NAME, "a") as log:
        log.write('{"step": 8, "lo')  # a line the kill cut short
    steps, _ = _run(tmp_path)
    assert steps == list(range(10))
    assert _logged_steps(tmp_path) == [2, 4, 6, 8, 10]


def test_a_resume_runs_the_steps_after_its_checkpoint_to_the_unbroken_weights(tmp_path):
    _, unbroken = _run(tmp_path / "unbroken")
    with pytest.raises(Killed):
        _run(tmp_path, kill_at=7, checkpoint_seconds=0)  # a checkpoint after every step
    steps, resumed = _run(tmp_path)
    assert steps == [7, 8, 9]  # a restart from step 0 would end with the same weights
    assert _logged_steps(tmp_path) == [2, 4, 6, 8, 10]
    assert torch.equal(resumed.weight, unbroken.weight) and torch.equal(resumed.bias, unbroken.bias)
    assert _logged(tmp_path, "loss") == _logged(tmp_path / "unbroken", "loss")  # same means


def _logged(folder, key: str) -> dict[int, float]:
    lines = (folder / LOG_NAME).read_text().splitlines()
    return {json.loads(line)["step"]: json.loads(line)[key] for line in lines}


def test_a_resume_without_optimiser_state_warms_the_rate_up_again(tmp_path):
    """A resume point carries weights only; a resume with moments keeps the schedule's rate."""
    with pytest.raises(Killed):
        _run(tmp_path, kill_at=4, checkpoint_seconds=0)
    state = torch.load(tmp_path / CHECKPOINT_NAME)
    with_moments = tmp_path / "with-moments"
    with_moments.mkdir()
    torch.save(state, with_moments / CHECKPOINT_NAME)
    del state["optimizer"]
    torch.save(state, tmp_path / CHECKPOINT_NAME)
    _run(tmp_path)
    _run(with_moments)
    schedule = Schedule(0.1, 10, warmup_steps=1)
    assert _logged(with_moments, "lr")[6] == pytest.approx(schedule(5))
    assert _logged(tmp_path, "lr")[6] == pytest.approx(schedule(5) * 2 / REWARM_STEPS)


def test_a_longer_schedule_on_resume_climbs_to_its_rate(tmp_path):
    """--steps unet=N on resume moved the rate from the old schedule's end to the new one's
    middle in one step (×6 for a finished stage extended), onto converged weights."""
    with pytest.raises(Killed):
        _run(tmp_path, kill_at=4, checkpoint_seconds=0)
    state = torch.load(tmp_path / CHECKPOINT_NAME)
    state["schedule_steps"] = 5  # trained so far on a 5-step schedule
    torch.save(state, tmp_path / CHECKPOINT_NAME)
    _run(tmp_path)
    schedule = Schedule(0.1, 10, warmup_steps=1)
    assert _logged(tmp_path, "lr")[6] == pytest.approx(schedule(5) * 2 / REWARM_STEPS)


def test_a_kill_inside_the_re_warm_up_resumes_it(tmp_path):
    """The checkpoints after a resume point kept moments but not the re-warm-up: a kill
    there jumped straight to the full rate, and the weights left the unbroken run's."""
    with pytest.raises(Killed):
        _run(tmp_path / "unbroken", kill_at=4, checkpoint_seconds=0)
    state = torch.load(tmp_path / "unbroken" / CHECKPOINT_NAME)
    del state["optimizer"]  # what a resume point holds
    (tmp_path / "killed").mkdir()
    torch.save(state, tmp_path / "unbroken" / CHECKPOINT_NAME)
    torch.save(state, tmp_path / "killed" / CHECKPOINT_NAME)
    (tmp_path / "killed" / LOG_NAME).write_text((tmp_path / "unbroken" / LOG_NAME).read_text())
    _, unbroken = _run(tmp_path / "unbroken")
    with pytest.raises(Killed):
        _run(tmp_path / "killed", kill_at=7, checkpoint_seconds=0)
    _, resumed = _run(tmp_path / "killed")
    assert _logged(tmp_path / "killed", "lr") == _logged(tmp_path / "unbroken", "lr")
    assert torch.equal(resumed.weight, unbroken.weight)
