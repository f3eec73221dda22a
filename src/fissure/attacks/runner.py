"""Run an attack over many attempts into the results store, with a progress bar."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import nn
from tqdm.auto import tqdm

from fissure.attacks.attack import Attack
from fissure.attacks.search import SearchState
from fissure.attacks.spaces import Attempt
from fissure.attacks.targets import names_target
from fissure.attacks.typicality import typicality
from fissure.attacks.verdicts import Reading, Verifiers, check_verifier_labels, judge_view
from fissure.digest import weights_digest
from fissure.errors import FissureError, StoreError
from fissure.results import AttackWriter, Finding


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
        delta_linf=round(float(state.variable.abs().max()), 4),
        delta_l2=round(float(state.variable.norm()), 4),
        surrogate_before=judge_view(labels, state.probabilities_before, attempt.target),
        surrogate_after=judge_view(labels, state.probabilities, attempt.target),
        verifier_before=verdict.before,
        verifier_after=verdict.after,
        target_trace=[round(value, 4) for value in state.target_trace],
        latent_seed=state.latent_seed,
        **attack.space.finding_fields(attempt, state.prompt),
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
    check_verifier_labels(verifiers.judges, [attempt.target for attempt in attempts])
    check_targets(attack, attempts)
    store.bind(**run_settings(attack, verifiers, model))
    todo = [attempt for attempt in attempts if not store.has(attempt)]
    wanted = {store.key(attempt) for attempt in attempts}
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
