"""`fissure attack ...`: run an attack recipe over prompts and seeds into a findings folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fissure.commands.options import Device, Dtype
from fissure.commands.outcome import run_and_report
from fissure.console import counted, quiet_libraries, user_errors

attack_app = typer.Typer(
    help="Attack a model: each attempt (prompt, seed) becomes a finding, verified by held-out judges.",
    no_args_is_help=True,
)

Prompts = Annotated[
    list[str] | None,
    typer.Option(
        "--prompt", "-p", help="A prompt to attack; repeat for more (give this or --classes)."
    ),
]
Keep = Annotated[
    str,
    typer.Option(
        help="What z + δ keeps of the seed's z besides the box: values (a rearrangement of "
        "its elements: norm and distribution, so the latent stays typical), norm, or none."
    ),
]
Classes = Annotated[
    str | None,
    typer.Option(
        help="Attack the template for these classes: 'all' or a comma list (cat,dog); "
        "separate labels that hold commas with ';' (give this or --prompt)."
    ),
]
Template = Annotated[
    str | None,
    typer.Option(
        help="Prompt template for --classes; {} is the class as captions say it "
        "('an owl', 'a pair of glasses'). Default: 'a photo of {}'."
    ),
]
Target = Annotated[
    str | None, typer.Option(help="The class to remove (default: the class the prompt names).")
]
Seeds = Annotated[str, typer.Option(help="Seeds: N, N-M or a list such as 0-7,12.")]
Out = Annotated[
    Path,
    typer.Option(
        help="Results store folder: results.db, blobs/ (images, δ), index.html. A rerun "
        "resumes; other attacks may share the folder."
    ),
]
Model = Annotated[
    str, typer.Option("--model", "-m", help="emoji-sd (bundled), a diffusers folder, or a hub id.")
]
Surrogate = Annotated[
    list[str] | None,
    typer.Option(
        "--judge",
        help="The surrogate judge the attack minimises; repeat it for an ensemble of judges "
        "over one label list, SAGE's robust surrogate (e.g. --judge microsoft/resnet-50 "
        "--judge google/vit-base-patch16-224). Default: emoji/surrogate (four emoji judges), "
        "for models of the emoji world's 64-pixel images.",
    ),
]
VerifierNames = Annotated[
    list[str] | None,
    typer.Option(
        "--verifier",
        help="A held-out judge that must agree (repeatable; replaces the default). Default: "
        "emoji/verifier and emoji/clip, for models of the emoji world. A CLIP verifier "
        "(clip:<id or folder>) zero-shots over the --judge's labels.",
    ),
]
Steps = Annotated[int, typer.Option(help="DDIM steps per image.")]
Guidance = Annotated[float, typer.Option(help="Classifier-free guidance scale.")]
AbsentBelow = Annotated[
    float,
    typer.Option(
        help="The target counts as gone below this probability, for the surrogate (success) "
        "and for the verifiers alike (verified, and the natural-failure screen)."
    ),
]
Views = Annotated[
    bool,
    typer.Option(help="The surrogate must also agree on flipped, shifted and zoomed views."),
]
BatchSize = Annotated[int, typer.Option(help="Attempts attacked together in one UNet batch.")]


def run_attack_command(
    attack_name: str,
    recipe_options: dict[str, Any],
    *,
    out: Path,
    prompts: list[str] | None = None,
    classes: str | None = None,
    template: str | None = None,
    target: str | None = None,
    seeds: str = "0-9",
    model: str = "emoji-sd",
    surrogate: list[str] | None = None,
    verifiers: list[str] | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    prompt_targets: dict[str, str] | None = None,
    default_surrogate: list[str] | None = None,
    default_verifiers: list[str] | None = None,
):
    """Shared by every attack command: a one-attack campaign named after the attack, in the
    results store at ``out``; then the summary and the page. ``prompt_targets``: each
    prompt's class where a prompt set says it; the defaults: the judges an attack uses when
    none are given (the emoji world's surrogate and verifiers unless it says otherwise)."""
    from fissure.attacks.recipes import check_options
    from fissure.campaign import AttackSpec, CampaignConfig
    from fissure.campaign.config import DEFAULT_SURROGATE, DEFAULT_VERIFIERS
    from fissure.campaign.worker import check_verifiers_outside_the_loss, split_class_names
    from fissure.errors import FissureError
    from fissure.generate import parse_seeds
    from fissure.models.loading import resolve_device
    from fissure.outputs import check_output_dir
    from fissure.results import ResultsStore
    from fissure.results.legacy import import_run_folder, needs_import

    if bool(prompts) == (classes is not None):
        raise FissureError("give either --prompt (repeatable) or --classes, not both or neither")
    if classes is not None and target is not None:
        raise FissureError("--target is for --prompt: with --classes each class is its own target")
    if prompts and template is not None:
        raise FissureError("--template is for --classes: a --prompt is attacked as written")
    if classes is not None:
        split_class_names(classes, [])  # "names no class" before any model loads
    if template is not None and template.count("{}") != 1:
        raise FissureError(f"--template needs one {{}} where the class goes, not {template!r}")
    seed_list = parse_seeds(seeds)
    check_options(attack_name, recipe_options)  # before the model loads
    surrogate_names = list(dict.fromkeys(surrogate or default_surrogate or DEFAULT_SURROGATE))
    verifier_names = list(dict.fromkeys(verifiers or default_verifiers or DEFAULT_VERIFIERS))
    check_verifiers_outside_the_loss(surrogate_names, verifier_names)
    resolve_device(device)
    config = CampaignConfig(
        name=attack_name,
        attacks=[AttackSpec(attack_name, attack_name, recipe_options)],
        models=[model],
        prompts=list(dict.fromkeys(prompts)) if prompts else None,
        classes=[classes] if classes is not None else None,
        template=template,
        target=target,
        prompt_targets=prompt_targets,
        seeds=seed_list,
        judges=surrogate_names,
        verifiers=verifier_names,
        device=device,
        dtype=dtype,
        default_judges=not surrogate or not verifiers,
    )
    check_output_dir(out)  # made by the store, once the inputs are known good
    quiet_libraries()
    if needs_import(out):  # a folder of fissure before the store: its findings come along
        with ResultsStore(out) as store:
            _, count = import_run_folder(out, store)
        typer.echo(
            f"imported {counted(count, 'finding')} of {out / 'findings.jsonl'} into the store"
        )

    def announce(attempts: list, done: int) -> None:
        _print_targets(attempts)
        if done:
            typer.echo(f"resuming: {done} of them are already in {out}")

    return run_and_report(config, out, f"{attack_name} on {model}", on_plan=announce)


def _print_targets(attempts: list) -> None:
    """Say what is attacked before the long work starts: each prompt's target, as inferred."""
    targets = list(dict.fromkeys((attempt.prompt, attempt.target) for attempt in attempts))
    shown = "; ".join(f"{prompt!r} → {target}" for prompt, target in targets[:3])
    more = f"; and {len(targets) - 3} more prompts" if len(targets) > 3 else ""
    typer.echo(f"attacking {counted(len(attempts), 'attempt')}: {shown}{more}")


@attack_app.command("sage-latent")
@user_errors
def sage_latent(
    out: Out,
    prompt: Prompts = None,
    classes: Classes = None,
    template: Template = None,
    target: Target = None,
    seeds: Seeds = "0-9",
    model: Model = "emoji-sd",
    judge: Surrogate = None,
    verifier: VerifierNames = None,
    paper: Annotated[
        bool,
        typer.Option(
            "--paper",
            help="SAGE's search as the paper describes it: residual gradient from the last 2 "
            "steps, sign steps of 0.05, 100 iterations (options given still override).",
        ),
    ] = False,
    gradient: Annotated[
        str | None,
        typer.Option(
            help="How ∂loss/∂δ is taken: short-chain (the full render's loss carried back by "
            "a k-step DDIM chain), residual (the last k steps, then SAGE's shortcut), "
            "residual-added (exact plus --weight × that shortcut), first-k (the first k steps, "
            "then the sampler's linear term), exact, or exact-stored (no checkpoints). "
            "Default: exact-stored."
        ),
    ] = None,
    k: Annotated[
        int | None,
        typer.Option(
            help="Steps on the gradient path (short-chain: the chain's steps; residual: the "
            "last k; first-k: the first k). Default: 2 (unused by exact-stored)."
        ),
    ] = None,
    step_rule: Annotated[
        str | None,
        typer.Option(
            help="sign (SAGE's), l2 (normalised gradient) or adam (clipped). Default: l2."
        ),
    ] = None,
    step: Annotated[
        float | None,
        typer.Option(help="Step size, per element of δ. Default: 0.4."),
    ] = None,
    max_iterations: Annotated[
        int | None,
        typer.Option(help="Gradient steps per attempt at most. Default: 20."),
    ] = None,
    weight: Annotated[float, typer.Option(help="residual-added's weight of the shortcut.")] = 1.0,
    radius: Annotated[float, typer.Option(help="δ stays within ±radius per element.")] = 1.0,
    keep: Keep = "values",
    views: Views = True,
    steps: Steps = 25,
    guidance: Guidance = 7.5,
    absent_below: AbsentBelow = 0.1,
    batch_size: BatchSize = 8,
    device: Device = "cpu",
    dtype: Dtype = "float32",
) -> None:
    """SAGE's latent attack: gradient steps on the initial latent until the target is gone."""
    given = dict(
        gradient=gradient, k=k, step_rule=step_rule, step=step, max_iterations=max_iterations
    )
    options = dict(
        paper=paper, weight=weight, radius=radius, steps=steps, guidance=guidance,
        absent_below=absent_below, batch_size=batch_size, keep=keep, views=views,
        **{name: value for name, value in given.items() if value is not None},
    )  # fmt: skip
    run_attack_command(
        "sage-latent", options, out=out, prompts=prompt, classes=classes, template=template,
        target=target, seeds=seeds, model=model, surrogate=judge, verifiers=verifier, device=device,
        dtype=dtype,
    )  # fmt: skip


@attack_app.command("random-latent")
@user_errors
def random_latent(
    out: Out,
    prompt: Prompts = None,
    classes: Classes = None,
    template: Template = None,
    target: Target = None,
    seeds: Seeds = "0-9",
    model: Model = "emoji-sd",
    judge: Surrogate = None,
    verifier: VerifierNames = None,
    budget: Annotated[
        int | None,
        typer.Option(
            help="UNet evaluations per attempt. Default: the most sage-latent spends with its "
            "default settings (the budget its findings page shows)."
        ),
    ] = None,
    radius: Annotated[
        float | None,
        typer.Option(
            help="Search inside sage-latent's constraints: each random latent's δ from the "
            "seed's projected onto what --keep keeps and the ±radius box. Default: fresh latents."
        ),
    ] = None,
    keep: Keep = "values",
    steps: Steps = 25,
    guidance: Guidance = 7.5,
    absent_below: AbsentBelow = 0.1,
    views: Views = True,
    batch_size: BatchSize = 8,
    device: Device = "cpu",
    dtype: Dtype = "float32",
) -> None:
    """The baseline: fresh initial latents, scored like an attack, within a UNet-evaluation budget."""
    options = dict(
        budget=budget, radius=radius, keep=keep, steps=steps, guidance=guidance,
        absent_below=absent_below, batch_size=batch_size, views=views,
    )  # fmt: skip
    run_attack_command(
        "random-latent", options, out=out, prompts=prompt, classes=classes, template=template,
        target=target, seeds=seeds, model=model, surrogate=judge, verifiers=verifier, device=device,
        dtype=dtype,
    )  # fmt: skip


LanguageModelOption = Annotated[
    str,
    typer.Option(
        "--language-model",
        help="Proposes the candidate words and scores fluency: emoji-lm (bundled) or any "
        "causal LM id or folder (gpt2 ...) whose words the model's tokenizer spells.",
    ),
]
Words = Annotated[int, typer.Option(help="Words added to the prompt at most.")]
Candidates = Annotated[
    int, typer.Option(help="The language model's likeliest next words to choose among.")
]
Fluency = Annotated[
    float,
    typer.Option(
        help="A found prompt counts only if it is at most this many times as perplexing to "
        "the language model as the clean prompt; a word on the way must keep the prompt so far "
        "within it as the start of a longer one (0: no limit)."
    ),
]
ClassWords = Annotated[
    bool,
    typer.Option(
        help="Let candidates name a class of the judge (off: adding another class's name "
        "removes the target trivially)."
    ),
]
BeforeNoun = Annotated[
    bool,
    typer.Option(
        "--before-noun/--end-only",
        help="Words may also go just before the class's name ('a photo of a tiny cat'), not "
        "only after the prompt.",
    ),
]


@attack_app.command("sage-prompt")
@user_errors
def sage_prompt(
    out: Out,
    prompt: Prompts = None,
    classes: Classes = None,
    template: Template = None,
    target: Target = None,
    seeds: Seeds = "0-9",
    model: Model = "emoji-sd",
    judge: Surrogate = None,
    verifier: VerifierNames = None,
    language_model: LanguageModelOption = "emoji-lm",
    words: Words = 3,
    iterations: Annotated[
        int, typer.Option(help="Gradient steps on the free tokens [x] and [y] before each word.")
    ] = 4,
    step: Annotated[
        float, typer.Option(help="Step size per element of the free token embeddings.")
    ] = 0.01,
    step_rule: Annotated[
        str, typer.Option(help="sign, l2 (normalised gradient) or adam (clipped).")
    ] = "l2",
    candidates: Candidates = 50,
    rescored: Annotated[
        int,
        typer.Option(help="Candidates the gradient ranks best, rendered as words to choose from."),
    ] = 4,
    gradient: Annotated[
        str,
        typer.Option(
            help="How ∂loss/∂tokens is taken: exact-stored (every step, no checkpoints), exact "
            "(checkpointed), or last-k (the last --k steps only)."
        ),
    ] = "exact-stored",
    k: Annotated[int, typer.Option(help="last-k's steps on the gradient path.")] = 2,
    class_words: ClassWords = False,
    fluency: Fluency = 2.0,
    before_noun: BeforeNoun = True,
    finished_first: Annotated[
        bool,
        typer.Option(
            "--finished-first/--gradient-order",
            help="Render words that leave a prompt fluent enough to succeed before those that "
            "need more words (each group in the gradient's order), or in the gradient's order.",
        ),
    ] = True,
    views: Views = True,
    steps: Steps = 25,
    guidance: Guidance = 7.5,
    absent_below: AbsentBelow = 0.1,
    batch_size: BatchSize = 8,
    device: Device = "cpu",
    dtype: Dtype = "float32",
) -> None:
    """SAGE's prompt search: words added to a prompt that names its class (after it, and
    before the class's name), chosen by the gradient among a language model's candidates,
    until the class is gone from the image."""
    options = dict(
        language_model=language_model, words=words, iterations=iterations, step=step,
        step_rule=step_rule, candidates=candidates, rescored=rescored, gradient=gradient, k=k,
        class_words=class_words, fluency=fluency or None, before_noun=before_noun, views=views,
        steps=steps, guidance=guidance, absent_below=absent_below, batch_size=batch_size,
        finished_first=finished_first,
    )  # fmt: skip
    run_attack_command(
        "sage-prompt", options, out=out, prompts=prompt, classes=classes, template=template,
        target=target, seeds=seeds, model=model, surrogate=judge, verifiers=verifier, device=device,
        dtype=dtype,
    )  # fmt: skip


@attack_app.command("random-words")
@user_errors
def random_words(
    out: Out,
    prompt: Prompts = None,
    classes: Classes = None,
    template: Template = None,
    target: Target = None,
    seeds: Seeds = "0-9",
    model: Model = "emoji-sd",
    judge: Surrogate = None,
    verifier: VerifierNames = None,
    language_model: LanguageModelOption = "emoji-lm",
    budget: Annotated[
        int | None,
        typer.Option(
            help="UNet evaluations per attempt. Default: the most sage-prompt spends with its "
            "default settings."
        ),
    ] = None,
    words: Words = 3,
    candidates: Candidates = 50,
    class_words: ClassWords = False,
    fluency: Fluency = 2.0,
    before_noun: BeforeNoun = True,
    views: Views = True,
    steps: Steps = 25,
    guidance: Guidance = 7.5,
    absent_below: AbsentBelow = 0.1,
    batch_size: BatchSize = 8,
    device: Device = "cpu",
    dtype: Dtype = "float32",
) -> None:
    """sage-prompt's baseline: 1 to --words random words from the same candidate lists,
    added to the prompt in the same places, within a UNet-evaluation budget."""
    options = dict(
        language_model=language_model, budget=budget, words=words, candidates=candidates,
        class_words=class_words, fluency=fluency or None, before_noun=before_noun, views=views,
        steps=steps, guidance=guidance, absent_below=absent_below, batch_size=batch_size,
    )  # fmt: skip
    run_attack_command(
        "random-words", options, out=out, prompts=prompt, classes=classes, template=template,
        target=target, seeds=seeds, model=model, surrogate=judge, verifiers=verifier, device=device,
        dtype=dtype,
    )  # fmt: skip


AtmPrompts = Annotated[
    str,
    typer.Option(
        "--prompts",
        help="short ('a photo of a <class> and a'), long (two sentences about the class in "
        "the world's words), or a file: a CSV with prompt and classname columns, or a text "
        "file of one prompt a line, each naming its class.",
    ),
]
AtmClasses = Annotated[
    str, typer.Option(help="The classes of short or long prompts: 'all' or a comma list.")
]
AtmSeeds = Annotated[
    str, typer.Option(help="Seeds (ATM's code draws every image from one fixed seed).")
]
Classifier = Annotated[
    list[str] | None,
    typer.Option(
        "--judge",
        help="The classifier in ATM's loss and success: zero-shot CLIP in the paper. "
        "Default: emoji/clip (emoji-sd's own CLIP); clip:<id> for real checkpoints.",
    ),
]
HeldOut = Annotated[
    list[str] | None,
    typer.Option(
        "--verifier",
        help="Held-out judges whose agreement is reported beside ATM's count (repeatable). "
        "Default: emoji/verifier and emoji/surrogate, the emoji judges ATM's loss does not use.",
    ),
]
AtmLanguageModel = Annotated[
    str,
    typer.Option(
        "--language-model",
        help="Its states give the BERTScore term and its predictions the fluency term; it "
        "must read the diffusion model's tokenizer (emoji-lm reads emoji-sd's).",
    ),
]
Mode = Annotated[
    str,
    typer.Option(
        help="extend: words after the prompt change (the released code); substitute: the "
        "prompt's own words other than the class's name (the paper's)."
    ),
]
Extra = Annotated[
    int | None,
    typer.Option(
        help="Positions extend appends. Default: every one to the text encoder's length, "
        "as the code frees the padding."
    ),
]


def _run_atm_command(name: str, options: dict, prompts: str, classes: str, judge, **run) -> None:
    """ATM and its baseline: the prompt set with its classes, ATM's verifiers by default,
    then ATM's own count beside the verifiers'."""
    from fissure.attacks.prompt_sets import prompt_set
    from fissure.campaign.worker import split_class_names
    from fissure.errors import FissureError
    from fissure.judges.registry import load_judge

    judges = list(judge or ["emoji/clip"])
    if len(judges) != 1:
        raise FissureError("ATM's loss reads one classifier: give --judge once")
    labels = load_judge(judges[0]).labels
    pairs = prompt_set(prompts, labels, split_class_names(classes, list(labels)))
    if name == "atm":
        options = {**options, "idf_prompts": [prompt for prompt, _ in pairs]}
    outcome = run_attack_command(
        name, options, prompts=[prompt for prompt, _ in pairs], surrogate=judges,
        prompt_targets=dict(pairs), default_verifiers=["emoji/verifier", "emoji/surrogate"],
        **run,
    )  # fmt: skip
    _print_atm_count(outcome.current)


@attack_app.command("atm")
@user_errors
def atm(
    out: Out,
    prompts: AtmPrompts = "short",
    classes: AtmClasses = "all",
    seeds: AtmSeeds = "0",
    model: Model = "emoji-sd",
    judge: Classifier = None,
    verifier: HeldOut = None,
    language_model: AtmLanguageModel = "emoji-lm",
    mode: Mode = "extend",
    extra: Extra = None,
    iterations: Annotated[int, typer.Option(help="Adam steps on the log-coefficients.")] = 100,
    step: Annotated[float, typer.Option(help="Adam's learning rate.")] = 0.3,
    samples: Annotated[
        int, typer.Option(help="Hard draws after the last step, each a prompt rendered.")
    ] = 100,
    temperature: Annotated[float, typer.Option(help="The Gumbel-softmax temperature.")] = 1.0,
    loss: Annotated[
        str, typer.Option(help="cw (Carlini-Wagner margin, the code's) or ce (cross-entropy).")
    ] = "cw",
    kappa: Annotated[float, typer.Option(help="The margin's κ, on 100 × CLIP cosine.")] = 30.0,
    similarity: Annotated[
        float, typer.Option(help="Weight of the IDF-weighted BERTScore term (0: none).")
    ] = 4.0,
    fluency: Annotated[
        float, typer.Option(help="Weight of the log-perplexity term (the code's: 0).")
    ] = 0.0,
    start_value: Annotated[
        float, typer.Option(help="The log-coefficient the clean tokens start at.")
    ] = 15.0,
    gradient: Annotated[
        str,
        typer.Option(
            help="How the gradient reaches the prompt: last-k (the code's: the last --k steps), "
            "exact (every step, checkpointed) or exact-stored."
        ),
    ] = "last-k",
    k: Annotated[int, typer.Option(help="last-k's steps on the gradient path.")] = 1,
    steps: Steps = 25,
    guidance: Guidance = 7.5,
    batch_size: BatchSize = 8,
    device: Device = "cpu",
    dtype: Dtype = "float32",
) -> None:
    """ATM ("Stable Diffusion is Unstable"): Gumbel-softmax word search that keeps the class
    word, counted as its code counts success, with our verifiers' reading beside it."""
    options = dict(
        language_model=language_model, mode=mode, extra=extra, iterations=iterations, step=step,
        samples=samples, temperature=temperature, loss=loss, kappa=kappa, similarity=similarity,
        fluency=fluency, start_value=start_value, gradient=gradient, k=k, steps=steps,
        guidance=guidance, batch_size=batch_size,
    )  # fmt: skip
    _run_atm_command(
        "atm", options, prompts, classes, judge, out=out, seeds=seeds, model=model,
        verifiers=verifier, device=device, dtype=dtype,
    )  # fmt: skip


@attack_app.command("random-tokens")
@user_errors
def random_tokens(
    out: Out,
    prompts: AtmPrompts = "short",
    classes: AtmClasses = "all",
    seeds: AtmSeeds = "0",
    model: Model = "emoji-sd",
    judge: Classifier = None,
    verifier: HeldOut = None,
    language_model: AtmLanguageModel = "emoji-lm",
    mode: Mode = "extend",
    extra: Extra = None,
    change: Annotated[
        float, typer.Option(help="The chance that a free position takes a random token.")
    ] = 0.15,
    samples: Annotated[int, typer.Option(help="Random prompts rendered per attempt.")] = 200,
    steps: Steps = 25,
    guidance: Guidance = 7.5,
    batch_size: BatchSize = 8,
    device: Device = "cpu",
    dtype: Dtype = "float32",
) -> None:
    """ATM's baseline: random tokens at ATM's free positions, no optimisation, counted as
    ATM counts."""
    options = dict(
        language_model=language_model, mode=mode, extra=extra, change=change, samples=samples,
        steps=steps, guidance=guidance, batch_size=batch_size,
    )  # fmt: skip
    _run_atm_command(
        "random-tokens", options, prompts, classes, judge, out=out, seeds=seeds, model=model,
        verifiers=verifier, device=device, dtype=dtype,
    )  # fmt: skip


def _print_atm_count(findings: list) -> None:
    """ATM's own figure: successes over the prompts its code would attack, and how many of
    them our verifiers confirm."""
    skipped = [f for f in findings if (f.scores or {}).get("clean_misclassified")]
    attacked = [f for f in findings if f not in skipped]
    successes = [f for f in attacked if f.success]
    confirmed = [f for f in successes if f.verified_failure]
    rate = f" ({len(successes) / len(attacked):.1%})" if attacked else ""
    typer.echo(
        f"ATM success (top-1 not the class, class word kept; as its code counts): "
        f"{len(successes)} of {counted(len(attacked), 'attempt')} attacked{rate}, "
        f"{len(skipped)} skipped as misread before the attack; "
        f"confirmed by the verifiers: {len(confirmed)} of {len(successes)}"
    )
