"""Shared fixtures: tiny random SD pipelines built from configs, saved once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from fissure.zoo.tiny import build_tiny_pipeline


@pytest.fixture(scope="session", params=["sd1", "sd2"])
def tiny_pipeline_dir(request, tmp_path_factory) -> Path:
    """A saved SD-1.x-shaped (epsilon) or SD-2.x-shaped (v-prediction) pipeline folder."""
    folder = tmp_path_factory.mktemp(f"tiny-{request.param}")
    build_tiny_pipeline(request.param).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_sd1_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-sd1-only")
    build_tiny_pipeline("sd1").save_pretrained(folder)
    return folder
