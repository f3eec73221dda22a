"""Papers' attacks as compositions of parts, found by name."""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Literal

from fissure.attacks import naming
from fissure.attacks.attack import Attack
from fissure.attacks.constraints import (
    Box,
    Constraint,
    EmbeddingRange,
    SameNorm,
    SameSpectrum,
    SameValues,
)
from fissure.attacks.distributions import AtmMode, WordDistributions
from fissure.attacks.goals import ClassifierMargin, TargetAbsent, TargetPresent
from fissure.attacks.gumbel_search import GumbelSearch
from fissure.attacks.penalties import BertScoreSimilarity, IdfWeights, RelaxedFluency
from fissure.attacks.search import GradientDescent, RandomSearch
from fissure.attacks.spaces import LatentPerturbation, PromptExtension
from fissure.attacks.steps import STEP_RULES, StepName, rule_named
from fissure.attacks.universal import (
    TokenDescent,
    TokenPosition,
    TokenSpace,
    UniversalToken,
    attack_name,
)
from fissure.attacks.word_search import RandomWords, WordSearch, word_cost
from fissure.errors import FissureError
from fissure.judges.base import Judge, label_column
from fissure.models.generator import (
    Generator,
    GradientMode,
    check_guidance,
    evaluation_cost,
    scheduler_with_steps,
)
from fissure.models.language import LanguageModel

#: SAGE's latent attack as the paper describes it (``paper=True``, ``--paper``).
PAPER_SETTINGS: dict[str, object] = dict(
    gradient="residual", k=2, step_rule="sign", step=0.05, max_iterations=100
)
#: The defaults, chosen by measurement on emoji-sd (docs/sage-latent.md).
MEASURED_SETTINGS: dict[str, object] = dict(
    gradient="exact-stored", k=2, step_rule="l2", step=0.4, max_iterations=20
)


#: What the latent keeps of its seed's besides the box: its values and power spectrum
#: (new phases, the values rearranged), its values, its norm, or nothing.
Keep = Literal["spectrum", "values", "norm", "none"]


def latent_constraints(keep: Keep, radius: float) -> tuple[Constraint, ...]:
    """The set δ stays in: what it ``keep``s of the seed's latent, then the ±``radius`` box
    (projected last, so it always holds)."""
    _check_keep(keep)
    kept = {
        "spectrum": (SameSpectrum(), SameValues()),
        "values": (SameValues(),),
        "norm": (SameNorm(),),
        "none": (),
    }[keep]
    return (*kept, Box(radius))


def _check_keep(keep: str) -> None:
    _require(
        keep in typing.get_args(Keep),
        f"keep (--keep) must be one of {', '.join(typing.get_args(Keep))}, not {keep!r}",
    )


def sage_latent_settings(paper: bool = False, **given: object) -> dict[str, object]:
    """The search's settings: those ``given`` (not None), the rest from the paper's or the
    measured defaults."""
    chosen = {name: value for name, value in given.items() if value is not None}
    return {**(PAPER_SETTINGS if paper else MEASURED_SETTINGS), **chosen}


