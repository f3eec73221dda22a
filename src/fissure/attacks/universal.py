"""SAGE's universal adversarial token: one embedding that takes over any prompt it joins.

SAGE (arXiv 2306.00974) finds single token embeddings that, added to a prompt, make
the model draw a chosen class whatever the prompt asks for (or draw nothing the
prompt asks for). Here one free token is appended to every prompt of a training set
and optimised by minibatch gradient descent on the surrogate's loss over (prompt,
seed) pairs; it is judged on prompts of classes it never saw and on seeds it never
saw, by the verifiers. The token is saved as a textual-inversion file that stock
diffusers loads (``pipeline.load_textual_inversion``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from fissure.atomic import atomic_write
from fissure.attacks.constraints import Constraint, project_all
from fissure.attacks.goals import TargetAbsent, TargetPresent
from fissure.attacks.naming import class_phrase
from fissure.attacks.spaces import Attempt, Rendering, generator_settings, padded, target_rows
from fissure.attacks.steps import NormalisedStep, StepRule
from fissure.digest import weights_digest
from fissure.errors import FissureError
from fissure.models.generator import FreeTokens, Generator, GradientMode
from fissure.world.captions import TEMPLATES
from fissure.zoo.training_loop import step_generator

CHECKPOINT = "token.pt"
#: Where the token joins a prompt: as its first word, or its last (SAGE appends it).
TokenPosition = Literal["start", "end"]


def token_name(target: str | None) -> str:
    """The token's text in prompts: ``<fissure-red-apple>``, or ``<fissure-vanish>`` untargeted."""
    return f"<fissure-{attack_name(target).removeprefix('universal-token-')}>"


def attack_name(target: str | None) -> str:
    """The attack's name in the results store: one per target, ``universal-token-red-apple``."""
    return f"universal-token-{(target or 'vanish').replace(' ', '-')}"


