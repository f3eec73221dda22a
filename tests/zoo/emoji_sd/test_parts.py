"""Pieces of the recipe checked against what they must compute."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from fissure.zoo.emoji_sd.clip_stage import build_clip, text_encoder_from_clip, widen_context
from fissure.zoo.emoji_sd.common import ExponentialAverage, StageRecord
from fissure.zoo.emoji_sd.config import EmojiSdConfig, default_config, tiny_config, with_steps
from fissure.zoo.emoji_sd.evaluate import (
    EVALUATION,
    PROBE,
    RETIRED_SEEDS,
    Evaluation,
    accepted_classes,
    pair_found,
    pair_prompts,
)
from fissure.zoo.emoji_sd.gates import psnr, retrieval
from fissure.zoo.emoji_sd.model_card import update_calibration
from fissure.zoo.emoji_sd.recipe import STAGES
from fissure.zoo.emoji_sd.unet_stage import min_snr_weights, training_scheduler
from fissure.zoo.tiny import build_byte_tokenizer


def test_retrieval_of_a_perfect_and_a_confused_similarity():
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    perfect = torch.nn.functional.one_hot(labels, 3).float()
    scores = retrieval(perfect, labels)
    assert scores["text_to_image_top1"] == scores["image_to_text_top1"] == 1.0
    assert scores["rounds"] == 2 and scores["classes"] == 3
    confused = perfect[:, [1, 0, 2]]  # classes 0 and 1 swapped
    scores = retrieval(confused, labels)
    assert scores["text_to_image_top1"] == pytest.approx(1 / 3)
    assert scores["image_to_text_top1"] == pytest.approx(1 / 3)


def test_psnr_of_a_known_error():
    a = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    b = torch.full_like(a, 255)
    assert psnr(a, b) == pytest.approx(0.0, abs=1e-4)
    assert psnr(a, a) > 90


def test_min_snr_weights_cap_the_signal_to_noise_ratio():
    scheduler = training_scheduler(default_config().unet)
    timesteps = torch.tensor([0, 100, 500, 999])
    weights = min_snr_weights(scheduler.alphas_cumprod, timesteps, 5.0)
    alpha = scheduler.alphas_cumprod[timesteps]
    snr = alpha / (1 - alpha)
    assert torch.allclose(weights, torch.minimum(snr, torch.tensor(5.0)) / snr)
    assert weights[0] < 0.01 and weights[-1] == 1.0  # low noise down-weighted, high noise kept
    assert torch.equal(min_snr_weights(scheduler.alphas_cumprod, timesteps, None), torch.ones(4))


def test_exponential_average_follows_the_model_with_warm_up():
    model = nn.Linear(2, 1)
    average = ExponentialAverage(model, decay=0.9)
    before = average.average.weight.clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    average.update(model, step=0)  # warm-up decay min(0.9, 1/10) = 0.1
    assert torch.allclose(average.average.weight, 0.1 * before + 0.9 * model.weight)
    assert not any(p.requires_grad for p in average.average.parameters())


def test_fingerprints_ignore_steps_and_gates_but_not_architecture():
    config = tiny_config()
    assert with_steps(config, clip=99, unet=7).fingerprint("unet") == config.fingerprint("unet")
    gated = dataclasses.replace(config, vae=dataclasses.replace(config.vae, gate_retention=0.5))
    assert gated.fingerprint("vae") == config.fingerprint("vae")
    channels = 2 * config.vae.latent_channels
    wider = dataclasses.replace(
        config, vae=dataclasses.replace(config.vae, latent_channels=channels)
    )
    assert wider.fingerprint("vae") != config.fingerprint("vae")
    assert wider.fingerprint("unet") != config.fingerprint("unet")  # later stages depend on it
    assert wider.fingerprint("clip") == config.fingerprint("clip")
    assert EmojiSdConfig.from_dict(config.to_dict()) == config


def test_a_later_setting_at_its_neutral_value_keeps_old_fingerprints():
    tiny = tiny_config()
    neutral = dataclasses.replace(tiny.unet, attention_levels=None, context_length=None)
    config = dataclasses.replace(tiny, unet=neutral)
    settings = config.to_dict()
    for stage, key in [
        ("decoder", "extra_layers"),
        ("unet", "attention_levels"),
        ("unet", "context_length"),
    ]:
        del settings[stage][key]  # a work folder from before these settings
    old = EmojiSdConfig.from_dict(settings)
    assert old == config  # a missing later setting is its neutral value, not today's default
    assert all(old.fingerprint(stage) == config.fingerprint(stage) for stage in STAGES)
    deeper = dataclasses.replace(
        config, decoder=dataclasses.replace(config.decoder, extra_layers=1)
    )
    assert deeper.fingerprint("decoder") != config.fingerprint("decoder")
    assert deeper.fingerprint("unet") == config.fingerprint("unet")  # same latents
    coarse = dataclasses.replace(
        config, unet=dataclasses.replace(config.unet, attention_levels=(1,))
    )
    assert coarse.fingerprint("unet") != config.fingerprint("unet")
    assert tiny.fingerprint("unet") != config.fingerprint("unet")  # its prompts are widened
    assert tiny.fingerprint("decoder") == config.fingerprint("decoder")


@pytest.mark.parametrize("kind", ["recipe", "stage record"])
def test_a_save_cut_short_leaves_the_previous_file_readable(kind, tmp_path, monkeypatch):
    before, after, load = {
        "recipe": (tiny_config(), default_config(), EmojiSdConfig.load),
        "stage record": (StageRecord("vae", 1, 2.0), StageRecord("vae", 5, 9.0), StageRecord.load),
    }[kind]
    before.save(tmp_path)
    write_text = Path.write_text

    def cut_short(path: Path, text: str) -> None:
        write_text(path, text[: len(text) // 2])
        raise OSError("killed mid-write")

    monkeypatch.setattr(Path, "write_text", cut_short)
    with pytest.raises(OSError):
        after.save(tmp_path)
    assert load(tmp_path) == before


def test_widening_the_text_tower_keeps_every_output_of_a_prompt_that_fitted():
    tokenizer = build_byte_tokenizer(16)
    torch.manual_seed(0)
    clip = build_clip(tiny_config().clip, tokenizer).eval()
    wide_tokenizer, wide_clip = widen_context(tokenizer, clip, 40)
    assert tokenizer.model_max_length == 16  # the originals are left as they were
    assert clip.config.text_config.max_position_embeddings == 16
    prompts = ["a cat", "a photo of a dog"]

    def ids(tokenizer_):
        return tokenizer_(prompts, padding="max_length", return_tensors="pt").input_ids

    narrow, wide = ids(tokenizer), ids(wide_tokenizer)
    assert wide.shape == (2, 40)
    with torch.no_grad():
        hidden = text_encoder_from_clip(clip)(narrow)[0]
        wide_hidden = text_encoder_from_clip(wide_clip)(wide)[0]
        torch.testing.assert_close(wide_hidden[:, :16], hidden)
        torch.testing.assert_close(
            wide_clip.get_text_features(input_ids=wide).pooler_output,
            clip.get_text_features(input_ids=narrow).pooler_output,
        )
    assert widen_context(tokenizer, clip, 16) == (tokenizer, clip)
    with pytest.raises(ValueError, match="narrow"):
        widen_context(tokenizer, clip, 8)


def test_attention_levels_choose_the_attending_resolutions():
    from fissure.zoo.emoji_sd.unet_stage import build_unet

    stage = tiny_config().unet
    default = build_unet(dataclasses.replace(stage, attention_levels=None), 4, 32).config
    assert default.down_block_types == (
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    )
    assert default.up_block_types == ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")
    coarse = build_unet(dataclasses.replace(stage, attention_levels=(1,)), 4, 32).config
    assert coarse.down_block_types == ("DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")
    assert coarse.up_block_types == ("UpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")


def test_deepen_keeps_the_function_and_adds_trainable_depth():
    from fissure.zoo.emoji_sd.vae_stage import build_vae, deepen

    torch.manual_seed(0)
    vae = build_vae(tiny_config().vae).eval()
    deeper = deepen(vae, 1).eval()
    assert deeper.config.layers_per_block == vae.config.layers_per_block + 1
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        latents = vae.encode(images).latent_dist.mean
        assert torch.equal(deeper.encode(images).latent_dist.mean, latents)
        assert torch.allclose(deeper.decode(latents).sample, vae.decode(latents).sample, atol=1e-6)
    new_conv = deeper.decoder.up_blocks[0].resnets[-1].conv2
    deeper.decode(latents).sample.square().mean().backward()
    assert new_conv.weight.grad is not None and new_conv.weight.grad.abs().sum() > 0
    assert deepen(vae, 0) is vae


def test_pairs_are_fixed_distinct_and_apart_from_the_probes():
    """random.Random(2024).sample drew flamingo/peanut twice and three pairs both ways round,
    and Random.sample is not promised to stay the same across Python versions."""
    pairs = pair_prompts(200, EVALUATION.pair_draw)
    assert pairs == pair_prompts(200, EVALUATION.pair_draw)
    assert pairs[:50] == pair_prompts(50, EVALUATION.pair_draw)
    assert len({frozenset(pair) for pair in pairs}) == 200
    assert all(a != b for a, b in pairs)
    assert pairs[:3] == [("sandal", "swan"), ("elephant", "horse"), ("top hat", "bird")]
    probe = {frozenset(pair) for pair in pair_prompts(200, PROBE.pair_draw)}
    assert (
        len(probe & {frozenset(pair) for pair in pairs}) < 20
    )  # 6 here; ~7.5 expected by chance of 5,356
    assert len({EVALUATION.singles, EVALUATION.pairs, PROBE.singles, PROBE.pairs}) == 4
    assert EVALUATION.pair_draw != PROBE.pair_draw and EVALUATION.scenes != PROBE.scenes
    # seeds that chose a recipe or a step before stop 27 (the probes still do)
    assert not {EVALUATION.singles, EVALUATION.pairs} & RETIRED_SEEDS


def test_a_polysemous_prompt_accepts_every_class_it_names():
    assert accepted_classes("a photo of a mouse") == [frozenset({"mouse", "computer mouse"})]
    assert accepted_classes("a photo of a computer mouse") == [frozenset({"computer mouse"})]
    pair = accepted_classes("a bat and a lion")
    assert pair_found(("lion", "cricket game"), pair) and pair_found(("bat", "lion"), pair)
    assert not pair_found(("lion", "tiger"), pair)
    both = accepted_classes("a mouse and a computer mouse")
    assert pair_found(("computer mouse", "mouse"), both)
    assert not pair_found(("computer mouse", "lion"), both)  # one image, one mention


def _evaluation(**changes) -> Evaluation:
    scores = dict(single_top1_strict=0.9, classes_at_50_strict=0.96, pairs_top2_strict=0.61)
    return dataclasses.replace(
        Evaluation(
            0.9,
            0.96,
            0.61,
            0.71,
            0.3,
            {},
            20,
            200,
            25,
            7.5,
            1.0,
            clip_scenes=3000,
            scheduler="DDIMScheduler",
            images="8-bit",
        ),
        **{**scores, **changes},
    )


def test_evaluation_bars_hold_the_prompted_class():
    """The bars read 'either meaning' of polysemous names before: met at 86.3%/98.1%, where
    the prompted class alone gave 83.7%/94.2%."""
    evaluation = _evaluation()
    assert evaluation.passed()  # CLIP on generated images has no bar
    assert evaluation.checks()["clip_generated_text_to_image_top1"] == (0.3, None, None)
    assert evaluation.checks()["single_top1"] == (0.9, None, None)
    assert not _evaluation(pairs_top2_strict=0.5).passed()
    assert not _evaluation(single_top1_strict=0.837, classes_at_50_strict=0.942).passed()
    assert not _evaluation(clip_text_to_image_top1=None).passed()
    saved = evaluation.to_dict()
    assert saved["passed"] and saved["checks"]["pairs_top2_strict"] == [0.61, 0.6, True]


def test_only_the_bars_settings_measure_the_bars():
    """Fewer seeds, another verifier or fewer CLIP scenes are no bar measurement for the card."""
    evaluation = _evaluation()
    assert evaluation.at_the_bars_settings()
    changes = [{"seeds": 4}, {"verifier": "emoji/resnet"}, {"clip_scenes": 40}]
    changes += [{"dtype": "bfloat16"}, {"seed_plan": "probe"}]  # a gate, or a faster look
    changes += [{"seed_plan": "evaluation"}]  # the retired seeds, which choices had read
    changes += [{"scheduler": "PNDMScheduler"}]  # a --model folder's own, not the bars' DDIM
    changes += [{"images": ""}]  # floats, not the 8-bit images a user keeps
    for change in changes:
        assert not dataclasses.replace(evaluation, **change).at_the_bars_settings(), change


def test_a_run_replaces_the_shipped_model_only_if_it_loses_no_strict_score():
    shipped = _evaluation(single_top1_strict=0.83, pairs_top2_strict=0.38, scheduler="")
    better, lines = _evaluation(pairs_top2_strict=0.55).against(shipped)
    assert better is True and lines[0] == "bars met: 3 (shipped 2)"  # DDIM predates the record
    assert "pairs_top2_strict: 55.00% (shipped 38.00%, +17.00%)" in lines
    worse_singles = _evaluation(single_top1_strict=0.82, pairs_top2_strict=0.55)
    assert worse_singles.against(shipped)[0] is False  # more pairs, but a class score lost
    assert _evaluation(pairs_top2_strict=0.37).against(shipped)[0] is False
    assert _evaluation(pairs_top2_strict=None).against(shipped)[0] is False
    assert _evaluation().against(_evaluation(weights="ab"))[0] is True  # a tie keeps its place


def test_the_shipping_rule_cannot_tell_unlike_measurements():
    """It said "may replace it" for a run sampled by PNDM, or scored on floats, and for
    the shipped weights measured a second time."""
    shipped = _evaluation(pairs_top2_strict=0.38)
    for change in ({"seeds": 4}, {"scheduler": "PNDMScheduler"}, {"images": ""}):
        verdict, lines = _evaluation(**change, pairs_top2_strict=0.9).against(shipped)
        assert verdict is None and any(line.startswith("measured differently") for line in lines)
    floats = dataclasses.replace(shipped, images="")  # the bundled v1's record
    verdict, lines = _evaluation(pairs_top2_strict=0.9).against(floats)
    assert verdict is None and "measured differently: images unrecorded → 8-bit" in lines
    again = _evaluation(weights="0123456789abcdef")
    assert again.against(dataclasses.replace(again, pairs_top2_strict=0.1)) == (
        None,
        ["the shipped weights themselves"],
    )


def test_the_shipped_model_carries_the_measurement_behind_its_card():
    from fissure.digest import image_weights_digest
    from fissure.models import load_pipeline
    from fissure.zoo import bundled_model_path

    folder = bundled_model_path("emoji-sd")
    shipped = Evaluation.load(folder / "evaluation.json")
    assert shipped.weights == image_weights_digest(load_pipeline())
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert f"weights `{shipped.weights}`" in card
    for name, (score, _, _) in shipped.checks().items():
        assert f"(`{name}`) | {score:.2%} |" in card, name


def test_judge_consistency_is_zero_on_identical_images_and_has_gradients():
    from fissure.zoo.emoji_sd.vae_stage import JudgeConsistency

    from .conftest import make_verifier

    loss = JudgeConsistency(make_verifier())
    images = torch.rand(4, 3, 64, 64)
    assert loss(images, images).abs() < 1e-6
    changed = images.flip(-2).requires_grad_(True)
    value = loss(changed, images)
    value.backward()
    assert value > 0 and changed.grad is not None and changed.grad.abs().sum() > 0


def test_the_verifier_never_enters_a_training_loss(tmp_path):
    from fissure.errors import FissureError
    from fissure.zoo.emoji_sd.recipe import Recipe

    with pytest.raises(FissureError, match="must never enter a loss"):
        Recipe(tmp_path, tiny_config()).surrogate_judge("emoji/verifier")


def test_the_calibration_section_is_replaced_not_repeated(tmp_path):
    (tmp_path / "README.md").write_text("# emoji-sd\n\n## Recipe\n")
    assert update_calibration(tmp_path, "### First notes")
    assert update_calibration(tmp_path, "### First notes\n\n### Second notes\n")
    card = (tmp_path / "README.md").read_text()
    assert (
        card
        == "# emoji-sd\n\n## Recipe\n\n## Calibration runs\n\n### First notes\n\n### Second notes\n"
    )
    assert not update_calibration(tmp_path / "nothing", "notes")


def test_a_score_exactly_at_a_bar_meets_it():
    """Half the classes at 16/20 and half at 18/20 is 85%: float32 means made it 84.999999%."""
    from fissure.zoo.emoji_sd.evaluate import class_means

    labels = torch.arange(4).repeat_interleave(20)
    correct = torch.cat([torch.arange(20) < (16 if c % 2 else 18) for c in range(4)]).float()
    per_class = class_means(correct, labels, ["a", "b", "c", "d"])
    score = sum(per_class.values()) / len(per_class)
    assert _evaluation(single_top1_strict=score).checks()["single_top1_strict"][2]
    assert not _evaluation(single_top1_strict=0.8499).checks()["single_top1_strict"][2]


def test_the_card_calls_no_bar_met_away_from_the_bars_settings():
    from fissure.zoo.emoji_sd.model_card import quality_section

    assert "| yes |" in quality_section(_evaluation())
    look = quality_section(dataclasses.replace(_evaluation(), seeds=1, steps=2))
    assert "| yes |" not in look and "a look, not their measurement" in look


def test_a_verifier_of_other_labels_is_refused_before_any_image(tmp_path):
    from fissure.errors import FissureError
    from fissure.judges import EmojiJudge
    from fissure.world import class_names
    from fissure.zoo.emoji_sd.evaluate import evaluate_pipeline

    shuffled = EmojiJudge(class_names()[::-1], "convnet", {"channels": [8, 16]})
    with pytest.raises(FissureError, match="classes in their order"):
        evaluate_pipeline(None, shuffled, None, plan=PROBE)  # type: ignore[arg-type]


def test_pair_prompts_use_the_worlds_articles():
    """ "an ewe" (a vowel rule of its own) where every training caption says "a ewe"."""
    from fissure.zoo.emoji_sd.evaluate import pair_evaluation

    texts = []

    def pipeline(prompts, **_):
        texts.extend(prompts)
        return type("Output", (), {"images": torch.zeros(len(prompts), 3, 64, 64)})

    pair_evaluation(
        pipeline, lambda images: torch.zeros(len(images), 2), 5356, plan=PROBE, progress=False
    )
    assert any(text.startswith("a ewe and") or text.endswith("and a ewe") for text in texts)
    assert not any("an ewe" in text for text in texts)


class _FixedFeatures(nn.Module):
    """A CLIP whose text and image features are given: the loss alone is under test."""

    def __init__(self, text: torch.Tensor, image: torch.Tensor, log_scale: float) -> None:
        super().__init__()
        self.text, self.image = text, image
        self.logit_scale = torch.tensor(log_scale)

    def get_text_features(self, input_ids):
        return type("Output", (), {"pooler_output": self.text})

    def get_image_features(self, pixel_values):
        return type("Output", (), {"pooler_output": self.image})


def test_contrastive_loss_is_infonce_over_same_label_positives():
    """Orthonormal pairs at scale s: each side's loss is log(1 + (B-1)e^{-s}); two captions of
    one label are positives of each other: their target splits between them."""
    import math

    from fissure.zoo.emoji_sd.clip_stage import contrastive_loss

    batch, s = 4, 2.0
    features = torch.eye(batch)
    clip = _FixedFeatures(features, features, math.log(s))
    pixels = torch.zeros(batch, 3, 64, 64)
    loss = contrastive_loss(clip, torch.zeros(batch, 1), pixels, torch.eye(batch))
    assert float(loss) == pytest.approx(math.log(1 + (batch - 1) * math.exp(-s)), rel=1e-5)

    same = torch.eye(batch)
    same[0, 1] = same[1, 0] = 1  # items 0 and 1 show one label
    shared = contrastive_loss(clip, torch.zeros(batch, 1), pixels, same)
    # rows 0 and 1 now aim at two logits of which one is s and one is 0
    row = (
        -(
            math.log(math.exp(s) / (math.exp(s) + batch - 1))
            + math.log(1 / (math.exp(s) + batch - 1))
        )
        / 2
    )
    other = math.log(1 + (batch - 1) * math.exp(-s))
    assert float(shared) == pytest.approx((2 * row + 2 * other) / batch, rel=1e-5)
    huge = _FixedFeatures(features, features, math.log(1e4))  # the scale is capped at 100
    capped = contrastive_loss(huge, torch.zeros(batch, 1), pixels, torch.eye(batch))
    assert float(capped) == pytest.approx(math.log(1 + (batch - 1) * math.exp(-100)), abs=1e-9)