def sage_latent(
    generator: Generator,
    surrogate: Judge,
    *,
    paper: bool = False,
    gradient: GradientMode | None = None,
    k: int | None = None,
    step_rule: StepName | None = None,
    step: float | None = None,
    max_iterations: int | None = None,
    weight: float = 1.0,
    radius: float = 1.0,
    steps: int = 25,
    guidance: float = 7.5,
    absent_below: float = 0.1,
    batch_size: int = 8,
    keep: Keep = "values",
    views: bool = True,
) -> Attack:
    """SAGE's latent attack (Liu et al., arXiv 2306.00974): gradient steps on δ in a box.

    ``paper=True`` takes the paper's search (:data:`PAPER_SETTINGS`: residual gradient
    from the last 2 steps, sign steps of 0.05, 100 iterations); the default is the search
    that measured best on emoji-sd (:data:`MEASURED_SETTINGS`, docs/sage-latent.md).
    Options given override either.

    ``keep="values"`` (default) keeps ``z + δ`` a rearrangement of the seed's ``z``
    (:class:`SameValues`: its norm and its elements' distribution), so the failure it finds
    starts from a latent as typical as the seed's however far the steps go; ``"norm"``
    keeps only the norm (:class:`SameNorm`, the default before large steps bent the
    elements' distribution), ``"none"`` only the ±``radius`` box, which always holds. With
    ``views`` (default) the surrogate must miss the target on flipped, shifted and
    zoomed views too, which doubled the verified failures on emoji-sd.
    """
    scheduler_with_steps(generator.scheduler, steps)
    search = sage_latent_settings(
        paper, gradient=gradient, k=k, step_rule=step_rule, step=step,
        max_iterations=max_iterations,
    )  # fmt: skip
    check_sage_latent(
        radius=radius, weight=weight, absent_below=absent_below, batch_size=batch_size,
        steps=steps, guidance=guidance, keep=keep, **search,
    )  # fmt: skip
    return Attack(
        name="sage-latent",
        space=LatentPerturbation(
            generator, steps, guidance, search["gradient"], search["k"], batch_size, weight
        ),
        goal=TargetAbsent(surrogate, absent_below, views),
        constraints=latent_constraints(keep, radius),
        search=GradientDescent(
            search["step"], search["max_iterations"], rule_named(search["step_rule"])
        ),
    )


def random_latent(
    generator: Generator,
    surrogate: Judge,
    *,
    budget: int | None = None,
    radius: float | None = None,
    keep: Keep = "values",
    steps: int = 25,
    guidance: float = 7.5,
    absent_below: float = 0.1,
    batch_size: int = 8,
    views: bool = True,
) -> Attack:
    """The baseline: random initial latents within a UNet-evaluation budget.

    Without ``radius``, fresh latents (the seed's own first). With it, random search
    inside SAGE's constraints: each fresh latent's δ from the seed's is projected onto
    what ``keep`` keeps and the ±``radius`` box (:func:`latent_constraints`, as
    :func:`sage_latent`), so the candidates lie in the set a gradient attack searches.
    The default budget is what :func:`sage_latent`'s defaults spend at most on ``steps``
    (:func:`sage_latent_budget`).
    """
    scheduler_with_steps(generator.scheduler, steps)
    check_random_latent(
        budget=budget, radius=radius, absent_below=absent_below, batch_size=batch_size,
        steps=steps, guidance=guidance, keep=keep,
    )  # fmt: skip
    budget = budget if budget is not None else sage_latent_budget(steps)
    return Attack(
        name="random-latent",
        space=LatentPerturbation(generator, steps, guidance, "none", 1, batch_size),
        goal=TargetAbsent(surrogate, absent_below, views),
        constraints=latent_constraints(keep, radius) if radius is not None else (),
        search=RandomSearch(budget),
    )


def sage_latent_budget(steps: int, paper: bool = False, **given: object) -> int:
    """The most UNet evaluations :func:`sage_latent` spends on one attempt: each iteration's
    rendering and backward pass, and the last rendering (rounded up)."""
    search = sage_latent_settings(paper, **given)
    cost = evaluation_cost(search["gradient"], search["k"], steps)
    return math.ceil(search["max_iterations"] * cost.total + steps)


