"""A campaign worker: one model and the campaign's judges, loaded once, running attacks.

The in-process backend uses one; the Ray backend one per actor. Either way the worker
plans a (model, attack)'s attempts, says what its findings are bound to, and runs any
share of them into a writer: the store itself, or a collector the driver empties.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from fissure.attacks import ATTACKS, Attack, Attempt, Verifiers, class_attempts, make_attempts
from fissure.attacks.runner import run_attack, run_settings
from fissure.campaign.config import AttackSpec, CampaignConfig
from fissure.errors import FissureError, error_line
from fissure.judges import Ensemble, Judge, load_judge
from fissure.judges.registry import ensemble_members, is_zero_shot, judges_in_loss
from fissure.models import Generator
from fissure.models.generator import native_image_size
from fissure.models.loading import model_label
from fissure.models.prompts import check_prompt
from fissure.results import Finding, attempt_key


def load_surrogate(names: list[str], device: str) -> Judge:
    """One judge, or SAGE's ensemble of several (their probabilities averaged). An ensemble
    named among them stands for its members, so the goal asks each of them, not their mean."""
    if len(names) == 1:
        return load_judge(names[0], device=device)
    members = list(dict.fromkeys(m for name in names for m in ensemble_members(name)))
    ensemble = Ensemble([load_judge(m, device=device) for m in members], names=members)
    ensemble.source = "+".join(names)
    return ensemble


def load_verifiers(names: list[str], labels: list[str], device: str) -> dict[str, Judge]:
    """The verifiers by name; CLIP ones zero-shot over ``labels`` (the surrogate's), so a
    target such as ImageNet's "tabby, tabby cat" is a class of every verifier."""
    return {
        name: load_judge(name, device=device, labels=labels if is_zero_shot(name) else None)
        for name in names
    }


def check_verifiers_outside_the_loss(surrogate: list[str], verifiers: list[str]) -> None:
    """Refuse, by name and before any weights load, a verifier that is in the loss."""
    in_loss = set().union(*(judges_in_loss(name) for name in surrogate))
    overlap = sorted(name for name in verifiers if judges_in_loss(name) & in_loss)
    if overlap:
        raise FissureError(
            f"{', '.join(overlap)} is in the surrogate or holds it: "
            "a verifier must never be in the loss"
        )


def check_emoji_judges_fit(model: str, image_size: int) -> None:
    """Refuse the default emoji judges on a model whose images are not the emoji world's."""
    from fissure.world.backgrounds import SIZE

    if image_size != SIZE:
        raise FissureError(
            f"{model} makes {image_size}-pixel images, and the default judges know only the "
            f"{SIZE}-pixel emoji world: attack it with judges that know its images, e.g. "
            f"fissure attack sage-latent --model {model} --judge microsoft/resnet-50 "
            "--verifier clip:openai/clip-vit-base-patch32 --prompt 'a photo of a tabby cat' "
            "--out runs/tabby"
        )


def split_class_names(classes: str, labels: list[str]) -> list[str]:
    """Classes as given ('all', one label, or names separated by commas, by semicolons
    when labels hold commas, as ImageNet's "tabby, tabby cat") as a list of labels."""
    if classes.strip() == "all":
        return list(labels)
    if classes.strip() in labels:
        return [classes.strip()]
    separator = ";" if ";" in classes else ","
    names = [name.strip() for name in classes.split(separator) if name.strip()]
    if not names:
        raise FissureError(f"--classes {classes!r} names no class: try cat,dog or all")
    return names


@dataclass
class Plan:
    """A (model, attack)'s attempts, and the prompts refused before any compute (each
    recorded as a failed item, so the campaign goes on)."""

    attempts: list[Attempt]
    refused: list[tuple[Attempt, str]] = field(default_factory=list)


class CampaignWorker:
    """One model of a campaign with its surrogate and verifiers, ready to attack."""

    def __init__(self, config: CampaignConfig, model: str, threads: int | None = None) -> None:
        if threads is not None:
            torch.set_num_threads(threads)
        check_verifiers_outside_the_loss(config.judges, config.verifiers)
        self.config = config
        self.generator = Generator.from_pretrained(model, device=config.device, dtype=config.dtype)
        self.model = model_label(model)  # a resume from another folder names the same model
        if config.default_judges:
            check_emoji_judges_fit(self.model, native_image_size(self.generator.pipeline))
        self.surrogate = load_surrogate(config.judges, config.device)
        judges = load_verifiers(config.verifiers, self.surrogate.labels, config.device)
        self._verifier_judges = judges
        self._attacks: dict[str, Attack] = {}

    def verifiers(self, attack: Attack) -> Verifiers:
        return Verifiers(self._verifier_judges, absent_below=attack.goal.absent_below)

    def attack(self, spec: AttackSpec) -> Attack:
        if spec.label not in self._attacks:
            attack = ATTACKS[spec.name](self.generator, self.surrogate, **spec.options)
            attack.name = spec.label
            self._attacks[spec.label] = attack
        return self._attacks[spec.label]

    def plan(self) -> Plan:
        """The attempts every attack of the campaign runs on this model."""
        config, labels = self.config, self.surrogate.labels
        if config.classes is not None:
            names = [n for entry in config.classes for n in split_class_names(entry, labels)]
            attempts = class_attempts(names, config.seeds, labels, config.template)
            return Plan(self._checked(attempts))
        plan = Plan([])
        for prompt in dict.fromkeys(config.prompts or []):
            target = (config.prompt_targets or {}).get(prompt, config.target)
            try:
                attempts = make_attempts([prompt], config.seeds, labels, target)
            except FissureError as error:  # names no class, or several: this prompt only
                refused = [Attempt(prompt, target or "", -1, s) for s in config.seeds]
                why = str(error).replace("with --target", "with target = ... (or --target)")
                plan.refused += [(attempt, why) for attempt in refused]
                continue
            plan.attempts += attempts
        checked = self._checked(plan.attempts, plan.refused)
        return Plan(checked, plan.refused)

    def _checked(
        self, attempts: list[Attempt], refused: list[tuple[Attempt, str]] | None = None
    ) -> list[Attempt]:
        """Attempts whose prompt the model can read; the rest go to ``refused`` (or raise)."""
        bad: dict[str, str] = {}
        for prompt in dict.fromkeys(attempt.prompt for attempt in attempts):
            try:
                check_prompt(self.generator.tokenizer, prompt)
            except FissureError as error:
                if refused is None:
                    raise
                bad[prompt] = str(error)
        if refused is not None:
            refused += [(a, bad[a.prompt]) for a in attempts if a.prompt in bad]
        return [attempt for attempt in attempts if attempt.prompt not in bad]

    def settings(self, spec: AttackSpec) -> dict[str, object]:
        """What the (model, attack)'s findings are bound to in the store."""
        attack = self.attack(spec)
        return {**run_settings(attack, self.verifiers(attack), self.model), "recipe": spec.name}

    def run(self, spec: AttackSpec, attempts: list[Attempt], writer, progress: bool = True):
        """Attack ``attempts`` into ``writer``; returns their findings."""
        attack = self.attack(spec)
        return run_attack(attack, attempts, writer, self.verifiers(attack), self.model, progress)


class Collector:
    """A writer that keeps findings in memory, for a worker whose driver writes the store.

    It has the store's key scheme, so the findings it hands back carry their store keys.
    """

    def __init__(self, campaign: str, model: str, attack: str) -> None:
        self.campaign, self.model, self.attack = campaign, model, attack
        self.added: list[tuple[Finding, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.failed: list[tuple[Attempt, str]] = []

    def bind(self, **settings: object) -> None:
        """The driver bound the store before sending work."""

    def key(self, item) -> str:
        return attempt_key(
            self.campaign, self.model, self.attack, item.prompt, item.target, item.seed
        )

    def has(self, item) -> bool:
        return False

    def findings(self) -> list[Finding]:
        return [finding for finding, *_ in self.added]

    def add(self, finding, before, after, delta) -> None:
        cpu = [tensor.detach().float().cpu() for tensor in (before, after, delta)]
        self.added.append((finding, *cpu))

    def fail(self, item: Attempt, error: BaseException | str) -> None:
        message = error_line(error)
        self.failed.append((item, message))
