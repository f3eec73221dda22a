"""A tiny emoji-sd trained once per session by the real recipe, and a tiny verifier."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fissure.judges.emoji import EmojiJudge
from fissure.world import class_names
from fissure.zoo.emoji_sd.config import tiny_config
from fissure.zoo.emoji_sd.recipe import train_emoji_sd


def run_without_fissure(code: str, timeout: float = 300) -> None:
    """Run ``code`` in a fresh Python outside the repo; it must print "ok" and never import fissure."""
    check = '\nimport sys\nassert "fissure" not in sys.modules\nprint("ok")\n'
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code) + check],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ok" in result.stdout


def make_verifier() -> EmojiJudge:
    torch.manual_seed(0)
    return EmojiJudge(class_names(), "convnet", {"channels": [8, 16]}).eval()


@pytest.fixture(scope="session")
def verifier_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("verifier")
    make_verifier().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> dict:
    """Every stage of the tiny recipe, end to end (gates fail at toy sizes: forced on)."""
    out = tmp_path_factory.mktemp("emoji-sd-tiny")
    lines: list[str] = []
    pipeline = train_emoji_sd(
        out,
        tiny_config(),
        verifier=make_verifier(),
        force=True,
        progress=False,
        checkpoint_seconds=0,
        log=lines.append,
    )
    return {"out": out, "pipeline": pipeline, "log": lines}
