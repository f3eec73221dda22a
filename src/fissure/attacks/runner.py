"""Run an attack over many attempts into the results store, with a progress bar."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from fissure.attacks.attack import Attack
from fissure.attacks.naming import names_target
from fissure.attacks.search import SearchState
from fissure.attacks.spaces import Attempt
from fissure.attacks.typicality import Typicality, typicality
from fissure.attacks.universal import (
    UniversalToken,
    save_textual_inversion,
    split_prompts,
    token_name,
)
from fissure.attacks.verdicts import Reading, Verifiers, check_verifier_labels, judge_view
from fissure.digest import weights_digest
from fissure.errors import FissureError, StoreError
from fissure.judges.pretrained import ClipJudge
from fissure.results import AttackWriter, Finding, ResultsStore


def to_finding(
    attack: Attack,
    state: SearchState,
    verifiers: Verifiers,
    model: str,
    key: str,
    clean: Reading | None = None,
) -> Finding:
    """Judge a finished attempt: verifiers on its images, typicality of its latent.

    ``key``: its key in the results store; ``clean``: the verifiers' reading of its clean
    image, where the screen made it.
    """
    attempt = state.attempt
    verdict = verifiers(state.images_before, state.images, attempt.target, clean)
    test = typicality(attack.space.latent(state.start, state.variable))
    extra = attack.space.finding_fields(attempt, state.prompt)  # the space's own fields
    labels = attack.goal.surrogate.labels
    return Finding(
        id=key,
        attack=attack.name,
        model=model,
        prompt=attempt.prompt,
        target=attempt.target,
        seed=attempt.seed,
        iterations=state.iterations,
        unet_evals=round(state.unet_evals),
        seconds=round(state.seconds, 2),
        success=state.achieved,
        verified=verdict.verified,
        clean_shows_target=verdict.clean_shows_target,
        kind=verdict.kind,
        unrelated_class=verdict.unrelated_class,
        **_typicality_fields(test),
        delta_linf=extra.pop("delta_linf", round(float(state.variable.abs().max()), 4)),
        delta_l2=extra.pop("delta_l2", round(float(state.variable.norm()), 4)),
        surrogate_before=judge_view(labels, state.probabilities_before, attempt.target),
        surrogate_after=judge_view(labels, state.probabilities, attempt.target),
        verifier_before=verdict.before,
        verifier_after=verdict.after,
        target_trace=[round(value, 4) for value in state.target_trace],
        latent_seed=state.latent_seed,
        scores=state.report or None,
        **extra,
    )


def _typicality_fields(test: Typicality) -> dict[str, object]:
    """A finding's ``typical`` and ``typicality`` fields from its latent's tests."""
    return dict(
        typical=test.typical,
        typicality={
            "squared_norm": round(test.squared_norm, 2),
            "dimensions": test.dimensions,
            "chi_square_p": test.chi_square_p,
            "ks_statistic": round(test.ks_statistic, 5),
            "ks_p": test.ks_p,
            "neighbour_z": round(test.neighbour_z, 3),
            "neighbour_p": test.neighbour_p,
            "alpha": test.alpha,
        },
    )


def check_targets(attack: Attack, attempts: Sequence[Attempt]) -> None:
    """Refuse an attempt whose target index is not its target's: the loss would push one
    class and the verdicts read another; and, for a prompt search, a prompt that does not
    name its target (the words found must keep the class in the prompt)."""
    labels = attack.goal.surrogate.labels
    for attempt in attempts:
        if attack.space.keeps_target_word and not names_target(attempt.prompt, attempt.target):
            raise FissureError(
                f"{attack.name} extends a prompt that names its class, and {attempt.prompt!r} "
                f"does not name {attempt.target!r}: put the class in the prompt"
            )
        index = attempt.target_index
        if not 0 <= index < len(labels) or labels[index] != attempt.target:
            raise FissureError(
                f"attempt {attempt.prompt!r}: target {attempt.target!r} is not the surrogate's "
                f"label {index}; build attempts with make_attempts or class_attempts"
            )


def check_outside_the_loss(
    surrogate: nn.Module, verifiers: Mapping[str, nn.Module], verifier_weights: Mapping[str, str]
) -> None:
    """Refuse a verifier that is the surrogate or one of its members, or has their weights
    (``verifier_weights``: each one's digest) however it was named (a bundled judge by its
    folder): it would confirm itself. Judges without weights are compared as objects."""
    in_loss = [surrogate, *getattr(surrogate, "members", ())]
    digests = {weights_digest(judge) for judge in in_loss} - {weights_digest()}
    for name, judge in verifiers.items():
        if any(judge is other for other in in_loss) or verifier_weights[name] in digests:
            raise FissureError(
                f"the verifier {name} has the weights of a judge in the surrogate: "
                "a verifier must never be in the loss"
            )


def run_settings(attack: Attack, verifiers: Verifiers, model: str) -> dict[str, object]:
    """Everything a run's findings depend on: the attack's settings, the model, and the
    verifiers' names, thresholds and weights (refused if a verifier is in the loss)."""
    verifier_weights = {name: weights_digest(judge) for name, judge in verifiers.judges.items()}
    check_outside_the_loss(attack.goal.surrogate, verifiers.judges, verifier_weights)
    return {
        **attack.settings(),
        "model": model,
        **verifiers.settings(),
        "verifier_weights": verifier_weights,
    }