def check_sage_latent(
    *,
    paper: bool = False,
    radius: float,
    step: float | None,
    max_iterations: int | None,
    gradient: str | None,
    k: int | None,
    step_rule: str | None,
    weight: float,
    absent_below: float,
    batch_size: int,
    steps: int,
    guidance: float,
    keep: str = "values",
    **_: object,
) -> None:
    """:func:`sage_latent`'s checks that need no model: a CLI runs them before it loads one."""
    _check_keep(keep)
    search = sage_latent_settings(
        paper, gradient=gradient, k=k, step_rule=step_rule, step=step,
        max_iterations=max_iterations,
    )  # fmt: skip
    _check_common(absent_below, batch_size, guidance, steps)
    _require(0 < radius < math.inf, f"radius (--radius) must be a positive number, not {radius}")
    step = search["step"]
    _require(0 < step < math.inf, f"step (--step) must be a positive number, not {step}")
    _require(math.isfinite(weight), f"weight (--weight) must be a finite number, not {weight}")
    _require(  # 0 scores the clean images only: natural failures, and the verifiers' reading
        search["max_iterations"] >= 0,
        f"max_iterations (--max-iterations) must be 0 or more, not {search['max_iterations']}",
    )
    _require(
        search["step_rule"] in STEP_RULES,
        f"step_rule (--step-rule) must be one of {', '.join(STEP_RULES)}, "
        f"not {search['step_rule']!r}",
    )
    check_latent_gradient(search["gradient"], search["k"], steps)


def check_random_latent(
    *,
    budget: int | None,
    radius: float | None,
    absent_below: float,
    batch_size: int,
    steps: int,
    guidance: float,
    keep: str = "values",
    **_: object,
) -> None:
    """:func:`random_latent`'s checks that need no model."""
    _check_keep(keep)
    _check_common(absent_below, batch_size, guidance, steps)
    _require(
        radius is None or 0 < radius < math.inf,
        f"radius (--radius) must be a positive number, not {radius}",
    )
    budget = budget if budget is not None else sage_latent_budget(steps)
    _require(
        budget >= 2 * steps,
        f"a budget of {budget} UNet evaluations pays for no image beyond the clean one of "
        f"{steps} steps: give at least {2 * steps}",
    )


#: The Generator's gradient modes that reach the initial latent.
LATENT_GRADIENTS = tuple(
    mode for mode in typing.get_args(GradientMode) if mode not in ("none", "last-k")
)
LATENT_GRADIENT_HELP = (
    "short-chain (the full render's loss carried back by a k-step DDIM chain), residual (the "
    "last k steps, then SAGE's shortcut to the latent), residual-added (exact plus weight × "
    "that shortcut), first-k (the first k steps, then the sampler's linear term), exact, or "
    "exact-stored (exact without checkpoints)"
)


def check_latent_gradient(gradient: str, k: int, steps: int) -> None:
    """Refuse a gradient mode that gives the initial latent no gradient, or a k it cannot use."""
    why = " (it gives the initial latent no gradient)" if gradient == "last-k" else ""
    _require(
        gradient in LATENT_GRADIENTS,
        f"gradient {gradient!r} cannot attack a latent{why}: use {LATENT_GRADIENT_HELP}",
    )
    _require(
        gradient.startswith("exact") or 1 <= k <= steps,
        f"k must be between 1 and the {steps} steps, not {k} (--k)",
    )


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise FissureError(message)


def _check_common(absent_below: float, batch_size: int, guidance: float, steps: int) -> None:
    check_guidance(guidance)
    _require(steps >= 1, f"steps (--steps) must be at least 1, not {steps}")
    _require(
        0 < absent_below < 1,
        f"absent_below (--absent-below) must be between 0 and 1, not {absent_below}",
    )
    _require(batch_size >= 1, f"batch_size (--batch-size) must be at least 1, not {batch_size}")


#: The Generator's gradient modes that reach the prompt's token embeddings.
PROMPT_GRADIENTS = ("exact-stored", "exact", "last-k")


