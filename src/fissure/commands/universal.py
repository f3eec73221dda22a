"""`fissure attack universal-token`: train one token on many prompts, judge it on others."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fissure.commands.attack import (
    AbsentBelow,
    Guidance,
    Model,
    Out,
    Steps,
    Surrogate,
    VerifierNames,
    Views,
)
from fissure.commands.options import Device, Dtype
from fissure.console import counted, quiet_libraries, user_errors


@user_errors
def universal_token(
    out: Out,
    target: Annotated[
        str | None,
        typer.Option(help="The class the token should make appear in any prompt."),
    ] = None,
    untargeted: Annotated[
        bool,
        typer.Option(help="Instead of a target: make each prompt's own object vanish."),
    ] = False,
    held_out: Annotated[
        int,
        typer.Option(help="Classes whose prompts are held out to judge the token (never trained)."),
    ] = 50,
    training_seeds: Annotated[
        str, typer.Option(help="Seeds of the training prompts' latents: N, N-M or a list.")
    ] = "100-103",
    seeds: Annotated[
        str, typer.Option(help="Held-out seeds the held-out prompts are judged on.")
    ] = "0",
    iterations: Annotated[int, typer.Option(help="Minibatch gradient steps on the token.")] = 40,
    batch: Annotated[int, typer.Option(help="(prompt, seed) pairs per step.")] = 8,
    step: Annotated[float, typer.Option(help="Step size per element of the embedding.")] = 0.003,
    step_rule: Annotated[
        str, typer.Option(help="sign, l2 (normalised gradient) or adam (clipped).")
    ] = "adam",
    position: Annotated[
        str,
        typer.Option(
            help="Where the token joins each prompt: start (conditions every word) or end."
        ),
    ] = "start",
    start_scale: Annotated[
        float,
        typer.Option(help="A targeted token starts as the target's word embedding times this."),
    ] = 4.0,
    model: Model = "emoji-sd",
    judge: Surrogate = None,
    verifier: VerifierNames = None,
    views: Views = True,
    steps: Steps = 25,
    guidance: Guidance = 7.5,
    absent_below: AbsentBelow = 0.1,
    device: Device = "cpu",
    dtype: Dtype = "float32",
) -> None:
    """SAGE's universal token: one embedding added to every prompt (first, by default), trained on the prompts
    of some classes so that --target appears (or, --untargeted, each prompt's object
    vanishes), then judged by the verifiers on held-out classes and seeds. Saves the token as
    a textual-inversion file for diffusers' load_textual_inversion."""
    from fissure.attacks import Verifiers
    from fissure.attacks.recipes import check_universal_token
    from fissure.attacks.recipes import universal_token as recipe
    from fissure.attacks.runner import train_universal_token
    from fissure.attacks.universal import token_name
    from fissure.campaign.config import DEFAULT_SURROGATE, DEFAULT_VERIFIERS
    from fissure.campaign.worker import (
        check_verifiers_outside_the_loss,
        load_surrogate,
        load_verifiers,
    )
    from fissure.errors import FissureError
    from fissure.generate import parse_seeds
    from fissure.models import Generator
    from fissure.models.loading import model_label
    from fissure.outputs import check_output_dir
    from fissure.report.findings_page import write_findings_page
    from fissure.results import ResultsStore

    if (target is None) == (not untargeted):
        raise FissureError("give --target CLASS, or --untargeted, not both or neither")
    training, tested_seeds = parse_seeds(training_seeds), parse_seeds(seeds)
    options = dict(iterations=iterations, batch=batch, step=step, step_rule=step_rule,
                   steps=steps, guidance=guidance, absent_below=absent_below, views=views,
                   start_scale=start_scale)  # fmt: skip
    check_universal_token(gradient="exact-stored", position=position, **options)  # no model yet
    surrogate_names = list(dict.fromkeys(judge or DEFAULT_SURROGATE))
    verifier_names = list(dict.fromkeys(verifier or DEFAULT_VERIFIERS))
    check_verifiers_outside_the_loss(surrogate_names, verifier_names)
    check_output_dir(out)
    quiet_libraries()
    generator = Generator.from_pretrained(model, device=device, dtype=dtype)
    surrogate = load_surrogate(surrogate_names, device)
    labels = surrogate.labels
    attack = recipe(generator, surrogate, target=target, position=position, **options)
    name = token_name(target)
    verifiers = Verifiers(load_verifiers(verifier_names, labels, device), absent_below)
    _, findings = train_universal_token(
        attack, held_out, training, tested_seeds, out, verifiers, model_label(model)
    )
    with ResultsStore(out) as store:
        page = write_findings_page(store, f"{attack.name} on {model}", attack.name)
    inversion = out / f"{attack.name}.safetensors"
    _print_outcome(findings, name, inversion, page)


def _print_outcome(findings: list, name: str, inversion: Path, page: Path) -> None:
    import statistics

    shown = [f for f in findings if f.clean_shows_target]
    verified = sum(f.verified for f in shown)  # the verifiers' reading; the surrogate trained it
    cosines = [f.token_effect["text_cosine"] for f in findings]
    typer.echo(
        f"{name}: verified on {verified} of {counted(len(shown), 'held-out attempt')} whose "
        f"clean image showed its class ({verified / max(1, len(shown)):.0%}); text-embedding "
        f"cosine with and without it: mean {statistics.fmean(cosines):.3f}"
    )
    clip = [f.token_effect for f in findings if "clip_before" in f.token_effect]
    if clip:
        before = statistics.fmean(e["clip_before"] for e in clip)
        after = statistics.fmean(e["clip_after"] for e in clip)
        typer.echo(f"CLIP score against the prompt: {before:.3f} without, {after:.3f} with it")
    typer.echo(f"token saved for load_textual_inversion: {inversion}; open {page}")