def _open_run(
    attack: Attack | UniversalToken,
    attempts: Sequence[Attempt],
    store: AttackWriter,
    verifiers: Verifiers,
    model: str,
    targets: Sequence[str],
) -> tuple[list[Attempt], set[str]]:
    """Refuse verifiers without the attempts' targets (and ``targets``), bind the store to
    the run's settings, and say what is left: the attempts not recorded yet, and the store
    keys of all of them."""
    check_verifier_labels(verifiers.judges, [*targets, *(attempt.target for attempt in attempts)])
    store.bind(**run_settings(attack, verifiers, model))
    todo = [attempt for attempt in attempts if not store.has(attempt)]
    return todo, {store.key(attempt) for attempt in attempts}


def run_attack(
    attack: Attack,
    attempts: Sequence[Attempt],
    store: AttackWriter,
    verifiers: Verifiers,
    model: str,
    progress: bool = True,
) -> list[Finding]:
    """Attack every attempt the store has not recorded yet; returns the findings of
    ``attempts`` (the store may hold others, of earlier runs).

    A natural failure (the verifiers do not see the target in the clean image) is
    recorded as it is, not attacked: there is nothing for the attack to remove. An
    attempt that raises is recorded with its error (with the attempts of its batch) and
    the run goes on; running it again retries them.

    The store is bound to ``model`` and the verifiers' names and weights: findings made
    with others are refused rather than resumed. Ctrl-C stops at once: every finding
    finished so far is already recorded.
    """
    check_targets(attack, attempts)
    todo, wanted = _open_run(attack, attempts, store, verifiers, model, [])
    verified = sum(f.verified_failure for f in store.findings() if f.id in wanted)
    failed = 0
    with tqdm(
        total=len(attempts),
        initial=len(attempts) - len(todo),
        desc=attack.name,
        unit="attempt",
        disable=not progress,
    ) as bar:

        def show_round(active) -> None:
            rounds = max(state.iterations for state in active)
            bar.set_postfix(verified=verified, in_flight=len(active), iteration=rounds)

        clean_readings: dict[str, Reading] = {}

        def worth_attacking(state: SearchState) -> bool:
            clean = clean_readings[store.key(state.attempt)] = verifiers.read(state.images_before)
            return verifiers.shows_target(clean, state.attempt.target)

        while todo:
            started: list[Attempt] = []  # what the search has taken from the queue
            finished: set[Attempt] = set()

            def queue(waiting=tuple(todo), started=started):
                for attempt in waiting:
                    started.append(attempt)
                    yield attempt

            try:
                for state in attack.run(queue(), on_round=show_round, screen=worth_attacking):
                    key = store.key(state.attempt)
                    clean = clean_readings.pop(key, None)
                    finding = to_finding(attack, state, verifiers, model, key, clean)
                    store.add(finding, state.images_before, state.images, state.variable)
                    finished.add(state.attempt)
                    verified += finding.verified_failure
                    bar.set_postfix(verified=verified, last_iterations=finding.iterations)
                    bar.update()
                todo = []
            except (StoreError, KeyboardInterrupt):
                raise  # the store's full disk, Ctrl-C: stop, as the user asked or must act
            except Exception as error:  # noqa: BLE001 - one bad batch must not end the run
                in_flight = [attempt for attempt in started if attempt not in finished]
                for attempt in in_flight:
                    store.fail(attempt, error)
                failed += len(in_flight)
                bar.update(len(in_flight))
                bar.set_postfix(verified=verified, failed=failed)
                todo = todo[len(started) :]
    return [finding for finding in store.findings() if finding.id in wanted]


