"""Campaign files: read as written, and every mistake said on a line of its own."""

from __future__ import annotations

import pytest

from fissure.campaign import AttackSpec, load_campaign
from fissure.errors import FissureError

GOOD = """
name = "sage-vs-random"
models = ["emoji-sd"]
classes = ["dog", "cat"]
seeds = "0-2,7"

[[attacks]]
name = "sage-latent"
max_iterations = 50

[[attacks]]
name = "sage-latent"
label = "sage-k5"
k = 5

[[attacks]]
name = "random-latent"
budget = 1500
"""


def write(tmp_path, text: str):
    path = tmp_path / "campaign.toml"
    path.write_text(text)
    return path


def test_a_campaign_file_reads_as_written(tmp_path):
    config = load_campaign(write(tmp_path, GOOD))
    assert config.name == "sage-vs-random" and config.models == ["emoji-sd"]
    assert config.classes == ["dog", "cat"] and config.seeds == [0, 1, 2, 7]
    assert config.attacks == [
        AttackSpec("sage-latent", "sage-latent", {"max_iterations": 50}),
        AttackSpec("sage-latent", "sage-k5", {"k": 5}),
        AttackSpec("random-latent", "random-latent", {"budget": 1500}),
    ]
    assert config.verifiers == ["emoji/verifier", "emoji/clip"] and config.default_judges
    assert config.to_dict()["attacks"][1] == {"name": "sage-latent", "label": "sage-k5",
                                              "options": {"k": 5}}  # fmt: skip


def test_a_prompt_file_is_read_in_and_kept_with_the_config(tmp_path):
    (tmp_path / "prompts.txt").write_text(
        "# comments and blank lines are skipped\n\na dog\na cat\n"
    )
    text = (
        'name = "p"\nprompt_file = "prompts.txt"\nseeds = 3\n[[attacks]]\nname = "random-latent"\n'
    )
    config = load_campaign(write(tmp_path, text))
    assert config.prompts == ["a dog", "a cat"] and config.seeds == [3]
    assert config.to_dict()["prompts"] == ["a dog", "a cat"]  # reproducible without the file


def test_a_csv_prompt_file_gives_each_prompt_its_class(tmp_path):
    """ATM's prompt files: a prompt column and the class each prompt is about."""
    (tmp_path / "prompts.csv").write_text(
        "prompt,label,classname\na photo of a dog and a cat,0,dog\na cat by a dog,1,cat\n"
    )
    text = 'name = "p"\nprompt_file = "prompts.csv"\n[[attacks]]\nname = "atm"\n'
    config = load_campaign(write(tmp_path, text))
    assert config.prompts == ["a photo of a dog and a cat", "a cat by a dog"]
    assert config.prompt_targets == {"a photo of a dog and a cat": "dog", "a cat by a dog": "cat"}
    (tmp_path / "bad.csv").write_text("text,classname\na dog,dog\n")
    with pytest.raises(FissureError, match="needs a 'prompt' column"):
        load_campaign(write(tmp_path, text.replace("prompts.csv", "bad.csv")))


def test_every_mistake_is_one_line(tmp_path):
    text = """
seed = 3
classes = ["dog"]
prompts = ["a dog"]
template = "a {x}"
[[attacks]]
name = "sage-latnt"
[[attacks]]
name = "sage-latent"
step = -1
[[attacks]]
name = "random-latent"
bogus = 1
[[attacks]]
name = "random-latent"
"""
    with pytest.raises(FissureError) as error:
        load_campaign(write(tmp_path, text))
    lines = str(error.value).splitlines()
    expected = [
        "unknown key 'seed' (did you mean 'seeds'?)",
        "needs a name",
        "give exactly one of prompts, prompt_file or classes (found prompts, classes)",
        "template needs one {} where the class goes",
        "attacks[0]: unknown attack 'sage-latnt'; known: sage-latent, random-latent",
        "attacks[1] (sage-latent): step (--step) must be a positive number, not -1",
        "attacks[2] (random-latent): random-latent has no option bogus",
    ]
    assert len(lines) == len(expected), lines
    for line, text in zip(lines, expected, strict=True):
        assert line.startswith(f"{tmp_path / 'campaign.toml'}: ") and text in line, line


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x"\nclasses = "dog"\n', "needs at least one [[attacks]]"),
        ('name = "x"\nprompt_file = "missing.txt"\n[[attacks]]\nname = "random-latent"\n',
         "cannot read prompt_file"),
        ('name = "x"\nclasses = "dog"\nseeds = "9-1"\n[[attacks]]\nname = "random-latent"\n',
         "bad seed range"),
        ('name = "x"\nclasses = "dog"\n[[attacks]]\nname = "random-latent"\n'
         '[[attacks]]\nname = "random-latent"\n', "two attacks are labelled 'random-latent'"),
        ('name = "x"\nclasses = ["dog"\n', "is not valid TOML"),
        ('name = "x"\nmodels = ["./no-such-folder"]\nclasses = "dog"\n[[attacks]]\n'
         'name = "random-latent"\n', "no-such-folder"),
    ],
)  # fmt: skip
def test_a_bad_file_names_its_problem(tmp_path, text, message):
    with pytest.raises(FissureError, match=message.replace("[", "\\[")):
        load_campaign(write(tmp_path, text))


def test_a_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(FissureError, match="no campaign file .*: write one as the README shows"):
        load_campaign(tmp_path / "absent.toml")


def test_the_readmes_campaign_example_is_a_valid_campaign(tmp_path):
    """A new user starts from it: it must read, and give each attack its equal budget."""
    from pathlib import Path

    from fissure.attacks.recipes import sage_latent_budget

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = readme.split("```toml\n# sage-vs-random.toml\n", 1)[1].split("```", 1)[0]
    config = load_campaign(write(tmp_path, example))
    assert [spec.name for spec in config.attacks] == ["sage-latent", "random-latent"]
    iterations = config.attacks[0].options["max_iterations"]
    assert config.attacks[1].options["budget"] == sage_latent_budget(25, max_iterations=iterations)