def sage_prompt(
    generator: Generator,
    surrogate: Judge,
    *,
    language_model: str = "emoji-lm",
    words: int = 3,
    iterations: int = 4,
    step: float = 0.01,
    step_rule: StepName = "l2",
    candidates: int = 50,
    rescored: int = 4,
    gradient: GradientMode = "exact-stored",
    k: int = 2,
    steps: int = 25,
    guidance: float = 7.5,
    absent_below: float = 0.1,
    batch_size: int = 8,
    views: bool = True,
    class_words: bool = False,
    fluency: float | None = 2.0,
    before_noun: bool = True,
    finished_first: bool = True,
) -> Attack:
    """SAGE's prompt search (Liu et al., arXiv 2306.00974): words appended to a prompt that
    names its class, chosen by the gradient among a language model's candidates, until the
    class is gone (:class:`~fissure.attacks.word_search.WordSearch`).

    ``language_model``: ``emoji-lm`` (bundled) or any causal LM id or folder; it proposes
    ``candidates`` words per position, the gradient ranks them and the ``rescored`` best are
    rendered as words. The free tokens [x] and [y] stay within the vocabulary's embedding
    range and take ``iterations`` steps of ``step`` (per element) before each word. Words
    that name one of the surrogate's classes are no candidates unless ``class_words``; a
    prompt found counts only if it is at most ``fluency`` times as perplexing (to the
    language model) as the clean prompt, and words on the way must stay within that as the
    start of a longer prompt (None: no limit). With ``before_noun``, words may also go just
    before the class's name ("a photo of a tiny cat"), steered by a free token there. With
    ``finished_first``, words that leave a prompt fluent enough to succeed are rendered
    before words that need more after them.
    """
    scheduler_with_steps(generator.scheduler, steps)
    check_sage_prompt(
        words=words, iterations=iterations, step=step, step_rule=step_rule,
        candidates=candidates, rescored=rescored, gradient=gradient, k=k, steps=steps,
        guidance=guidance, absent_below=absent_below, batch_size=batch_size, fluency=fluency,
    )  # fmt: skip
    space = PromptExtension(
        generator, spelling_language_model(language_model, generator), steps, guidance,
        gradient, k, batch_size, excluded=_excluded_words(surrogate, class_words),
        fluency=fluency, before_noun=before_noun,
    )  # fmt: skip
    return Attack(
        name="sage-prompt",
        space=space,
        goal=TargetAbsent(surrogate, absent_below, views),
        constraints=(EmbeddingRange.of(space.vocabulary),),
        search=WordSearch(
            words,
            iterations,
            step,
            candidates,
            rescored,
            rule_named(step_rule),
            sage_prompt_budget(
                steps,
                words=words,
                iterations=iterations,
                rescored=rescored,
                gradient=gradient,
                k=k,
            ),
            finished_first,
        ),  # fmt: skip
    )


def random_words(
    generator: Generator,
    surrogate: Judge,
    *,
    language_model: str = "emoji-lm",
    budget: int | None = None,
    words: int = 3,
    candidates: int = 50,
    steps: int = 25,
    guidance: float = 7.5,
    absent_below: float = 0.1,
    batch_size: int = 8,
    views: bool = True,
    class_words: bool = False,
    fluency: float | None = 2.0,
    before_noun: bool = True,
) -> Attack:
    """The baseline of :func:`sage_prompt`: 1 to ``words`` random words from the same
    candidate lists (in the same places), added to the prompt, until the class is gone or the ``budget`` (UNet
    evaluations; default: the most :func:`sage_prompt`'s defaults spend) runs out."""
    scheduler_with_steps(generator.scheduler, steps)
    check_random_words(
        budget=budget, words=words, candidates=candidates, steps=steps, guidance=guidance,
        absent_below=absent_below, batch_size=batch_size, fluency=fluency,
    )  # fmt: skip
    budget = budget if budget is not None else sage_prompt_budget(steps)
    language = spelling_language_model(language_model, generator)
    return Attack(
        name="random-words",
        space=PromptExtension(
            generator,
            language,
            steps,
            guidance,
            "none",
            1,
            batch_size,
            excluded=_excluded_words(surrogate, class_words),
            fluency=fluency,
            before_noun=before_noun,
        ),  # fmt: skip
        goal=TargetAbsent(surrogate, absent_below, views),
        constraints=(),
        search=RandomWords(budget, words, candidates),
    )


