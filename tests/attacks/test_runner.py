"""run_attack: each finding records what its attempt's search did, as its files and judges say."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fissure.attacks import Attack, Attempt, Verifiers, run_attack, sage_latent
from fissure.attacks.verdicts import judge_view
from fissure.errors import FissureError
from fissure.results import AttackWriter, ResultsStore

from .conftest import STEPS, BlurredBrightnessJudge, BrightnessJudge

PROMPT = "a photo of light"


class FlakyJudge(BrightnessJudge):
    """A :class:`BrightnessJudge` whose ``fail_on``-th reading raises, as a GPU out of memory
    does once in a long campaign."""

    def __init__(self, threshold: float, fail_on: int) -> None:
        super().__init__(threshold)
        self.fail_on, self.calls = fail_on, 0

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("CUDA out of memory")
        return super().logits(images)


@contextmanager
def _writer(folder: Path, attack: Attack) -> Iterator[AttackWriter]:
    """The attack on model "tiny" in a campaign of its own, as `fissure attack` opens it."""
    with ResultsStore(folder) as store, store.campaign(attack.name) as campaign:
        yield campaign.attack("tiny", attack.name, attack.settings())


def _recorded(folder: Path) -> tuple[list, list]:
    """Every finding and failed attempt the store at ``folder`` holds."""
    with ResultsStore(folder) as store:
        return store.findings(), store.failures()


def test_a_finding_records_its_latent_delta_success_and_clean_verdict(
    generator, surrogate, tmp_path
):
    """ "light" outlasts 3 steps; "grey", never the verifier's first class, is a natural
    failure and not attacked. Without SameNorm ‖z + δ‖² differs from ‖z‖², and without
    views success is the surrogate's plain vote."""
    attack = sage_latent(
        generator, surrogate, steps=STEPS, k=1, step=0.1, max_iterations=3, batch_size=2,
        keep="none", views=False,
    )  # fmt: skip
    verifier = BrightnessJudge(surrogate.threshold + 0.005)  # reads otherwise than the surrogate
    attempts = [Attempt(PROMPT, "light", 0, seed) for seed in (0, 1)]
    attempts += [Attempt(PROMPT, "grey", 2, seed) for seed in (2, 3)]
    with _writer(tmp_path, attack) as store:
        findings = run_attack(
            attack, attempts, store, Verifiers({"bright": verifier}), "tiny", progress=False
        )
    assert sorted((f.seed, f.success, f.iterations, f.clean_shows_target) for f in findings) == [
        (0, False, 3, True), (1, False, 3, True), (2, False, 0, False), (3, False, 0, False),
    ]  # fmt: skip
    clean = generator.sample(generator.initial_latents(range(4)), PROMPT, steps=STEPS).images
    for finding in findings:
        delta = load_file(tmp_path / finding.files["delta"])["delta"]
        latent = generator.initial_latents([finding.seed])[0] + delta
        assert finding.typicality["squared_norm"] == pytest.approx(
            float(latent.double().square().sum()), abs=0.01
        )
        assert finding.delta_linf == round(float(delta.abs().max()), 4)
        assert (finding.delta_linf > 0) == finding.clean_shows_target
        assert finding.delta_l2 == round(float(delta.norm()), 4)
        assert finding.success == (finding.surrogate_after["target"] < 0.1)
        probabilities = verifier(clean[finding.seed : finding.seed + 1])[0]
        expected = judge_view(verifier.labels, probabilities, finding.target)
        before = finding.verifier_before["bright"]
        assert before["target"] == pytest.approx(expected["target"], abs=1e-3)
        assert [label for label, _ in before["top"]] == [label for label, _ in expected["top"]]


def test_a_retrained_judge_does_not_resume_the_old_ones_findings(generator, tmp_path):
    """Judges were bound by name only: retrained weights mixed two versions' verdicts."""
    surrogate = BlurredBrightnessJudge(0.5)
    attack = sage_latent(generator, surrogate, steps=STEPS, max_iterations=0, batch_size=1)
    verifier = BlurredBrightnessJudge(0.5)
    verifier.blur.weight.data *= 0.99  # a network of its own: the surrogate's is refused
    attempts = [Attempt(PROMPT, "light", 0, 0)]
    with _writer(tmp_path, attack) as store:
        run_attack(attack, attempts, store, Verifiers({"v": verifier}), "tiny", progress=False)
    verifier.blur.weight.data *= 1.01
    changed = "other settings \\(verifier_weights\\)"
    with (
        _writer(tmp_path, attack) as store,
        pytest.raises(FissureError, match=changed),
    ):
        run_attack(attack, attempts, store, Verifiers({"v": verifier}), "tiny", progress=False)
    surrogate.blur.weight.data *= 1.01
    with (
        pytest.raises(FissureError, match="other settings \\(surrogate_weights\\)"),
        _writer(tmp_path, attack),
    ):
        pass


def test_a_verifier_without_the_target_is_refused_before_any_attack(generator, surrogate, tmp_path):
    """The Python API attacked for minutes, then failed with ValueError in the verdict."""
    attack = sage_latent(generator, surrogate, steps=STEPS, max_iterations=1, batch_size=1)
    other = BrightnessJudge(0.5)
    other.labels = ["bright", "dark", "grey"]
    with (
        _writer(tmp_path, attack) as store,
        pytest.raises(FissureError, match="the verifier other has no class 'light'"),
    ):
        run_attack(
            attack, [Attempt(PROMPT, "light", 0, 0)], store, Verifiers({"other": other}), "tiny"
        )
    assert _recorded(tmp_path) == ([], [])  # refused before any attempt ran