def _held_out(label: str) -> float:
    """A label's fixed place in [0, 1): the split never depends on the label list's order."""
    digest = hashlib.sha256(f"fissure-universal:{label}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class PromptSplit:
    """(prompt, class) pairs: training prompts of some classes, in every template of the
    world's captions, and held-out prompts of the others, one template each."""

    training: list[tuple[str, str]]
    held_out: list[tuple[str, str]]

    def attempts(
        self, pairs: Sequence[tuple[str, str]], seeds: Sequence[int], labels: Sequence[str]
    ) -> list[Attempt]:
        """Each pair × seed, its target the pair's class."""
        return [
            Attempt(prompt, label, labels.index(label), seed)
            for prompt, label in pairs
            for seed in seeds
        ]


def split_prompts(labels: Sequence[str], target: str | None, held_out: int) -> PromptSplit:
    """``held_out`` classes (never the target) are tested, the rest train."""
    classes = sorted((label for label in labels if label != target), key=_held_out)
    tested, trained = classes[:held_out], classes[held_out:]
    return PromptSplit(
        training=[(t.format(class_phrase(c)), c) for c in trained for t in TEMPLATES],
        held_out=[(TEMPLATES[int(_held_out(c) * 1e6) % len(TEMPLATES)].format(class_phrase(c)), c)
                  for c in tested],
    )  # fmt: skip


class TokenSpace:
    """One free token appended to every prompt; each attempt's latent from its seed."""

    def __init__(
        self,
        generator: Generator,
        steps: int = 25,
        guidance: float = 7.5,
        gradient: GradientMode = "exact-stored",
        batch_size: int = 8,
        position: TokenPosition = "end",
    ) -> None:
        self.generator = generator
        self.steps = steps
        self.guidance = guidance
        self.gradient = gradient
        self.batch_size = batch_size
        self.position = position

    def settings(self) -> dict[str, object]:
        return dict(
            space="universal token",
            steps=self.steps,
            guidance=self.guidance,
            gradient=self.gradient,
            batch_size=self.batch_size,
            position=self.position,
            **generator_settings(self.generator),
        )

    def origin(self, word: str | None = None, scale: float = 1.0) -> torch.Tensor:
        """Where the token starts (1×D): ``word``'s embedding (the mean of its tokens')
        times ``scale``, as textual inversion starts from a word; or, without a word, the
        mean embedding of the vocabulary."""
        table = self.generator.text_encoder.get_input_embeddings().weight.detach().float()
        if word is None:
            return table.mean(dim=0, keepdim=True)
        ids = self.generator.tokenizer(word, add_special_tokens=False).input_ids
        return table[ids].mean(dim=0, keepdim=True) * scale

    def latent(self, attempt: Attempt) -> torch.Tensor:
        """An attempt's initial latent: its seed's, untouched by the token."""
        return self.generator.initial_latents([attempt.seed])[0]

    def _tokens(self, token: torch.Tensor | None) -> FreeTokens | None:
        """The token inserted as the prompt's first or last word."""
        where = [1] if self.position == "start" else [-1]
        return None if token is None else FreeTokens(token, where, insert=True)

    def with_token(self, prompt: str, name: str) -> str:
        """The prompt with the token's text where the token goes, as diffusers reads it."""
        return f"{name} {prompt}" if self.position == "start" else f"{prompt} {name}"

    def render(
        self, attempts: Sequence[Attempt], token: torch.Tensor | None, differentiable: bool = False
    ) -> Rendering:
        """Images of each attempt's prompt, with ``token`` (1×D) appended if given; padded to
        the batch size with copies of the last attempt, as the other spaces are."""
        attempts = padded(attempts, self.batch_size)
        with nullcontext() if differentiable else torch.no_grad():
            embeddings = self.generator.encode(
                [attempt.prompt for attempt in attempts], self._tokens(token)
            )
            output = self.generator.sample(
                self.generator.initial_latents([attempt.seed for attempt in attempts]),
                embeddings,
                steps=self.steps,
                guidance=self.guidance,
                gradient=self.gradient if differentiable else "none",
            )
        return Rendering(output.images, output.unet_evals, output.backward_evals)

    @torch.no_grad()
    def text_cosine(self, prompts: Sequence[str], token: torch.Tensor) -> list[float]:
        """How little the token changes each prompt's meaning to the text encoder: the cosine
        of its pooled embedding (the final state at the end token) with and without it."""
        plain = self.generator.encode(list(prompts))
        end = (plain.input_ids == self.generator.tokenizer.eos_token_id).int().argmax(dim=1)
        tokened = self.generator.encode(list(prompts), self._tokens(token))
        rows = torch.arange(len(prompts))
        pooled = [  # the first end token; the token's slot holds the unknown id, often the end's
            plain.prompt_embeds[rows, end.to(plain.prompt_embeds.device)],
            tokened.prompt_embeds[rows, (end + 1).to(tokened.prompt_embeds.device)],
        ]
        return torch.cosine_similarity(pooled[0].float(), pooled[1].float(), dim=-1).tolist()


@dataclass(frozen=True)
class TokenDescent:
    """Minibatch gradient descent on the one token every prompt shares."""

    iterations: int = 60
    batch: int = 8
    step: float = 0.01
    rule: StepRule = field(default_factory=NormalisedStep)
    seed: int = 0

    def settings(self) -> dict[str, object]:
        return dict(
            search="minibatch descent", iterations=self.iterations, batch=self.batch,
            step=self.step, seed=self.seed, **self.rule.settings(),
        )  # fmt: skip

    def minibatch(self, count: int, iteration: int) -> list[int]:
        """The attempts of one iteration, drawn without replacement by (seed, iteration)."""
        order = torch.randperm(count, generator=step_generator(self.seed, iteration))
        return order[: self.batch].tolist()


@dataclass
class UniversalToken:
    """The attack: a token space, a goal (the target appears, or each prompt's class
    vanishes), the vocabulary's range, and minibatch descent."""

    space: TokenSpace
    goal: TargetPresent | TargetAbsent
    constraints: tuple[Constraint, ...]
    search: TokenDescent
    target: str | None
    name: str = "universal-token"
    start_scale: float = 4.0

    def settings(self) -> dict[str, object]:
        return dict(
            attack=self.name,
            target=self.target,
            start_scale=self.start_scale,
            surrogate=self.goal.surrogate.source,
            surrogate_weights=weights_digest(self.goal.surrogate),
            goal=type(self.goal).__name__,
            goal_loss=getattr(self.goal, "loss", "sage"),
            **self.space.settings(),
            constraints=[repr(constraint) for constraint in self.constraints],
            **self.search.settings(),
        )

    def start(self) -> torch.Tensor:
        """The token before training: the target's word embedding stretched ``start_scale``
        times, within the constraints (a stretched word alone already brings some targets
        into held-out images; untargeted: the vocabulary's mean)."""
        origin = self.space.origin(self.target, self.start_scale)
        return project_all(self.constraints, origin, origin)

    def goal_targets(self, attempts: Sequence[Attempt], images: torch.Tensor) -> torch.Tensor:
        """Each row's class for the goal (the token's target, or the attempt's own class),
        padded like ``images``' rows, on their device."""
        if self.target is not None:
            indices = [self.goal.surrogate.labels.index(self.target)] * len(attempts)
        else:
            indices = [attempt.target_index for attempt in attempts]
        return target_rows(indices, images)

    def train(
        self,
        attempts: Sequence[Attempt],
        folder: Path,
        progress: bool = True,
        record: dict[str, object] | None = None,
    ) -> torch.Tensor:
        """The token (1×D) after ``search.iterations`` minibatch steps over ``attempts``,
        resumed from ``folder``'s checkpoint (written after every step) if there is one.

        ``record``: what else the training depends on (the model, the training seeds); a
        checkpoint made with other settings or attempts is refused, not resumed.
        """
        checkpoint = folder / CHECKPOINT
        made_with = json.loads(json.dumps({
            **self.settings(), **(record or {}),
            "attempts": hashlib.sha256(repr(list(attempts)).encode()).hexdigest()[:16],
        }))  # fmt: skip
        state = {"token": self.start(), "memory": {}, "iteration": 0, "losses": []}
        if checkpoint.is_file():
            state = torch.load(checkpoint, map_location=state["token"].device)
            changed = sorted(
                key for key in made_with.keys() | state["made_with"].keys()
                if made_with.get(key) != state["made_with"].get(key)
            )  # fmt: skip
            if changed:
                raise FissureError(
                    f"{folder} holds a token trained with other settings ({', '.join(changed)}): "
                    "give another --out, or remove it to train again"
                )
        token, memory = state["token"], state["memory"]
        with tqdm(
            total=self.search.iterations, initial=state["iteration"], desc=f"{self.name} training",
            unit="step", disable=not progress,
        ) as bar:  # fmt: skip
            for iteration in range(state["iteration"], self.search.iterations):
                batch = [attempts[i] for i in self.search.minibatch(len(attempts), iteration)]
                variable = token.clone().requires_grad_(True)
                rendering = self.space.render(batch, variable, differentiable=True)
                evaluation = self.goal.evaluate(
                    rendering.images, self.goal_targets(batch, rendering.images)
                )
                loss = evaluation.loss[: len(batch)].mean()
                (gradient,) = torch.autograd.grad(loss, variable)
                moved = token - self.search.step * self.search.rule.move(gradient, memory)
                token = project_all(self.constraints, moved, token).detach()
                state = {"token": token, "memory": memory, "iteration": iteration + 1,
                         "losses": [*state["losses"], float(loss.detach())],
                         "made_with": made_with}  # fmt: skip
                folder.mkdir(parents=True, exist_ok=True)
                with atomic_write(checkpoint) as partial:
                    torch.save(state, partial)
                achieved = float(evaluation.achieved[: len(batch)].float().mean())
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}", achieved=f"{achieved:.0%}")
                bar.update()
        return token


def save_textual_inversion(token: torch.Tensor, name: str, path: Path) -> None:
    """The token as a textual-inversion file: ``{name: 1×D}``, which
    ``StableDiffusionPipeline.load_textual_inversion(path)`` adds to the tokenizer."""
    with atomic_write(path) as partial:
        save_file({name: token.detach().float().contiguous()}, str(partial))
