"""SAGE's universal token: the split, a resumable training, the textual-inversion file."""

from __future__ import annotations

import pytest
import torch

from fissure.attacks import Attempt, Verifiers
from fissure.attacks.recipes import universal_token
from fissure.attacks.runner import run_universal_token
from fissure.attacks.universal import (
    CHECKPOINT,
    TokenSpace,
    save_textual_inversion,
    split_prompts,
    token_name,
)
from fissure.errors import FissureError
from fissure.results import ResultsStore
from fissure.world import class_names

from .conftest import STEPS, BrightnessJudge


def test_held_out_classes_are_never_trained_and_never_the_target():
    labels = list(class_names())
    split = split_prompts(labels, "cat", held_out=50)
    trained = {label for _, label in split.training}
    tested = {label for _, label in split.held_out}
    assert len(tested) == len(split.held_out) == 50
    assert not trained & tested and "cat" not in trained | tested
    assert trained | tested | {"cat"} == set(labels)
    assert split_prompts(labels[::-1], "cat", 50) == split  # the label order does not matter


def _attempts(seeds):
    return [Attempt("a photo of light", "light", 0, seed) for seed in seeds]


def test_a_killed_training_resumes_to_the_same_token(generator, surrogate, tmp_path, monkeypatch):
    attack = universal_token(
        generator, surrogate, target="dark", iterations=3, batch=2, step=0.02, steps=STEPS,
        views=False,
    )  # fmt: skip
    whole = attack.train(_attempts(range(4)), tmp_path / "whole", progress=False)
    render = attack.space.render
    calls = []

    def dies_on_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return render(*args, **kwargs)

    monkeypatch.setattr(attack.space, "render", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        attack.train(_attempts(range(4)), tmp_path / "killed", progress=False)
    assert torch.load(tmp_path / "killed" / CHECKPOINT)["iteration"] == 2
    monkeypatch.setattr(attack.space, "render", render)
    resumed = attack.train(_attempts(range(4)), tmp_path / "killed", progress=False)
    torch.testing.assert_close(resumed, whole)
    assert not torch.equal(whole, attack.start())  # it moved


@pytest.mark.parametrize("position", ["end", "start"])
def test_the_token_file_loads_into_stock_diffusers_as_the_same_conditioning(
    generator, position, tmp_path
):
    token = torch.randn(1, generator.text_encoder.config.hidden_size) * 0.02
    name = token_name("dark")
    save_textual_inversion(token, name, tmp_path / "token.safetensors")
    pipeline = generator.pipeline
    pipeline.load_textual_inversion(str(tmp_path / "token.safetensors"))
    space = TokenSpace(generator, position=position)
    try:
        with torch.no_grad():
            stock, _ = pipeline.encode_prompt(
                space.with_token("a photo of light", name), "cpu", 1,
                do_classifier_free_guidance=False,
            )  # fmt: skip
            ours = generator.encode("a photo of light", space._tokens(token))
        torch.testing.assert_close(ours.prompt_embeds, stock)
    finally:
        pipeline.unload_textual_inversion()


def test_held_out_findings_say_whether_the_target_appears(generator, surrogate, tmp_path):
    """The darkest token there is: every image turns "dark", which the verifier reads."""
    attack = universal_token(
        generator, surrogate, target="dark", iterations=1, batch=2, steps=STEPS, views=False
    )
    token = attack.space.origin()
    verifier = BrightnessJudge(surrogate.threshold)
    with ResultsStore(tmp_path) as store, store.campaign(attack.name) as campaign:
        writer = campaign.attack("tiny", attack.name, attack.settings())
        findings = run_universal_token(
            attack, token, _attempts([0, 1, 2]), writer, Verifiers({"v": verifier}), "tiny", False
        )
    assert len(findings) == 3
    for finding in findings:
        assert finding.target == "dark"
        assert finding.adversarial_prompt == f"{token_name('dark')} a photo of light"  # first
        reads_dark = finding.verifier_after["v"]["top"][0][0] == "dark"
        assert finding.verified == reads_dark
        assert -1 <= finding.token_effect["text_cosine"] <= 1


def test_a_targeted_token_starts_as_its_stretched_word_within_the_vocabulary_range(
    generator, surrogate
):
    attack = universal_token(generator, surrogate, target="dark", steps=STEPS, start_scale=3.0)
    table = generator.text_encoder.get_input_embeddings().weight.detach()
    ids = generator.tokenizer("dark", add_special_tokens=False).input_ids
    stretched = table[ids].mean(dim=0, keepdim=True) * 3
    low, high = table.min(dim=0).values, table.max(dim=0).values
    torch.testing.assert_close(attack.start(), stretched.clamp(low, high))
    untargeted = universal_token(generator, surrogate, target=None, steps=STEPS)
    torch.testing.assert_close(untargeted.start(), table.mean(dim=0, keepdim=True))


def test_an_unknown_target_is_one_line(generator, surrogate):
    with pytest.raises(FissureError, match="unknown class 'purple'"):
        universal_token(generator, surrogate, target="purple", steps=STEPS)