def check_universal_token(
    *,
    iterations: int,
    batch: int,
    step: float,
    step_rule: str,
    gradient: str,
    steps: int,
    guidance: float,
    absent_below: float,
    position: str = "start",
    start_scale: float = 4.0,
    **_: object,
) -> None:
    """:func:`universal_token`'s checks that need no model."""
    _require(
        0 < start_scale < math.inf,
        f"start_scale (--start-scale) must be a positive number, not {start_scale}",
    )
    _require(
        position in typing.get_args(TokenPosition),
        f"position (--position) must be start or end, not {position!r}",
    )
    _check_common(absent_below, batch, guidance, steps)
    _require(iterations >= 1, f"iterations (--iterations) must be at least 1, not {iterations}")
    _require(0 < step < math.inf, f"step (--step) must be a positive number, not {step}")
    _require(
        step_rule in STEP_RULES,
        f"step_rule (--step-rule) must be one of {', '.join(STEP_RULES)}, not {step_rule!r}",
    )
    _require(
        gradient in PROMPT_GRADIENTS[:2],
        f"gradient {gradient!r} cannot train a universal token: use exact-stored or exact",
    )


def _excluded_words(surrogate: Judge, allowed: bool) -> frozenset[str]:
    return frozenset() if allowed else naming.class_words(surrogate.labels)


def sage_prompt_budget(steps: int, **given: object) -> int:
    """The UNet evaluations :func:`sage_prompt` spends on one attempt at most (rounded up): the
    clean image, then what a chain of its ``words`` words costs. The search spends it all,
    returning to prompts it did not take, unless it succeeds first."""
    search = {**recipe_defaults(sage_prompt), **given}
    step_cost = evaluation_cost(search["gradient"], search["k"], steps).total
    per_word = word_cost(step_cost, search["iterations"], search["rescored"], steps)
    return math.ceil(steps + search["words"] * per_word)


def spelling_language_model(source: str, generator: Generator) -> LanguageModel:
    """The language model ``source``, if the diffusion model's tokenizer spells its words:
    most of its likeliest words after "a photo of a" must be one token there."""
    language = LanguageModel.from_pretrained(source)
    proposed = language.next_words("a photo of a", 50)
    spelled = [
        c for c in proposed
        if len(generator.tokenizer(c.word, add_special_tokens=False).input_ids) == 1
    ]  # fmt: skip
    _require(
        len(spelled) * 2 >= len(proposed) > 0,
        f"the language model {source} proposes words the diffusion model's tokenizer does not "
        f"spell as single tokens ({len(spelled)} of its {len(proposed)} likeliest after "
        "'a photo of a'): give a language model of the same language",
    )
    return language


def check_sage_prompt(
    *,
    words: int,
    iterations: int,
    step: float,
    step_rule: str,
    candidates: int,
    rescored: int,
    gradient: str,
    k: int,
    steps: int,
    guidance: float,
    absent_below: float,
    batch_size: int,
    fluency: float | None = 2.0,
    **_: object,
) -> None:
    """:func:`sage_prompt`'s checks that need no model."""
    _check_common(absent_below, batch_size, guidance, steps)
    _check_words(words, candidates, fluency)
    _require(iterations >= 0, f"iterations (--iterations) must be 0 or more, not {iterations}")
    _require(0 < step < math.inf, f"step (--step) must be a positive number, not {step}")
    _require(
        step_rule in STEP_RULES,
        f"step_rule (--step-rule) must be one of {', '.join(STEP_RULES)}, not {step_rule!r}",
    )
    _require(
        1 <= rescored <= candidates,
        f"rescored (--rescored) must be between 1 and the {candidates} candidates, not {rescored}",
    )
    _require(
        gradient in PROMPT_GRADIENTS,
        f"gradient {gradient!r} cannot reach the prompt's tokens: use {', '.join(PROMPT_GRADIENTS)}",
    )
    _require(
        gradient != "last-k" or 1 <= k <= steps,
        f"k must be between 1 and the {steps} steps, not {k} (--k)",
    )


