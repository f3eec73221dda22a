"""The world's fingerprint names scene-bank caches: another world must not reuse them."""

from __future__ import annotations

import pytest

from fissure.world import captions
from fissure.world.fingerprint import world_fingerprint
from fissure.zoo.scene_bank import BankSpec


@pytest.fixture
def fresh_fingerprint():
    world_fingerprint.cache_clear()
    yield
    world_fingerprint.cache_clear()


def test_a_changed_caption_template_changes_the_bank_cache_name(monkeypatch, fresh_fingerprint):
    spec = BankSpec(first_seed=0, count=2)
    before, key = world_fingerprint(), spec.key()
    world_fingerprint.cache_clear()
    assert world_fingerprint() == before and spec.key() == key  # a pure function of the world
    world_fingerprint.cache_clear()
    monkeypatch.setattr(captions, "TEMPLATES", ("a sketch of {}",) * len(captions.TEMPLATES))
    assert world_fingerprint() != before and spec.key() != key
