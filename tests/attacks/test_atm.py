"""ATM: its word distributions, margin, similarity and fluency terms, and its search, on a
tiny pipeline, a toy classifier and a tiny LM over the pipeline's own tokenizer."""

from __future__ import annotations

import math

import pytest
import torch

from fissure.attacks import Attempt, Verifiers, run_attack
from fissure.attacks.distributions import WordDistributions, edit_distance, gumbel_softmax
from fissure.attacks.goals import ClassifierMargin, atm_success
from fissure.attacks.penalties import BertScoreSimilarity, IdfWeights, RelaxedFluency
from fissure.attacks.recipes import atm, random_tokens
from fissure.errors import FissureError
from fissure.models import Generator
from fissure.models.generator import FreeTokens, evaluation_cost
from fissure.models.language import LanguageModel
from fissure.results import ResultsStore
from fissure.zoo.tiny import build_tiny_pipeline

from .conftest import STEPS, BrightnessJudge

PROMPT = "a photo of light"


@pytest.fixture(scope="module")
def language(language_model) -> LanguageModel:
    return LanguageModel.from_pretrained(str(language_model))


def _space(generator, language, mode="extend", extra=2) -> WordDistributions:
    return WordDistributions(generator, language, mode, extra, steps=STEPS, batch_size=2)


def test_gumbel_softmax_is_seeded_and_its_hard_draw_is_the_argmax():
    logits = torch.randn(4, 30)
    soft = gumbel_softmax(logits, 1.0, torch.Generator().manual_seed(3))
    again = gumbel_softmax(logits, 1.0, torch.Generator().manual_seed(3))
    torch.testing.assert_close(soft, again)
    torch.testing.assert_close(soft.sum(dim=-1), torch.ones(4))
    hard = gumbel_softmax(logits, 1.0, torch.Generator().manual_seed(3), hard=True)
    assert torch.equal(hard.argmax(dim=-1), soft.argmax(dim=-1)) and hard.sum() == 4
    cold = gumbel_softmax(logits, 1e-6, torch.Generator().manual_seed(3))
    assert torch.allclose(cold, hard, atol=1e-3)  # temperature to 0: the hard draw


def test_edit_distance():
    assert edit_distance([1, 2, 3], [1, 2, 3]) == 0
    assert edit_distance([1, 2, 3], [1, 3]) == 1
    assert edit_distance([1, 2], [3, 4, 5]) == 3


@pytest.mark.parametrize("mode", ["extend", "substitute"])
def test_the_first_relaxed_prompt_is_the_clean_one(mode, generator, language):
    """At the start every free position is its starting token at coefficient 15: the mixed
    embeddings make the clean prompt's image, and a hard draw spells the clean prompt."""
    space = _space(generator, language, mode)
    start = space.bind(Attempt(PROMPT, "light", 0, 0))
    origin = space.origin(start)
    coefficients = torch.softmax(origin, dim=-1)[None]
    relaxed = space.render([start], [PROMPT], coefficients)
    clean = space.render([start], [PROMPT])
    torch.testing.assert_close(relaxed.images[:1], clean.images[:1], atol=2e-3, rtol=0)
    drawn = gumbel_softmax(origin, 1.0, torch.Generator().manual_seed(0), hard=True).argmax(-1)
    assert space.text(start, space.words(start, drawn)) == PROMPT


def test_a_draw_that_spells_too_many_tokens_is_cut_as_a_pipeline_cuts_it(generator, language):
    """Uniform draws of word pieces can spell more tokens than the encoder reads."""
    space = _space(generator, language)
    limit = generator.tokenizer.model_max_length - 2
    start = space.bind(Attempt(PROMPT, "light", 0, 0))
    pieces = [generator.tokenizer.convert_tokens_to_ids("a")] * (2 * limit)
    text = space.text(start, [*start.ids, *pieces])
    assert 0 < len(space.word_ids(text)) <= limit
    punctuated = space.bind(Attempt("a close-up photo of light.", "light", 0, 0))
    drawn = space.text(punctuated, [*punctuated.ids, pieces[0]])
    assert drawn.startswith("a close-up photo of light. ")  # extend keeps the prompt's text
    generator.encode(text)  # the model reads it whole


def test_extension_starts_as_a_padded_prompt_ends_even_where_padding_is_not_the_end_token(
    language,
):
    """SD 2.x pads with "!", not the end token: the appended positions start as the clean
    prompt's tail (end token, then padding), so only the encoder's last state differs (it
    is causal), and drawn padding is no word of the prompt."""
    generator = Generator(build_tiny_pipeline("sd1"))
    generator.tokenizer.pad_token = "!"
    space = WordDistributions(generator, language, steps=STEPS, batch_size=1)
    start = space.bind(Attempt(PROMPT, "light", 0, 0))
    bang = generator.tokenizer.convert_tokens_to_ids("!")
    assert start.initial[0] == generator.tokenizer.eos_token_id and set(start.initial[1:]) == {bang}
    with torch.no_grad():
        clean = generator.encode([PROMPT]).prompt_embeds
        coefficients = torch.softmax(space.origin(start), dim=-1)[None]
        mixed = coefficients @ space.vocabulary
        tokens = FreeTokens(mixed, [list(range(-mixed.shape[1], 0))], insert=True)
        relaxed = generator.encode([PROMPT], tokens).prompt_embeds
    torch.testing.assert_close(relaxed[:, :-1], clean[:, :-1], atol=1e-3, rtol=0)
    drawn = torch.tensor(start.initial)
    assert space.text(start, space.words(start, drawn)) == PROMPT


