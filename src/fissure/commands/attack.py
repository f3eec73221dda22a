"""`fissure attack ...`: run an attack recipe over prompts and seeds into a findings folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fissure.commands.options import Device, Dtype
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
Out = Annotated[Path, typer.Option(help="Run folder: findings.jsonl, images, index.html.")]
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


#: The held-out judges of the emoji world: a classifier that never entered a loss, and
#: emoji-sd's CLIP zero-shot. Every model of the emoji world gets both (a copy of emoji-sd or
#: a candidate checkpoint is verified as strictly as the bundled folder).
DEFAULT_VERIFIERS = ["emoji/verifier", "emoji/clip"]


def _surrogate(names: list[str], device: str):
    """One judge, or SAGE's ensemble of several (their probabilities averaged). An ensemble
    named among them stands for its members, so the goal asks each of them, not their mean."""
    from fissure.judges import Ensemble, load_judge
    from fissure.judges.registry import ensemble_members

    if len(names) == 1:
        return load_judge(names[0], device=device)
    members = list(dict.fromkeys(m for name in names for m in ensemble_members(name)))
    ensemble = Ensemble([load_judge(m, device=device) for m in members], names=members)
    ensemble.source = "+".join(names)
    return ensemble


def check_emoji_judges_fit(model: str, image_size: int) -> None:
    """Refuse the default emoji judges on a model whose images are not the emoji world's."""
    from fissure.errors import FissureError
    from fissure.world.backgrounds import SIZE

    if image_size != SIZE:
        raise FissureError(
            f"{model} makes {image_size}-pixel images, and the default judges know only the "
            f"{SIZE}-pixel emoji world: attack it with judges that know its images, e.g. "
            f"fissure attack sage-latent --model {model} --judge microsoft/resnet-50 "
            "--verifier clip:openai/clip-vit-base-patch32 --prompt 'a photo of a tabby cat' "
            "--out runs/tabby"
        )


def load_verifiers(names: list[str], labels: list[str], device: str) -> dict:
    """The verifiers by name; CLIP ones zero-shot over ``labels`` (the surrogate's), so a
    target such as ImageNet's "tabby, tabby cat" is a class of every verifier."""
    from fissure.judges import load_judge
    from fissure.judges.registry import is_zero_shot

    return {
        name: load_judge(name, device=device, labels=labels if is_zero_shot(name) else None)
        for name in names
    }


def _class_names(classes: str, labels: list[str]) -> list[str]:
    """--classes as a list of the judge's labels: 'all', one label, or names separated by
    commas (by semicolons when labels hold commas, as ImageNet's "tabby, tabby cat")."""
    from fissure.errors import FissureError

    if classes.strip() == "all":
        return list(labels)
    if classes.strip() in labels:
        return [classes.strip()]
    separator = ";" if ";" in classes else ","
    names = [name.strip() for name in classes.split(separator) if name.strip()]
    if not names:
        raise FissureError(f"--classes {classes!r} names no class: try cat,dog or all")
    return names


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
) -> None:
    """Shared by every attack command: load, run with resume, summarise, write the page."""
    from fissure.attacks import (
        ATTACKS,
        FindingStore,
        Verifiers,
        class_attempts,
        make_attempts,
        run_attack,
    )
    from fissure.attacks.recipes import check_options
    from fissure.errors import FissureError
    from fissure.generate import parse_seeds
    from fissure.judges.registry import judges_in_loss
    from fissure.models import Generator
    from fissure.models.generator import native_image_size
    from fissure.models.loading import model_label
    from fissure.models.prompts import check_prompt
    from fissure.outputs import check_output_dir
    from fissure.report.findings_page import write_findings_page

    if bool(prompts) == (classes is not None):
        raise FissureError("give either --prompt (repeatable) or --classes, not both or neither")
    if classes is not None and target is not None:
        raise FissureError("--target is for --prompt: with --classes each class is its own target")
    if prompts and template is not None:
        raise FissureError("--template is for --classes: a --prompt is attacked as written")
    seed_list = parse_seeds(seeds)
    check_options(attack_name, recipe_options)  # before the model loads
    check_output_dir(out)  # made by the findings store, once the inputs are known good
    quiet_libraries()
    generator = Generator.from_pretrained(model, device=device, dtype=dtype)
    model = model_label(model)  # a resume from another folder names the same model
    if not surrogate or not verifiers:
        check_emoji_judges_fit(model, native_image_size(generator.pipeline))
    surrogate_names = list(dict.fromkeys(surrogate or ["emoji/surrogate"]))
    surrogate_judge = _surrogate(surrogate_names, device)
    if classes is not None:
        names = _class_names(classes, surrogate_judge.labels)
        attempts = class_attempts(names, seed_list, surrogate_judge.labels, template)
    else:
        attempts = make_attempts(prompts, seed_list, surrogate_judge.labels, target)
    verifier_names = verifiers or DEFAULT_VERIFIERS
    in_loss = set().union(*(judges_in_loss(name) for name in surrogate_names))
    overlap = sorted(name for name in verifier_names if judges_in_loss(name) & in_loss)
    if overlap:
        raise FissureError(
            f"{', '.join(overlap)} is in the surrogate or holds it: "
            "a verifier must never be in the loss"
        )
    verifier_judges = load_verifiers(verifier_names, surrogate_judge.labels, device)
    for prompt in dict.fromkeys(attempt.prompt for attempt in attempts):
        check_prompt(generator.tokenizer, prompt)
    _print_targets(attempts)
    attack = ATTACKS[attack_name](generator, surrogate_judge, **recipe_options)
    title = f"{attack_name} on {model}"
    with FindingStore(out, attack.settings()) as store:
        done = sum(store.has(attempt) for attempt in attempts)
        if done:
            typer.echo(f"resuming: {done} of them are already in {out}")
        try:
            findings = run_attack(
                attack,
                attempts,
                store,
                Verifiers(verifier_judges, absent_below=attack.goal.absent_below),
                model,
            )
        except KeyboardInterrupt:
            kept = store.findings()
            write_findings_page(out, kept, store.settings, title)
            typer.secho(
                f"interrupted: {counted(len(kept), 'finding')} kept in {out}; "
                "run the same command to resume",
                err=True,
                fg=typer.colors.YELLOW,
            )
            raise typer.Exit(code=130) from None
        everything = store.findings()  # the page shows the folder's earlier runs too
        page = write_findings_page(out, everything, store.settings, title)  # under the lock
    _print_summary(findings)
    earlier = len(everything) - len(findings)
    also = f" (and {counted(earlier, 'finding')} of earlier runs)" if earlier else ""
    typer.echo(
        f"{counted(len(findings), 'finding')}{also} in {out / 'findings.jsonl'}; open {page}"
    )