def test_a_natural_failure_is_recorded_not_attacked(generator, surrogate, tmp_path):
    """The verifiers never saw the target, so every iteration spent on it was wasted."""
    attack = sage_latent(generator, surrogate, steps=STEPS, k=1, max_iterations=5, batch_size=2)
    sees_dark = BrightnessJudge(threshold=10.0)  # reads "dark" first in every image
    with _writer(tmp_path, attack) as store:
        (finding,) = run_attack(
            attack, [Attempt(PROMPT, "light", 0, 0)], store, Verifiers({"v": sees_dark}),
            "tiny", progress=False,
        )  # fmt: skip
    assert not finding.clean_shows_target and finding.iterations == 0
    assert finding.delta_linf == 0 and finding.target_trace[:1] == finding.target_trace
    assert finding.unet_evals == STEPS  # the clean image's render; no backward pass before it
    assert finding.files["after"] == finding.files["before"]  # δ = 0: one image, stored once
    assert (tmp_path / finding.files["after"]).is_file()


def test_a_verifier_with_the_surrogates_weights_is_refused_however_named(generator, tmp_path):
    """Only names were compared (in the CLI): a bundled judge given by its folder path
    verified the surrogate's own failures."""
    import copy

    surrogate = BlurredBrightnessJudge(0.5)
    attack = sage_latent(generator, surrogate, steps=STEPS, max_iterations=1, batch_size=1)
    attempts = [Attempt(PROMPT, "light", 0, 0)]
    for verifier in (surrogate, copy.deepcopy(surrogate)):
        with (
            _writer(tmp_path, attack) as store,
            pytest.raises(FissureError, match="a verifier must never be in the loss"),
        ):
            run_attack(attack, attempts, store, Verifiers({"v": verifier}), "tiny")
    assert _recorded(tmp_path) == ([], [])  # refused before any attempt ran


def test_an_attempt_whose_index_is_not_its_target_is_refused(generator, surrogate, tmp_path):
    """The loss pushed class 1 ("dark") while the verdicts read "light"."""
    attack = sage_latent(generator, surrogate, steps=STEPS, max_iterations=1, batch_size=1)
    with (
        _writer(tmp_path, attack) as store,
        pytest.raises(FissureError, match="target 'light' is not the surrogate's label 1"),
    ):
        run_attack(
            attack, [Attempt(PROMPT, "light", 1, 0)], store, Verifiers({"v": BrightnessJudge(0.5)}),
            "tiny",
        )  # fmt: skip


def test_a_goal_threshold_other_than_the_verifiers_resumes(generator, surrogate, tmp_path):
    """Goal and verifiers both wrote "absent_below": the verifiers' overwrote the goal's, and
    the same command could then never resume its folder."""
    attack = sage_latent(
        generator, surrogate, steps=STEPS, max_iterations=0, batch_size=1, absent_below=0.2
    )
    attempts = [Attempt(PROMPT, "light", 0, seed) for seed in (0, 1)]
    verifiers = Verifiers({"v": BrightnessJudge(0.6)}, absent_below=0.1)
    with _writer(tmp_path, attack) as store:
        run_attack(attack, attempts[:1], store, verifiers, "tiny", progress=False)
    with _writer(tmp_path, attack) as store:
        run_attack(attack, attempts, store, verifiers, "tiny", progress=False)
        assert len(store.findings()) == 2


def test_an_attempt_that_raises_is_recorded_as_failed_and_the_run_goes_on(
    generator, surrogate, tmp_path
):
    """One bad batch ended the whole run with a traceback; now its attempt is recorded with
    its error, the others are attacked, and running again retries only it."""
    attack = sage_latent(generator, surrogate, steps=STEPS, max_iterations=0, batch_size=1)
    # each attempt is read twice (its clean image, then its result): the 3rd reading is the
    # clean image of seed 1, in the middle of the search
    verifier = FlakyJudge(surrogate.threshold, fail_on=3)
    attempts = [Attempt(PROMPT, "light", 0, seed) for seed in range(3)]
    with _writer(tmp_path, attack) as store:
        findings = run_attack(
            attack, attempts, store, Verifiers({"v": verifier}), "tiny", progress=False
        )
        key = store.key(attempts[1])
    assert [f.seed for f in findings] == [0, 2]
    recorded, (failure,) = _recorded(tmp_path)
    assert [f.seed for f in recorded] == [0, 2]
    assert (failure.key, failure.error) == (key, "RuntimeError: CUDA out of memory")

    readings = verifier.calls
    with _writer(tmp_path, attack) as store:
        findings = run_attack(
            attack, attempts, store, Verifiers({"v": verifier}), "tiny", progress=False
        )
    assert sorted(f.seed for f in findings) == [0, 1, 2]
    assert verifier.calls - readings == 2  # seed 1's two readings: nothing else redone
    recorded, failures = _recorded(tmp_path)
    assert len(recorded) == 3 and failures == []