def check_random_words(
    *,
    budget: int | None,
    words: int,
    candidates: int,
    steps: int,
    guidance: float,
    absent_below: float,
    batch_size: int,
    fluency: float | None = 2.0,
    **_: object,
) -> None:
    """:func:`random_words`' checks that need no model."""
    _check_common(absent_below, batch_size, guidance, steps)
    _check_words(words, candidates, fluency)
    budget = budget if budget is not None else sage_prompt_budget(steps)
    _require(
        budget >= 2 * steps,
        f"a budget of {budget} UNet evaluations pays for no image beyond the clean one of "
        f"{steps} steps: give at least {2 * steps}",
    )


def _check_words(words: int, candidates: int, fluency: float | None) -> None:
    _require(words >= 1, f"words (--words) must be at least 1, not {words}")
    _require(
        fluency is None or 1 <= fluency < math.inf,
        f"fluency (--fluency) must be 1 or more (or 0 for no limit), not {fluency}",
    )
    _require(candidates >= 1, f"candidates (--candidates) must be at least 1, not {candidates}")


def universal_token(
    generator: Generator,
    surrogate: Judge,
    *,
    target: str | None,
    iterations: int = 40,
    batch: int = 8,
    step: float = 0.003,
    step_rule: StepName = "adam",
    gradient: GradientMode = "exact-stored",
    steps: int = 25,
    guidance: float = 7.5,
    absent_below: float = 0.1,
    views: bool = True,
    position: TokenPosition = "start",
    start_scale: float = 4.0,
) -> UniversalToken:
    """SAGE's universal token: one embedding added to every prompt, trained by minibatch
    descent (``iterations`` steps of ``batch`` (prompt, seed) pairs) so that ``target``
    appears, or (``target=None``) so that each prompt's own class vanishes.

    A targeted token starts from the target's word embedding stretched ``start_scale``
    times (within the vocabulary's range) and goes first in the prompt, where CLIP's causal
    text encoder lets it condition every word: from the vocabulary's mean, at the end, no
    token reached a held-out image in 40 to 150 steps (docs/sage-prompt.md)."""
    scheduler_with_steps(generator.scheduler, steps)
    check_universal_token(
        iterations=iterations, batch=batch, step=step, step_rule=step_rule, gradient=gradient,
        steps=steps, guidance=guidance, absent_below=absent_below, position=position,
        start_scale=start_scale,
    )  # fmt: skip
    if target is not None:
        label_column(surrogate.labels, target)  # an unknown class is one line
    space = TokenSpace(generator, steps, guidance, gradient, batch, position)
    goal = (
        TargetPresent(surrogate, views) if target is not None
        else TargetAbsent(surrogate, absent_below, views)
    )  # fmt: skip
    vocabulary = generator.text_encoder.get_input_embeddings().weight
    return UniversalToken(
        space, goal, (EmbeddingRange.of(vocabulary),),
        TokenDescent(iterations, batch, step, rule_named(step_rule)), target,
        attack_name(target), start_scale,
    )  # fmt: skip


