"""Shared fixtures: tiny random SD pipelines built from configs, saved once per session; one
torch thread for tests of bit-exactness."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fissure.zoo.tiny import build_tiny_pipeline


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test reaches the hub: a name that slips through to it fails at once (tests that
    check the online path set these themselves)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


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


@pytest.fixture
def one_thread():
    """Bit-exactness across batch partners holds per thread count: with several threads, CPU
    kernels may split a batch so that a row's last bits depend on its position in it.
    The test may set another count; the caller's comes back after it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
