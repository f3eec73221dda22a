"""`fissure attack sage-prompt | random-words | universal-token` end to end on a tiny pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import CLIPTokenizer, GPT2Config, GPT2LMHeadModel
from typer.testing import CliRunner

from fissure.cli import app
from fissure.results import ResultsStore

runner = CliRunner()
FAST = ["--steps", "2", "--batch-size", "2", "--seeds", "0"]


@pytest.fixture(scope="module")
def tiny_lm(tiny_sd1_dir, tmp_path_factory) -> Path:
    """A random GPT-2 over the tiny pipeline's tokenizer: its words are single letters."""
    folder = tmp_path_factory.mktemp("lm")
    tokenizer = CLIPTokenizer.from_pretrained(tiny_sd1_dir / "tokenizer")
    torch.manual_seed(0)
    GPT2LMHeadModel(
        GPT2Config(vocab_size=len(tokenizer), n_embd=16, n_layer=1, n_head=2)
    ).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _invoke(*args) -> object:
    return runner.invoke(app, [str(arg) for arg in args], terminal_width=200)


def _findings(out: Path) -> list:
    with ResultsStore(out) as store:
        return store.findings()


def test_sage_prompt_and_random_words_write_prompts_found(tiny_sd1_dir, tiny_lm, tmp_path):
    common = ["-m", tiny_sd1_dir, "--out", tmp_path, "--language-model", tiny_lm, *FAST]
    searched = _invoke(
        "attack", "sage-prompt", *common, "--classes", "cat", "--words", "1", "--iterations", "1"
    )
    assert searched.exit_code == 0, searched.output
    randomised = _invoke("attack", "random-words", *common, "--classes", "cat", "--budget", "6")
    assert randomised.exit_code == 0, randomised.output
    findings = {f.attack: f for f in _findings(tmp_path)}
    assert set(findings) == {"sage-prompt", "random-words"}
    for finding in findings.values():
        assert finding.adversarial_prompt.startswith("a photo of a cat")
        assert finding.perplexity["clean"] > 0
    assert "a photo of a cat" in (tmp_path / "index.html").read_text()


def test_prompt_attack_input_errors_are_one_line(tiny_sd1_dir, tiny_lm, tmp_path):
    common = ["-m", tiny_sd1_dir, "--out", tmp_path, *FAST]
    unnamed = _invoke(
        "attack", "sage-prompt", *common, "--language-model", tiny_lm,
        "--prompt", "a photo of a lamp", "--target", "cat",
    )  # fmt: skip
    assert unnamed.exit_code == 2 and "does not name 'cat'" in unnamed.output
    not_an_lm = _invoke("attack", "sage-prompt", *common, "--language-model", tiny_sd1_dir,
                        "--classes", "cat")  # fmt: skip
    assert not_an_lm.exit_code == 2 and "could not load a causal language model" in not_an_lm.output
    bad = _invoke("attack", "random-words", *common, "--language-model", tiny_lm, "--classes",
                  "cat", "--words", "0")  # fmt: skip
    assert bad.exit_code == 2 and "words (--words) must be at least 1" in bad.output


def test_universal_token_trains_judges_and_saves_a_textual_inversion(tiny_sd1_dir, tmp_path):
    args = [
        "attack", "universal-token", "-m", tiny_sd1_dir, "--out", tmp_path, "--iterations", "1",
        "--batch", "2", "--steps", "2", "--held-out", "3", "--seeds", "0", "--training-seeds", "1",
    ]  # fmt: skip
    result = _invoke(*args, "--target", "cat")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "universal-token-cat.safetensors").is_file()
    findings = _findings(tmp_path)
    assert len(findings) == 3 and {f.target for f in findings} == {"cat"}
    assert all(f.adversarial_prompt.startswith("<fissure-cat> ") for f in findings)
    assert "text-embedding cosine" in result.output
    scale = _invoke(*args, "--target", "cat", "--start-scale", "0")
    assert scale.exit_code == 2 and "start_scale (--start-scale) must be a positive" in scale.output
    unknown = _invoke(*args, "--target", "purple")
    assert unknown.exit_code == 2 and "unknown class 'purple'" in unknown.output
    middle = _invoke(*args, "--target", "cat", "--position", "middle")
    assert middle.exit_code == 2 and "must be start or end" in middle.output
    both = _invoke(*args, "--target", "cat", "--untargeted")
    assert both.exit_code == 2 and "not both or neither" in both.output
    overlap = _invoke(*args[:-2], "--training-seeds", "0", "--target", "cat")
    assert overlap.exit_code == 2 and "must not be training seeds" in overlap.output


def test_atm_counts_as_its_code_and_reports_the_verifiers(tiny_sd1_dir, tiny_lm, tmp_path):
    args = [
        "attack", "atm", "-m", tiny_sd1_dir, "--out", tmp_path, "--language-model", tiny_lm,
        "--classes", "cat,dog", "--iterations", "1", "--samples", "2", "--extra", "2", *FAST,
    ]  # fmt: skip
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    assert "ATM success (top-1 not the class, class word kept" in result.output
    findings = _findings(tmp_path)
    assert {f.target for f in findings} == {"cat", "dog"}
    for finding in findings:
        assert finding.prompt == f"a photo of a {finding.target} and a"
        assert set(finding.verifier_after) == {"emoji/verifier", "emoji/surrogate"}
        attacked = not (finding.scores or {}).get("clean_misclassified")
        assert (finding.scores or {}).get("samples") == (2 if attacked else None)


def test_random_tokens_is_counted_as_atm_counts(tiny_sd1_dir, tiny_lm, tmp_path):
    args = ["attack", "random-tokens", "-m", tiny_sd1_dir, "--out", tmp_path, "--language-model",
            tiny_lm, "--classes", "cat", "--samples", "3", "--extra", "2", *FAST]  # fmt: skip
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    assert "ATM success" in result.output
    (finding,) = _findings(tmp_path)
    assert finding.attack == "random-tokens" and finding.iterations == 0
    assert (finding.scores or {}).get("samples") in (3, None)  # None: skipped, misread


def test_atm_input_errors_are_one_line(tiny_sd1_dir, tiny_lm, tmp_path):
    common = ["attack", "atm", "-m", tiny_sd1_dir, "--out", tmp_path / "out", "--language-model",
              tiny_lm, *FAST]  # fmt: skip
    unknown = _invoke(*common, "--classes", "unicorn")
    assert unknown.exit_code == 2 and "unknown class 'unicorn'" in unknown.output
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    nothing = _invoke(*common, "--prompts", empty)
    assert nothing.exit_code == 2 and "holds no prompts" in nothing.output
    table = tmp_path / "prompts.csv"
    table.write_text("prompt,classname\na photo of a lamp and a,cat\n")
    unnamed = _invoke(*common, "--prompts", table)
    assert unnamed.exit_code == 2 and "does not name 'cat'" in unnamed.output
    missing = _invoke(*common, "--prompts", tmp_path / "none.csv")
    assert missing.exit_code == 2 and "no prompt file" in missing.output
    two = _invoke(*common, "--judge", "emoji/clip", "--judge", "emoji/verifier")
    assert two.exit_code == 2 and "give --judge once" in two.output