def atm(
    generator: Generator,
    classifier: Judge,
    *,
    language_model: str = "emoji-lm",
    mode: AtmMode = "extend",
    extra: int | None = None,
    iterations: int = 100,
    step: float = 0.3,
    samples: int = 100,
    temperature: float = 1.0,
    loss: Literal["cw", "ce"] = "cw",
    kappa: float = 30.0,
    similarity: float = 4.0,
    fluency: float = 0.0,
    idf_prompts: list[str] | None = None,
    start_value: float = 15.0,
    gradient: GradientMode = "last-k",
    k: int = 1,
    steps: int = 25,
    guidance: float = 7.5,
    batch_size: int = 8,
) -> Attack:
    """ATM (Du et al., "Stable Diffusion is Unstable", arXiv 2306.02583), with its released
    code's choices as defaults: log-coefficients over the vocabulary at the free positions
    (``mode`` extend: after the prompt, ``extra`` of them, None for all to the encoder's
    length; substitute: the prompt's words but the class's name), the clean tokens starting
    at ``start_value``; ``iterations`` Adam steps of ``step`` through Gumbel-softmax draws of
    ``temperature``, rendered with the ``gradient`` path (the code differentiates the last
    step: last-k, k = 1); loss: the Carlini–Wagner margin (κ = ``kappa``) or cross-entropy on
    ``classifier`` (zero-shot CLIP in the paper), plus ``similarity`` × the IDF-weighted
    BERTScore (IDF over ``idf_prompts``, the prompt set; None: uniform) and ``fluency`` × the
    log-perplexity, both over ``language_model``, which must read the diffusion model's own
    tokenizer when either weight is not 0. Then ``samples`` hard draws, counted by
    :func:`~fissure.attacks.goals.atm_success`.
    """
    scheduler_with_steps(generator.scheduler, steps)
    check_atm(
        mode=mode, extra=extra, iterations=iterations, step=step, samples=samples,
        temperature=temperature, loss=loss, kappa=kappa, similarity=similarity,
        fluency=fluency, gradient=gradient, k=k, steps=steps, guidance=guidance,
        batch_size=batch_size,
    )  # fmt: skip
    language = LanguageModel.from_pretrained(language_model)
    _require(
        (similarity == 0 and fluency == 0) or language.shares_vocabulary(generator.tokenizer),
        f"the language model {language_model} numbers tokens unlike the diffusion model's "
        "tokenizer, so ATM's similarity and fluency terms cannot read its word distributions: "
        "give a language model trained on that tokenizer (emoji-lm for emoji-sd), or "
        "--similarity 0 --fluency 0",
    )
    idf = IdfWeights.of(idf_prompts, generator.tokenizer) if idf_prompts else None
    penalties = [
        term
        for term in (
            BertScoreSimilarity.over(language, similarity, idf) if similarity else None,
            RelaxedFluency(language, fluency) if fluency else None,
        )
        if term is not None
    ]
    return Attack(
        name="atm",
        space=WordDistributions(
            generator,
            language,
            mode,
            extra,
            start_value,
            steps,
            guidance,
            gradient,
            k,
            batch_size,
        ),  # fmt: skip
        goal=ClassifierMargin(classifier, kappa, loss),
        constraints=tuple(penalties),
        search=GumbelSearch(iterations, step, samples, temperature),
    )


def random_tokens(
    generator: Generator,
    classifier: Judge,
    *,
    language_model: str = "emoji-lm",
    mode: AtmMode = "extend",
    extra: int | None = None,
    change: float = 0.15,
    samples: int = 200,
    steps: int = 25,
    guidance: float = 7.5,
    batch_size: int = 8,
) -> Attack:
    """ATM's baseline: random words in its space, without its optimisation. Each free
    position of ATM's space (``mode``, ``extra``) keeps its starting token, or with
    probability ``change`` takes a whole word drawn uniformly from the vocabulary;
    ``samples`` such prompts are rendered and counted by
    :func:`~fissure.attacks.goals.atm_success`, as ATM's draws are. (ATM's search with no
    steps, from log-coefficients that give the start token probability 1 − ``change``.)"""
    _require(0 < change < 1, f"change (--change) must be between 0 and 1, not {change}")
    attack = atm(
        generator, classifier, language_model=language_model, mode=mode, extra=extra,
        iterations=0, samples=samples, similarity=0.0, fluency=0.0, steps=steps,
        guidance=guidance, batch_size=batch_size,
    )  # fmt: skip
    space = attack.space
    space.words_only = True
    space.start_value = math.log((1 - change) * int(space.word_tokens.sum()) / change)
    attack.name = "random-tokens"
    return attack


def check_random_tokens(*, change: float, samples: int, **options: object) -> None:
    """:func:`random_tokens`' checks that need no model."""
    _require(0 < change < 1, f"change (--change) must be between 0 and 1, not {change}")
    check_atm(**{**recipe_defaults(atm), **options, "samples": samples})