def test_substitution_never_frees_the_class_name(generator, language):
    space = _space(generator, language, "substitute")
    start = space.bind(Attempt(PROMPT, "light", 0, 0))
    light = generator.tokenizer("light", add_special_tokens=False).input_ids
    assert start.ids[-len(light) :] == light
    assert max(start.positions) == len(start.ids) - len(light)  # every word before it, only
    drawn = torch.full((len(start.positions),), start.ids[0])
    assert space.text(start, space.words(start, drawn)).endswith("light")
    extend = _space(generator, language, "extend", extra=3).bind(Attempt(PROMPT, "light", 0, 0))
    assert extend.positions == [len(extend.ids) + 1, len(extend.ids) + 2, len(extend.ids) + 3]


def test_the_margin_is_carlini_wagners_and_success_is_the_top_class():
    judge = BrightnessJudge(0.5)
    goal = ClassifierMargin(judge, kappa=30.0)
    scores = torch.tensor([[5.0, 1.0, 0.0], [0.0, 7.0, 2.0]])
    goal.scores = lambda images: scores  # the classifier's scores, given
    evaluation = goal.evaluate(torch.zeros(2, 3, 8, 8), torch.tensor([0, 0]))
    # (own − best other + κ)⁺: 5 − 1 + 30, and 0 − 7 + 30
    torch.testing.assert_close(evaluation.loss, torch.tensor([34.0, 23.0]))
    assert evaluation.achieved.tolist() == [False, True]
    ce = ClassifierMargin(judge, loss="ce")
    ce.scores = lambda images: scores
    expected = -torch.nn.functional.cross_entropy(scores, torch.tensor([0, 0]), reduction="none")
    torch.testing.assert_close(
        ce.evaluate(torch.zeros(2, 3, 8, 8), torch.tensor([0, 0])).loss, expected
    )


def test_atm_success_needs_another_top_class_and_the_class_word():
    assert atm_success("dog", "cat", "a photo of a cat and a bone")
    assert not atm_success("cat", "cat", "a photo of a cat and a bone")
    assert not atm_success("dog", "cat", "a photo of a dog and a bone")


def test_idf_weights_are_bertscores(generator):
    texts = ["a b", "a c", "a b d"]
    idf = IdfWeights.of(texts, generator.tokenizer)
    token = generator.tokenizer
    a = token("a", add_special_tokens=False).input_ids[0]
    b = token("b", add_special_tokens=False).input_ids[0]
    z = token("z", add_special_tokens=False).input_ids[0]
    assert idf[a] == pytest.approx(math.log(4 / 4))
    assert idf[b] == pytest.approx(math.log(4 / 3))
    assert idf[z] == pytest.approx(math.log(4))  # in no text
    assert idf[token.bos_token_id] == 0.0


def test_the_similarity_is_full_at_the_clean_prompt_and_has_a_gradient(generator, language):
    space = _space(generator, language, "substitute")
    start = space.bind(Attempt(PROMPT, "light", 0, 0))
    clean = torch.nn.functional.one_hot(torch.tensor(start.initial), space.vocabulary.shape[0])
    idf = IdfWeights.of([PROMPT, "a photo of dark", "a drawing of grey"], generator.tokenizer)
    term = BertScoreSimilarity.over(language, 4.0, idf)
    assert float(term.penalty(space, [start], clean[None].float())[0]) == pytest.approx(
        -4.0, abs=1e-4
    )
    logits = (space.origin(start) / 5).requires_grad_(True)
    value = term.penalty(space, [start], torch.softmax(logits, dim=-1)[None])
    (gradient,) = torch.autograd.grad(value.sum(), logits)
    assert float(value[0].detach()) > -4.0 and gradient.abs().sum() > 0


def test_the_fluency_term_of_a_text_of_words_is_its_log_perplexity(generator, language):
    space = _space(generator, language, "extend", extra=2)
    start = space.bind(Attempt(PROMPT, "light", 0, 0))
    words = generator.tokenizer(" b c", add_special_tokens=False).input_ids[:2]
    rows = torch.nn.functional.one_hot(torch.tensor(words), space.vocabulary.shape[0]).float()
    value = RelaxedFluency(language, 1.0).penalty(space, [start], rows[None])
    text = space.text(start, [*start.ids, *words])
    assert float(value[0]) == pytest.approx(math.log(language.perplexities([text])[0]), rel=1e-4)


