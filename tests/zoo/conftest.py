"""Watch a recipe's training loop: the steps its step function runs, and a kill at one of them."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest

from fissure.zoo import training_loop


@pytest.fixture
def watch_steps(monkeypatch) -> Callable[..., list[int]]:
    """``watch(module, kill_at=None)`` patches ``module.train`` and returns the list that every
    step index its step function receives goes into. With ``kill_at``, that step raises
    KeyboardInterrupt before it runs, as Ctrl-C would. A later watch replaces an earlier one.
    """

    def watch(module: ModuleType, kill_at: int | None = None) -> list[int]:
        steps: list[int] = []

        def watched_train(modules, optimizer, step_loss, *args, **kwargs):
            def watched_loss(step: int):
                if step == kill_at:
                    raise KeyboardInterrupt
                steps.append(step)
                return step_loss(step)

            return training_loop.train(modules, optimizer, watched_loss, *args, **kwargs)

        monkeypatch.setattr(module, "train", watched_train)
        return steps

    return watch