def _print_targets(attempts: list) -> None:
    """Say what is attacked before the long work starts: each prompt's target, as inferred."""
    targets = list(dict.fromkeys((attempt.prompt, attempt.target) for attempt in attempts))
    shown = "; ".join(f"{prompt!r} → {target}" for prompt, target in targets[:3])
    more = f"; and {len(targets) - 3} more prompts" if len(targets) > 3 else ""
    typer.echo(f"attacking {counted(len(attempts), 'attempt')}: {shown}{more}")


def _print_summary(findings: list) -> None:
    """One column per attack, one row per measure: fits a narrow terminal."""
    from rich.console import Console
    from rich.table import Table

    from fissure.attacks import summarize

    summaries = summarize(findings)
    table = Table(title="findings")
    table.add_column("measure")
    for s in summaries:
        table.add_column(s.attack, justify="right")
    rows = {
        "attempts": lambda s: str(s.attempts),
        "natural failures (target not first before)": lambda s: str(s.natural_failures),
        "attacked": lambda s: str(s.attacked),
        "surrogate fooled (by the attack)": lambda s: str(s.successes),
        "surrogate missed it before any step": lambda s: str(s.surrogate_missed),
        "verified": lambda s: str(s.verified),
        "verified ASR": lambda s: "–" if s.verified_asr is None else f"{s.verified_asr:.1%}",
        "mean iterations": lambda s: f"{s.mean_iterations:.1f}",
        "median UNet evals per verified": lambda s: str(s.median_unet_evals_verified or "-"),
        "distorted / unrelated": lambda s: (
            f"{s.kinds.get('distorted', 0)} / {s.kinds.get('unrelated', 0)}"
        ),
        "typical (of verified)": lambda s: f"{s.typical} / {s.verified}",
    }
    for name, cell in rows.items():
        table.add_row(name, *(cell(s) for s in summaries))
    Console().print(table)


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
    radius: Annotated[float, typer.Option(help="δ stays within ±radius per element.")] = 1.0,
    step: Annotated[float, typer.Option(help="Sign-gradient step size.")] = 0.05,
    max_iterations: Annotated[int, typer.Option(help="Gradient steps per attempt at most.")] = 100,
    gradient: Annotated[
        str, typer.Option(help="residual (the last k steps, then SAGE's shortcut) or exact.")
    ] = "residual",
    k: Annotated[int, typer.Option(help="Final steps differentiated exactly (residual).")] = 2,
    keep_norm: Annotated[
        bool, typer.Option(help="Keep z + δ at the norm of the seed's z (a typical latent).")
    ] = True,
    views: Views = True,
    steps: Steps = 25,
    guidance: Guidance = 7.5,
    absent_below: AbsentBelow = 0.1,
    batch_size: BatchSize = 8,
    device: Device = "cpu",
    dtype: Dtype = "float32",
) -> None:
    """SAGE's latent attack: sign-gradient steps on the initial latent until the target is gone."""
    options = dict(
        radius=radius, step=step, max_iterations=max_iterations, gradient=gradient, k=k,
        steps=steps, guidance=guidance, absent_below=absent_below, batch_size=batch_size,
        keep_norm=keep_norm, views=views,
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
            "default settings, 100 × (steps + 3 × 2) + steps (3125 at 25 steps); give "
            "max-iterations × (steps + 3k) + steps to match other residual settings, "
            "max-iterations × 4 × steps + steps for --gradient exact."
        ),
    ] = None,
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
        budget=budget, steps=steps, guidance=guidance, absent_below=absent_below,
        batch_size=batch_size, views=views,
    )  # fmt: skip
    run_attack_command(
        "random-latent", options, out=out, prompts=prompt, classes=classes, template=template,
        target=target, seeds=seeds, model=model, surrogate=judge, verifiers=verifier, device=device,
        dtype=dtype,
    )  # fmt: skip