def test_a_language_model_of_another_vocabulary_is_refused(generator, surrogate):
    with pytest.raises(FissureError, match="numbers tokens unlike"):
        atm(generator, surrogate, language_model="emoji-lm", steps=STEPS)
    atm(generator, surrogate, language_model="emoji-lm", similarity=0, steps=STEPS)


def _run(attack, attempts, folder, verifier):
    with ResultsStore(folder) as store, store.campaign(attack.name) as campaign:
        writer = campaign.attack("tiny", attack.name, attack.settings())
        return run_attack(attack, attempts, writer, Verifiers({"v": verifier}), "tiny", False)


def test_atm_runs_draws_and_reports_as_its_code_counts(
    generator, surrogate, language_model, tmp_path
):
    """Every attempt is attacked for its iterations, then its hard draws are judged; the
    outcome is a draw that keeps the class word, rendered from the seed's latent."""
    attack = atm(
        generator, surrogate, language_model=str(language_model), extra=2, iterations=2,
        samples=5, step=3.0, steps=STEPS, batch_size=2, idf_prompts=[PROMPT],
    )  # fmt: skip
    attempts = [Attempt(PROMPT, "light", 0, seed) for seed in (0, 1, 2)]
    verifier = BrightnessJudge(surrogate.threshold)
    findings = _run(attack, attempts, tmp_path, verifier)
    assert len(findings) == 3
    for finding in findings:
        scores = finding.scores
        assert scores["samples"] == 5 and 0 <= scores["successful_samples"] <= 5
        assert 1 <= scores["distinct_prompts"] <= 5 and len(scores["losses"]) == 2
        assert finding.adversarial_prompt.startswith(PROMPT)  # extend: words after it
        assert finding.success == (scores["successful_samples"] > 0)
        step = evaluation_cost("last-k", 1, STEPS).total
        assert finding.unet_evals == round(STEPS + 2 * step + scores["distinct_prompts"] * STEPS)
        latent = generator.initial_latents([finding.seed])
        with torch.no_grad():
            image = generator.sample(latent, finding.adversarial_prompt, steps=STEPS).images[0]
        after = verifier(image[None])[0]
        assert finding.verifier_after["v"]["target"] == pytest.approx(float(after[0]), abs=1e-3)
    again = _run(attack, attempts, tmp_path, verifier)  # resumed: nothing redone
    assert [f.adversarial_prompt for f in again] == [f.adversarial_prompt for f in findings]


def test_a_clean_image_the_classifier_misreads_is_skipped(generator, language_model, tmp_path):
    misreads = BrightnessJudge(2.0)  # nothing is light to it: every clean image is misread
    attack = atm(
        generator, misreads, language_model=str(language_model), extra=2, iterations=2,
        samples=3, steps=STEPS, batch_size=2,
    )  # fmt: skip
    (finding,) = _run(attack, [Attempt(PROMPT, "light", 0, 0)], tmp_path, BrightnessJudge(0.0))
    assert finding.scores == {"clean_misclassified": True}
    assert not finding.success and finding.iterations == 0 and finding.unet_evals == STEPS


def test_random_tokens_change_each_free_position_with_the_given_chance(
    generator, surrogate, language_model
):
    """The baseline is ATM's draws without its steps: its start keeps each position's token
    with probability 1 − change, and every whole word is equally likely otherwise."""
    attack = random_tokens(
        generator, surrogate, language_model=str(language_model), extra=3, change=0.2,
        samples=4, steps=STEPS,
    )  # fmt: skip
    assert attack.name == "random-tokens" and attack.search.iterations == 0
    assert attack.constraints == ()  # no similarity term: nothing is optimised
    start = attack.space.bind(Attempt(PROMPT, "light", 0, 0))
    chances = torch.softmax(attack.space.origin(start), dim=-1)
    kept = chances[torch.arange(3), torch.tensor(start.initial)]
    torch.testing.assert_close(kept, torch.full((3,), 0.8))
    words = attack.space.word_tokens.clone()
    words[start.initial[0]] = False
    others = chances[0][words]
    torch.testing.assert_close(others, torch.full_like(others, 0.2 / len(others)))
    assert chances[0][~words].sum() == pytest.approx(0.8)  # the start token, and no piece


@pytest.mark.parametrize("mode", ["extend", "substitute"])
def test_atm_runs_on_an_sd2_shaped_pipeline(mode, language_model, surrogate, tmp_path):
    """v-prediction and SD 2.x's text encoder shape: the attack runs and keeps the class."""
    generator = Generator(build_tiny_pipeline("sd2"))
    attack = atm(
        generator, surrogate, language_model=str(language_model), mode=mode, extra=2,
        iterations=1, samples=3, steps=STEPS, batch_size=1, idf_prompts=[PROMPT],
    )  # fmt: skip
    (finding,) = _run(attack, [Attempt(PROMPT, "light", 0, 0)], tmp_path, BrightnessJudge(0.5))
    assert "light" in finding.adversarial_prompt
    assert finding.scores.get("clean_misclassified") or finding.scores["samples"] == 3
