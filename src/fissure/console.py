"""Shared plumbing for CLI commands: quiet libraries and one-line user errors."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TypeVar

import typer

from fissure.errors import FissureError

F = TypeVar("F", bound=Callable)

# Library chatter (loading bars, fallback warnings) stays off the user's terminal;
# these must be set before transformers or diffusers is first imported.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def counted(count: int, noun: str) -> str:
    """ "1 image", "3 images": a count with its noun, for messages."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def quiet_libraries() -> None:
    """Turn off the loading progress bars of diffusers and transformers, and a warning
    diffusers' hub calls raise inside huggingface_hub that no user can act on."""
    import warnings

    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message="The `local_dir_use_symlinks` argument is deprecated")


def user_errors(command: F) -> F:
    """Print a :class:`FissureError` as one line and exit with status 2, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except FissureError as error:
            typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


def require_finite(**values: float | None) -> None:
    """Refuse NaN and infinite option values (typer's min/max checks let NaN through)."""
    import math

    from fissure.errors import FissureError

    for name, value in values.items():
        if value is not None and not math.isfinite(value):
            option = "--" + name.replace("_", "-")
            raise FissureError(f"{option} must be a finite number, not {value}")