def run_universal_token(
    attack: UniversalToken,
    token: torch.Tensor,
    attempts: Sequence[Attempt],
    store: AttackWriter,
    verifiers: Verifiers,
    model: str,
    progress: bool = True,
) -> list[Finding]:
    """Judge a trained universal token on ``attempts`` (held-out prompts and seeds): each
    prompt rendered with and without it, read by the verifiers. ``success``/``verified``:
    the surrogate/verifiers read the token's target first (untargeted: the prompt's own
    class is gone); ``clean_shows_target``: the verifiers read the prompt's own class first
    without the token. Findings already in the store are kept, not redone."""
    targets = [attack.target] if attack.target else []
    todo, wanted = _open_run(attack, attempts, store, verifiers, model, targets)
    space, labels = attack.space, attack.goal.surrogate.labels
    name = token_name(attack.target)
    clip = next((j for j in verifiers.judges.values() if isinstance(j, ClipJudge)), None)
    with tqdm(
        total=len(attempts), initial=len(attempts) - len(todo), desc=f"{attack.name} held out",
        unit="attempt", disable=not progress,
    ) as bar:  # fmt: skip
        for begin in range(0, len(todo), space.batch_size):
            chunk = todo[begin : begin + space.batch_size]
            started = time.perf_counter()
            before, after = space.render(chunk, None), space.render(chunk, token)
            goal_targets = attack.goal_targets(chunk, after.images)
            with torch.no_grad():
                scored_before = attack.goal.evaluate(before.images, goal_targets)
                scored_after = attack.goal.evaluate(after.images, goal_targets)
            prompts = [attempt.prompt for attempt in chunk]
            cosines = space.text_cosine(prompts, token)
            clip_scores = [
                clip.text_similarity(images[: len(chunk)], prompts).tolist() if clip else None
                for images in (before.images, after.images)
            ]
            seconds = (time.perf_counter() - started) / len(chunk)
            for row, attempt in enumerate(chunk):
                clean = verifiers.read(before.images[row])
                target = attack.target or attempt.target
                if attack.target:
                    verdict = verifiers.appears(after.images[row], target, clean)
                else:
                    verdict = verifiers(before.images[row], after.images[row], target, clean)
                key = store.key(attempt)
                finding = Finding(
                    id=key, attack=attack.name, model=model, prompt=attempt.prompt,
                    target=target, seed=attempt.seed, iterations=attack.search.iterations,
                    unet_evals=2 * space.steps, seconds=round(seconds, 2),
                    success=bool(scored_after.achieved[row]), verified=verdict.verified,
                    clean_shows_target=verifiers.shows_target(clean, attempt.target),
                    kind=verdict.kind, unrelated_class=verdict.unrelated_class,
                    **_typicality_fields(typicality(space.latent(attempt))),
                    delta_linf=round(float(token.abs().max()), 4),
                    delta_l2=round(float(token.norm()), 4),
                    surrogate_before=judge_view(labels, scored_before.probabilities[row], target),
                    surrogate_after=judge_view(labels, scored_after.probabilities[row], target),
                    verifier_before=verdict.before, verifier_after=verdict.after,
                    adversarial_prompt=space.with_token(attempt.prompt, name),
                    token_effect={
                        "text_cosine": round(cosines[row], 4),
                        **({"clip_before": round(clip_scores[0][row], 4),
                            "clip_after": round(clip_scores[1][row], 4)} if clip else {}),
                    },
                )  # fmt: skip
                store.add(finding, before.images[row], after.images[row], token)
                bar.update()
    return [finding for finding in store.findings() if finding.id in wanted]


def train_universal_token(
    attack: UniversalToken,
    held_out: int,
    training_seeds: Sequence[int],
    seeds: Sequence[int],
    folder: Path,
    verifiers: Verifiers,
    model: str,
    progress: bool = True,
) -> tuple[torch.Tensor, list[Finding]]:
    """Train ``attack``'s token on the prompts of all but ``held_out`` classes at
    ``training_seeds`` (resuming in ``folder``), save it as ``folder/<attack name>.safetensors``
    for diffusers, and judge it on the held-out classes' prompts at ``seeds`` into the
    results store at ``folder``. Returns the token and its findings."""
    labels = attack.goal.surrogate.labels
    if not 1 <= held_out < len(labels) - 1:
        raise FissureError(f"held out classes must leave some to train on: 1 to {len(labels) - 2}")
    if set(training_seeds) & set(seeds):
        raise FissureError("the held-out seeds must not be training seeds")
    split = split_prompts(labels, attack.target, held_out)
    settings = {
        **attack.settings(), "model": model, "training_seeds": list(training_seeds),
        "held_out_classes": held_out,
    }  # fmt: skip
    with ResultsStore(folder) as store, store.campaign(attack.name) as campaign:
        writer = campaign.attack(model, attack.name, settings)
        training = split.attempts(split.training, training_seeds, labels)
        token = attack.train(training, folder / "tokens" / attack.name, progress, settings)
        save_textual_inversion(
            token, token_name(attack.target), folder / f"{attack.name}.safetensors"
        )
        tested = split.attempts(split.held_out, seeds, labels)
        findings = run_universal_token(attack, token, tested, writer, verifiers, model, progress)
    return token, findings
