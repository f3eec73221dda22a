"""emoji-lm's recipe: trains, resumes where a kill left it, loads with stock transformers."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from fissure.cli import app
from fissure.errors import FissureError
from fissure.models.language import LanguageModel
from fissure.zoo import bundled_model_path, emoji_lm
from fissure.zoo.emoji_lm import EmojiLmConfig, batch_texts, class_prompts, train_emoji_lm

TINY = EmojiLmConfig().tiny()


@pytest.fixture(scope="module")
def tokenizer_folder():
    return bundled_model_path("emoji-sd") / "tokenizer"


def test_batches_are_a_function_of_seed_and_step():
    assert batch_texts(TINY, 3) == batch_texts(TINY, 3)
    assert batch_texts(TINY, 3) != batch_texts(TINY, 4)
    mixed = dataclasses.replace(TINY, class_prompt_share=0.5)
    prompts = [text for text in batch_texts(mixed, 3) if text in class_prompts()]
    assert len(prompts) >= round(mixed.batch_size * mixed.class_prompt_share) == 4


def test_a_killed_run_resumes_to_the_same_weights(tmp_path, tokenizer_folder, watch_steps):
    whole = train_emoji_lm(tmp_path / "whole", tokenizer_folder, TINY, progress=False)
    watch_steps(emoji_lm, kill_at=17)
    with pytest.raises(KeyboardInterrupt):
        train_emoji_lm(
            tmp_path / "killed", tokenizer_folder, TINY, progress=False, checkpoint_seconds=0
        )
    steps = watch_steps(emoji_lm)
    resumed = train_emoji_lm(tmp_path / "killed", tokenizer_folder, TINY, progress=False)
    assert steps == list(range(17, TINY.steps))
    first = AutoModelForCausalLM.from_pretrained(whole)
    second = AutoModelForCausalLM.from_pretrained(resumed)
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    card = (resumed / "README.md").read_text()
    assert "held-out captions" in card and "AutoModelForCausalLM" in card


def test_another_recipe_in_the_same_folder_is_refused(tmp_path, tokenizer_folder):
    train_emoji_lm(tmp_path, tokenizer_folder, TINY, progress=False)
    wider = dataclasses.replace(TINY, n_embd=32)
    with pytest.raises(FissureError, match="another emoji-lm recipe"):
        train_emoji_lm(tmp_path, tokenizer_folder, wider, progress=False)


def test_cli_trains_evaluates_and_refuses_emoji_sd_options(tmp_path):
    runner = CliRunner()
    out = tmp_path / "lm"
    args = ["zoo", "train", "emoji-lm", "--tiny", "--out", str(out), "--no-install"]
    trained = runner.invoke(app, args)
    assert trained.exit_code == 0, trained.output
    evaluated = runner.invoke(
        app, ["zoo", "evaluate", "emoji-lm", "--model", str(out / "emoji-lm")]
    )
    assert evaluated.exit_code == 0 and "held-out captions" in evaluated.output
    refused = runner.invoke(app, [*args, "--snapshot"])
    assert refused.exit_code == 2 and "--snapshot" in refused.output
    bad_steps = runner.invoke(app, [*args, "--steps", "unet=5"])
    assert bad_steps.exit_code == 2 and "lm=N" in bad_steps.output


def test_shipped_emoji_lm_is_small_and_loads_with_stock_transformers():
    folder = bundled_model_path("emoji-lm")
    size = sum(path.stat().st_size for path in folder.iterdir())
    assert size < 10_000_000
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    ids = tokenizer("a photo of a dog", return_tensors="pt").input_ids
    with torch.no_grad():
        loss = model(ids, labels=ids).loss
    assert float(loss.exp()) < 20  # a class prompt it was trained on reads as fluent


def test_the_shipped_lm_tells_an_unfinished_prompt_from_a_finished_one():
    """What the prompt search's fluency limit rests on: a word that needs more words after
    it is fluent as a start and not as a whole prompt; a word that finishes it is both."""
    lm = LanguageModel.from_pretrained("emoji-lm")
    texts = ["a photo of a cat", "a photo of a cat in", "a photo of a cat inside"]
    clean, unfinished, finished = lm.perplexities(texts)
    clean_start, unfinished_start, _ = lm.perplexities(texts, ended=False)
    assert unfinished > 2 * clean and finished < 1.5 * clean
    assert unfinished_start < 1.5 * clean_start