def check_atm(
    *,
    mode: str,
    extra: int | None,
    iterations: int,
    step: float,
    samples: int,
    temperature: float,
    loss: str,
    kappa: float,
    similarity: float,
    fluency: float,
    gradient: str,
    k: int,
    steps: int,
    guidance: float,
    batch_size: int,
    **_: object,
) -> None:
    """:func:`atm`'s checks that need no model."""
    check_guidance(guidance)
    _require(steps >= 1, f"steps (--steps) must be at least 1, not {steps}")
    _require(batch_size >= 1, f"batch_size (--batch-size) must be at least 1, not {batch_size}")
    _require(
        mode in ("extend", "substitute"),
        f"mode (--mode) must be extend or substitute, not {mode!r}",
    )
    _require(extra is None or extra >= 1, f"extra (--extra) must be at least 1, not {extra}")
    _require(iterations >= 0, f"iterations (--iterations) must be 0 or more, not {iterations}")
    _require(0 < step < math.inf, f"step (--step) must be a positive number, not {step}")
    _require(samples >= 1, f"samples (--samples) must be at least 1, not {samples}")
    _require(
        0 < temperature < math.inf,
        f"temperature (--temperature) must be a positive number, not {temperature}",
    )
    _require(loss in ("cw", "ce"), f"loss (--loss) must be cw or ce, not {loss!r}")
    _require(0 <= kappa < math.inf, f"kappa (--kappa) must be 0 or more, not {kappa}")
    for name, weight in (("similarity", similarity), ("fluency", fluency)):
        _require(0 <= weight < math.inf, f"{name} (--{name}) must be 0 or more, not {weight}")
    _require(
        gradient in PROMPT_GRADIENTS,
        f"gradient {gradient!r} does not reach the prompt's tokens: use "
        f"{', '.join(PROMPT_GRADIENTS)}",
    )
    _require(
        gradient != "last-k" or 1 <= k <= steps,
        f"k (--k) must be between 1 and the steps ({steps}), not {k}",
    )


ATTACKS: dict[str, Callable[..., Attack]] = {
    "sage-latent": sage_latent,
    "random-latent": random_latent,
    "sage-prompt": sage_prompt,
    "random-words": random_words,
    "atm": atm,
    "random-tokens": random_tokens,
}
#: Each attack's checks of its options that need no model, by name.
OPTION_CHECKS: dict[str, Callable[..., None]] = {
    "sage-latent": check_sage_latent,
    "random-latent": check_random_latent,
    "sage-prompt": check_sage_prompt,
    "random-words": check_random_words,
    "atm": check_atm,
    "random-tokens": check_random_tokens,
}


def recipe_defaults(recipe: Callable[..., object]) -> dict[str, object]:
    """A recipe's options (its keyword-only parameters) and their defaults."""
    parameters = inspect.signature(recipe).parameters.values()
    return {p.name: p.default for p in parameters if p.kind is p.KEYWORD_ONLY}


def check_options(name: str, options: Mapping[str, object]) -> None:
    """Refuse bad options of the attack ``name`` before any model loads; the recipe's
    defaults stand in for options not given."""
    defaults = recipe_defaults(ATTACKS[name])
    unknown = sorted(set(options) - set(defaults))
    _require(
        not unknown, f"{name} has no option {', '.join(unknown)}: it takes {', '.join(defaults)}"
    )
    hints = typing.get_type_hints(ATTACKS[name])
    for option, value in options.items():
        if not _is_a(value, hints[option]):
            raise FissureError(
                f"{name}'s option {option} must be {_type_name(hints[option])}, not {value!r}"
            )
    OPTION_CHECKS[name](**{**defaults, **options})


def _is_a(value: object, hint: object) -> bool:
    """Whether a campaign file's value fits an option's type (an int passes for a float)."""
    origin = typing.get_origin(hint)
    if origin is typing.Literal:  # its values: the recipe's own check says which it takes
        return all(isinstance(value, type(choice)) for choice in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return any(_is_a(value, member) for member in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _type_name(hint: object) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return "a string"
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(member) for member in typing.get_args(hint))
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            type(None): "absent"}.get(hint, str(hint))  # fmt: skip
