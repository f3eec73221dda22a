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

import torch
from safetensors.torch import save_file

from fissure.atomic import atomic_write, lock_folder
from fissure.attacks.spaces import Attempt
from fissure.errors import FissureError, RunFolderMismatch
from fissure.images import to_pil
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
    latent_seed: int | None = None
    """Random search: the seed of the fresh latent behind ``after`` (``fissure generate
    --seeds`` redraws it when the attack had no constraints); None for gradient attacks."""

    @property
    def verified_failure(self) -> bool:
        """A failure the attack caused: the clean image showed the target, the attack met
        its goal on the surrogate, and the verifiers agree the target is gone."""
        return self.clean_shows_target and self.success and self.verified


def attempt_id(attempt: Attempt) -> str:
    """A readable file stem for an attempt, unique by a hash of its exact prompt and target."""
    return prompt_file_stem(attempt.prompt, attempt.seed, attempt.target)


def _save_png(image: torch.Tensor, path: Path) -> None:
    with atomic_write(path) as partial:
        to_pil(image).save(partial, format="PNG")


def _read_settings(run_file: Path, has_findings: bool) -> dict[str, object]:
    """The settings the folder's findings were made with ({} for a folder without findings)."""
    restore = "restore it from the run that made these findings, or use another --out"
    if not run_file.is_file():
        if has_findings:
            raise FissureError(
                f"{run_file} is missing, and it holds the findings' settings: {restore}"
            )
        return {}
    try:
        settings = json.loads(run_file.read_text())
    except json.JSONDecodeError:
        settings = None
    if not isinstance(settings, dict):
        raise FissureError(f"{run_file} is not a JSON object of settings: {restore}")
    return settings


class FindingStore:
    """A run folder: opened for one attack's settings, appended to one finding at a time.

    One store at a time may hold a folder (a lock, released by :meth:`close`, at
    exit, or when the process dies): two runs into one ``--out`` would attack the
    same attempts twice and could lose each other's lines.
    """

    def __init__(self, folder: str | Path, settings: dict[str, object]) -> None:
        self.folder = prepare_output_dir(folder)
        self._lock = lock_folder(self.folder)
        try:
            self._drop_cut_line()
            self._done = {finding.id for finding in self.findings()}
            self._resumed = bool(self._done)
            self._recorded = _read_settings(self.folder / "run.json", bool(self._done))
            self.settings: dict[str, object] = {}
            self.bind(**settings)
            (self.folder / "images").mkdir(exist_ok=True)
            (self.folder / "deltas").mkdir(exist_ok=True)
        except BaseException:  # a refused folder stays free for the corrected retry
            self.close()
            raise

    def close(self) -> None:
        """Let another store open the folder."""
        self._lock.close()

    def __enter__(self) -> FindingStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def bind(self, **settings: object) -> None:
        """Add settings the findings depend on (:func:`run_attack` adds the model and verifiers).

        A folder holding findings made under other values of these settings is refused,
        so a resumed run never mixes two runs' findings.
        """
        settings = json.loads(json.dumps(settings))
        changed = sorted(  # a setting a resumed folder never recorded: another version's
            key
            for key, value in settings.items()
            if (self._recorded[key] != value if key in self._recorded else self._resumed)
        )
        if self._done and changed:
            raise RunFolderMismatch(self.folder, changed)
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
        """Every complete record, the last one of each attempt; a line being written is skipped.

        Any other line that is not a finding is an error: skipping it would attack
        its attempt again and hide that the folder is damaged.
        """
        if not self.findings_file.is_file():
            return []
        text = self.findings_file.read_text()
        lines = text.split("\n")[:-1]  # the last piece is empty or a line still being written
        records: dict[str, Finding] = {}
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
                record.pop("verified_failure", None)  # written for readers, derived on load
                finding = Finding(**record)
            except (json.JSONDecodeError, TypeError, AttributeError) as error:  # not an object
                raise FissureError(
                    f"line {number} of {self.findings_file} is not a finding ({error}); "
                    "move the file away to start over, or use another --out"
                ) from None
            records[finding.id] = finding
        return list(records.values())

    def add(
        self, finding: Finding, before: torch.Tensor, after: torch.Tensor, delta: torch.Tensor
    ) -> None:
        """Write the finding's images and δ, then its line (each flushed and synced)."""
        files = {
            "before": f"images/{finding.id}-before.png",
            "after": f"images/{finding.id}-after.png",
            "delta": f"deltas/{finding.id}.safetensors",
        }
        # each file synced before the line that names it: a power cut keeps no line
        # pointing at an empty image
        _save_png(before, self.folder / files["before"])
        _save_png(after, self.folder / files["after"])
        with atomic_write(self.folder / files["delta"]) as partial:
            save_file({"delta": delta.detach().float().cpu().contiguous()}, partial)
        finding.files = files
        record = {**asdict(finding), "verified_failure": finding.verified_failure}
        with open(self.findings_file, "a") as stream:
            start = stream.tell()
            try:
                stream.write(json.dumps(record) + "\n")
                stream.flush()
                os.fsync(stream.fileno())
            except BaseException:  # a full disk: no half line for the next one to run into
                stream.truncate(start)
                raise
        self._done.add(finding.id)
