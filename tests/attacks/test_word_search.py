"""SAGE's prompt search and its random-word baseline, on a tiny pipeline and a tiny LM."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from fissure.attacks import Attempt, Verifiers, run_attack
from fissure.attacks.goals import GoalEvaluation
from fissure.attacks.recipes import random_words, sage_prompt, sage_prompt_budget
from fissure.attacks.search import SearchState
from fissure.attacks.spaces import PromptExtension, Rendering
from fissure.attacks.word_search import WordSearch, visit_words
from fissure.errors import FissureError
from fissure.models import Generator
from fissure.models.language import LanguageModel
from fissure.results import ResultsStore

from .conftest import STEPS, BrightnessJudge

PROMPT = "a photo of light"


def _run(attack, attempts, folder, verifier):
    with ResultsStore(folder) as store, store.campaign(attack.name) as campaign:
        writer = campaign.attack("tiny", attack.name, attack.settings())
        return run_attack(attack, attempts, writer, Verifiers({"v": verifier}), "tiny", False)


@pytest.mark.parametrize("recipe", ["sage-prompt", "random-words"])
def test_findings_are_images_of_the_words_found(
    recipe, generator, surrogate, language_model, tmp_path
):
    """The after image is the adversarial prompt's own render from the seed's latent: the
    free tokens that steer the search never stand for a result."""
    options = dict(language_model=str(language_model), steps=STEPS, batch_size=2, views=False)
    if recipe == "sage-prompt":
        attack = sage_prompt(generator, surrogate, words=2, iterations=2, step=0.05, **options)
        budget = sage_prompt_budget(STEPS, words=2, iterations=2)
    else:
        budget = 5 * STEPS
        attack = random_words(generator, surrogate, budget=budget, words=2, **options)
    verifier = BrightnessJudge(surrogate.threshold + 0.005)
    attempts = [Attempt(PROMPT, "light", 0, seed) for seed in (0, 1, 2)]
    findings = _run(attack, attempts, tmp_path, verifier)
    assert len(findings) == 3
    for finding in findings:
        # the clean prompt's words in order, and up to two of the LM's (one-letter) words
        # before "light" or after the prompt
        shape = re.fullmatch(r"a photo of ((?:\S )*)light((?: \S)*)", finding.adversarial_prompt)
        assert shape, finding.adversarial_prompt
        assert len("".join(shape.groups()).split()) <= 2
        assert finding.unet_evals <= budget
        assert set(finding.perplexity) == {"clean", "adversarial"}
        latent = generator.initial_latents([finding.seed])
        with torch.no_grad():
            image = generator.sample(latent, finding.adversarial_prompt, steps=STEPS).images[0]
        after = verifier(image[None])[0]
        assert finding.verifier_after["v"]["target"] == pytest.approx(float(after[0]), abs=1e-3)


def test_a_search_returns_to_prompts_it_did_not_take_while_the_budget_lasts(
    generator, surrogate, language_model, tmp_path
):
    """A chain of words that fails goes on from the best rendered prompt it did not take,
    and the outcome is always the image of the prompt it reports."""
    attack = sage_prompt(
        generator, surrogate, language_model=str(language_model), words=2, iterations=1,
        rescored=2, steps=STEPS, batch_size=2, views=False, fluency=None,
    )  # fmt: skip
    chain = attack.search.budget
    assert chain == sage_prompt_budget(STEPS, words=2, iterations=1, rescored=2)
    attack = dataclasses.replace(
        attack, search=dataclasses.replace(attack.search, budget=3 * chain)
    )
    never_fooled = BrightnessJudge(-1.0)  # every image is "light" to it: nothing succeeds
    attack = dataclasses.replace(
        attack, goal=dataclasses.replace(attack.goal, surrogate=never_fooled)
    )
    findings = _run(attack, [Attempt(PROMPT, "light", 0, 0)], tmp_path, surrogate)
    (finding,) = findings
    assert not finding.success
    assert chain < finding.unet_evals <= 3 * chain  # it went on past one chain, within budget
    latent = generator.initial_latents([0])
    with torch.no_grad():
        image = generator.sample(latent, finding.adversarial_prompt, steps=STEPS).images[0]
    after = surrogate(image[None])[0]
    assert finding.verifier_after["v"]["target"] == pytest.approx(float(after[0]), abs=1e-3)


def test_candidates_are_ranked_by_the_first_order_score(generator, surrogate, language_model):
    """The words whose embeddings the gradient says lower the loss most come first, each
    scored against the free token of its own place."""
    space = PromptExtension(
        generator, LanguageModel.from_pretrained(str(language_model)), before_noun=True
    )
    search = WordSearch(candidates=10, rescored=3)
    start = space.bind(Attempt(PROMPT, "light", 0, 0))
    state = SearchState(start, space.origin(start))
    state.prompt = PROMPT
    choices = space.candidates(start, PROMPT, 10)
    assert {choice.before_noun for choice in choices} == {True, False}
    table = space.vocabulary.detach().float()
    for wanted in (choices[7], next(c for c in choices if c.before_noun)):
        gradient = torch.zeros_like(state.variable)
        row = space.free_row(wanted)  # the loss falls towards the wanted word, at its place
        gradient[row] = state.variable[row] - table[wanted.token_id]
        ranked = search._ranked(space, state, gradient)
        assert ranked[0] == wanted and sorted(map(repr, ranked)) == sorted(map(repr, choices))


def test_the_free_tokens_stand_where_their_words_go(generator, language_model):
    """[m] before the class's name and [x], [y] after the prompt: given the embeddings of
    words, the free tokens condition the model as the typed prompt does."""
    space = PromptExtension(
        generator, LanguageModel.from_pretrained(str(language_model)), before_noun=True
    )
    start = space.bind(Attempt(PROMPT, "light", 0, 0))
    choices = space.candidates(start, PROMPT, 10)
    modifier = next(c for c in choices if c.before_noun)
    x, y = [c for c in choices if not c.before_noun][:2]
    typed = space.placed(start, space.placed(start, PROMPT, x), modifier) + f" {y.word}"
    assert typed.startswith(f"a photo of {modifier.word} light {x.word}")
    free = space.vocabulary.detach()[[modifier.token_id, x.token_id, y.token_id]].float()
    steered = space.render([start], [PROMPT], free[None])
    plain = space.render([start], [typed])
    torch.testing.assert_close(steered.images[:1], plain.images[:1], atol=1e-4, rtol=0)


def test_a_prompt_that_fools_the_surrogate_succeeds_only_if_it_reads_as_finished():
    """On emoji-sd and its LM: candidates are fluent as starts of longer prompts ("a photo of
    a cat in"), and only a prompt fluent as a whole ("... inside") can be an outcome, so a
    rendered prompt that fools the surrogate but is unfinished is no success."""
    language = LanguageModel.from_pretrained("emoji-lm")
    space = PromptExtension(Generator.from_pretrained("emoji-sd"), language, fluency=2.0)
    clean = "a photo of a cat"
    start = space.bind(Attempt(clean, "cat", 0, 0))
    words = {c.word for c in space.candidates(start, clean, 50)}
    assert {"in", "inside"} <= words
    fooled = GoalEvaluation(torch.zeros(1), torch.zeros(1, 1), torch.ones(1, dtype=torch.bool))
    for word, finished in (("in", False), ("inside", True)):
        state = SearchState(start, space.origin(start))
        rendering = Rendering(torch.zeros(1, 3, 8, 8), 1, 0.0)
        visit_words(state, space, f"{clean} {word}", (rendering, fooled, 0))
        assert state.achieved == finished == space.readable(start, [f"{clean} {word}"])[0]


def test_words_that_finish_a_prompt_are_ranked_first():
    """On emoji-sd and its LM: the gradient prefers "in" (which cannot end a prompt); the
    search renders the finished words first, each group in the gradient's order."""
    space = PromptExtension(
        Generator.from_pretrained("emoji-sd"), LanguageModel.from_pretrained("emoji-lm"),
        fluency=2.0,
    )  # fmt: skip
    clean = "a photo of a cat"
    start = space.bind(Attempt(clean, "cat", 0, 0))
    state = SearchState(start, space.origin(start))
    state.prompt = clean
    choices = space.candidates(start, clean, 50)
    wanted = next(c for c in choices if c.word == "in")
    gradient = torch.zeros_like(state.variable)
    gradient[0] = state.variable[0] - space.vocabulary.detach()[wanted.token_id].float()
    by_gradient = WordSearch(candidates=50, finished_first=False)._ranked(space, state, gradient)
    assert by_gradient[0] == wanted
    ranked = WordSearch(candidates=50)._ranked(space, state, gradient)
    finished = space.readable(start, [space.placed(start, clean, c) for c in ranked])
    assert finished == sorted(finished, reverse=True) and finished[0] and not finished[-1]
    for group in (True, False):
        order = [c for c, f in zip(ranked, finished, strict=True) if f is group]
        assert order == [c for c in by_gradient if c in order]
    assert ranked[finished.index(False)] == wanted


def test_excluded_words_are_never_candidates(generator, language_model):
    language = LanguageModel.from_pretrained(str(language_model))
    start = PromptExtension(generator, language).bind(Attempt(PROMPT, "light", 0, 0))
    proposed = [c.word for c in PromptExtension(generator, language).candidates(start, PROMPT, 10)]
    space = PromptExtension(generator, language, excluded=frozenset(proposed[:3]))
    assert not set(proposed[:3]) & {c.word for c in space.candidates(start, PROMPT, 10)}


def test_a_prompt_without_its_class_is_refused(generator, surrogate, language_model, tmp_path):
    attack = sage_prompt(generator, surrogate, language_model=str(language_model), steps=STEPS)
    with pytest.raises(FissureError, match="does not name 'light'"):
        _run(attack, [Attempt("a photo of a lamp", "light", 0, 0)], tmp_path, surrogate)


def test_a_language_model_whose_words_the_model_cannot_spell_is_refused(
    generator, surrogate, tmp_path
):
    """Words of several letters are several tokens of the tiny pipeline's byte tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2TokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"])
    backend.train_from_iterator(["a photo of a dog on the grass"] * 20, trainer)
    tokenizer = GPT2TokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=16, n_layer=1, n_head=2)
    GPT2LMHeadModel(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(FissureError, match="does not spell as single tokens"):
        sage_prompt(generator, surrogate, language_model=str(tmp_path), steps=STEPS)
