"""Findings: one record per attacked attempt, and the folder that keeps them.

A run folder holds ``run.json`` (the attack's settings), ``findings.jsonl`` (one
line per finished attempt), ``images/`` (before and after PNGs) and ``deltas/``
(each δ as safetensors). A finding's files are written before its line, and
each line is flushed to disk at once, so a killed run loses only the attempts in
flight; running the same command again skips the attempts already recorded.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from fissure.atomic import atomic_write
from fissure.attacks.spaces import Attempt
from fissure.errors import FissureError
from fissure.outputs import prepare_output_dir, prompt_file_stem


@dataclass
class Finding:
    """An attack on one (prompt, target, seed) and every judgement of its outcome.

    ``success``: the surrogate's goal holds after the attack. ``verified``: the
    verifiers, which never entered the loss, agree the target is absent.
    ``clean_shows_target``: every verifier read the target first in the clean
    image; an attempt without it is a natural failure, not an attack success.
    ``unet_evals`` counts forward UNet evaluations per image plus three per
    step of each backward pass.
    """

    id: str
    attack: str
    model: str
    prompt: str
    target: str
    seed: int
    iterations: int
    unet_evals: int
    seconds: float
    success: bool
    verified: bool
    clean_shows_target: bool
    kind: str | None
    unrelated_class: str | None
    typical: bool
    typicality: dict
    delta_linf: float
    delta_l2: float
    surrogate_before: dict
    surrogate_after: dict
    verifier_before: dict
    verifier_after: dict
    files: dict[str, str] = field(default_factory=dict)
    target_trace: list[float] = field(default_factory=list)

    @property
    def verified_failure(self) -> bool:
        """A failure the attack caused: the clean image showed the target, the attack met
        its goal on the surrogate, and the verifiers agree the target is gone."""
        return self.clean_shows_target and self.success and self.verified


def attempt_id(attempt: Attempt) -> str:
    """A readable file stem for an attempt, unique by a hash of its exact prompt and target."""
    return prompt_file_stem(attempt.prompt, attempt.seed, attempt.target)


def _save_png(image: torch.Tensor, path: Path) -> None:
    pixels = (image.detach().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    Image.fromarray(np.ascontiguousarray(pixels)).save(path)


def _read_settings(run_file: Path) -> dict[str, object]:
    try:
        return json.loads(run_file.read_text())
    except json.JSONDecodeError:
        raise FissureError(
            f"{run_file} is not valid JSON: delete it and run the same command to resume"
        ) from None


class FindingStore:
    """A run folder: opened for one attack's settings, appended to one finding at a time."""

    def __init__(self, folder: str | Path, settings: dict[str, object]) -> None:
        self.folder = prepare_output_dir(folder)
        self._drop_cut_line()
        self._done = {finding.id for finding in self.findings()}
        run_file = self.folder / "run.json"
        self._recorded = _read_settings(run_file) if run_file.is_file() else {}
        self.settings: dict[str, object] = {}
        self.bind(**settings)
        (self.folder / "images").mkdir(exist_ok=True)
        (self.folder / "deltas").mkdir(exist_ok=True)

    def bind(self, **settings: object) -> None:
        """Add settings the findings depend on (:func:`run_attack` adds the model and verifiers).

        A folder holding findings made under other values of these settings is refused,
        so a resumed run never mixes two runs' findings.
        """
        settings = json.loads(json.dumps(settings))
        changed = sorted(
            key
            for key, value in settings.items()
            if key in self._recorded and self._recorded[key] != value
        )
        if self._done and changed:
            raise FissureError(
                f"{self.folder} holds findings made with other settings ({', '.join(changed)}): "
                "use another --out, or the same options to resume it"
            )
        self.settings.update(settings)
        self._recorded = {**self._recorded, **self.settings} if self._done else dict(self.settings)
        with atomic_write(self.folder / "run.json") as partial:
            partial.write_text(json.dumps(self._recorded, indent=2) + "\n")

    @property
    def findings_file(self) -> Path:
        return self.folder / "findings.jsonl"

    def _drop_cut_line(self) -> None:
        """Remove a last line a kill cut short, so the next record starts on a line of its own."""
        if not self.findings_file.is_file():
            return
        text = self.findings_file.read_bytes()
        if text and not text.endswith(b"\n"):  # a kill during this rewrite keeps the old file
            with atomic_write(self.findings_file) as partial:
                partial.write_bytes(text[: text.rfind(b"\n") + 1])

    def has(self, attempt: Attempt) -> bool:
        return attempt_id(attempt) in self._done

    def findings(self) -> list[Finding]:
        """Every complete record; a line cut short by a kill is ignored."""
        if not self.findings_file.is_file():
            return []
        records = []
        for line in self.findings_file.read_text().splitlines():
            try:
                records.append(Finding(**json.loads(line)))
            except (json.JSONDecodeError, TypeError):
                continue
        return records

    def add(
        self, finding: Finding, before: torch.Tensor, after: torch.Tensor, delta: torch.Tensor
    ) -> None:
        """Write the finding's images and δ, then its line (flushed and synced)."""
        files = {
            "before": f"images/{finding.id}-before.png",
            "after": f"images/{finding.id}-after.png",
            "delta": f"deltas/{finding.id}.safetensors",
        }
        _save_png(before, self.folder / files["before"])
        _save_png(after, self.folder / files["after"])
        save_file(
            {"delta": delta.detach().float().cpu().contiguous()}, self.folder / files["delta"]
        )
        finding.files = files
        with open(self.findings_file, "a") as stream:
            stream.write(json.dumps(asdict(finding)) + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        self._done.add(finding.id)
