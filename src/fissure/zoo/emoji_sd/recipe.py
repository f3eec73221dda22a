"""The emoji-sd recipe: stages in order, each gated, resumable across machines.

``fissure zoo train emoji-sd --out DIR`` runs :func:`train_emoji_sd`:

0. tokenizer (BPE on captions), 1. CLIP pair (its text tower then widened to the
   pipeline's prompt length, :func:`widen_context`), 2. VAE (2b: its decoder fine-tuned
   on the frozen encoder), 3. UNet — each trained
   by :func:`fissure.zoo.training_loop.train` (checkpoints every few minutes in
   ``DIR/<stage>/``), then gated; a finished stage is skipped on the next run and
   its gate, measured once, is reported again. A failed gate stops the run
   (``force`` goes on).
4. The pipeline is assembled (EMA UNet, DDIM), saved in diffusers layout with
   its CLIP pair and model card, and installed into the package.

A **resume point** (:func:`write_resume_point`) is the state of every stage in
float16 without optimiser moments: small enough to commit (``training/emoji-sd``),
and :func:`train_emoji_sd` continues from it on a new machine.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import CLIPModel, CLIPTokenizer

from fissure.atomic import atomic_folder, atomic_write, lock_folder
from fissure.errors import FissureError
from fissure.judges.base import Judge
from fissure.zoo.emoji_sd.clip_stage import (
    image_processor,
    text_encoder_from_clip,
    train_clip,
    widen_context,
)
from fissure.zoo.emoji_sd.common import (
    SESSIONS,
    StageRecord,
    checkpoint_step,
    count_parameters,
    log_session,
    machine_description,
    read_sessions,
)
from fissure.zoo.emoji_sd.config import CONFIG_FILE, EmojiSdConfig, default_config
from fissure.zoo.emoji_sd.evaluate import PROBE, evaluate_pipeline
from fissure.zoo.emoji_sd.gates import clip_gate, clip_judge, gate_bank, vae_gate
from fissure.zoo.emoji_sd.model_card import model_card, write_model_card
from fissure.zoo.emoji_sd.tokenizer import caption_corpus, train_tokenizer
from fissure.zoo.emoji_sd.unet_stage import (
    cached_encodings,
    encode_bank,
    sampling_scheduler,
    train_unet,
)
from fissure.zoo.emoji_sd.vae_stage import latent_scaling_factor, train_decoder, train_vae
from fissure.zoo.scene_bank import SceneBank
from fissure.zoo.training_loop import CHECKPOINT_NAME, LOG_NAME

STAGES = ("clip", "vae", "decoder", "unet")
RESUME_MANIFEST = "resume.json"
CALIBRATION_NOTES = "CALIBRATION.md"
COMMAND = "fissure zoo train emoji-sd"


class TrainingPaused(Exception):
    """The time budget (``deadline``) ran out mid-stage; the checkpoint is saved."""

    def __init__(self, stage: str, step: int, steps: int) -> None:
        super().__init__(f"paused {stage} at step {step}/{steps}")
        self.stage, self.step, self.steps = stage, step, steps


@dataclass
class TrainedParts:
    """What the stages made, ready to assemble."""

    tokenizer: CLIPTokenizer
    clip: CLIPModel
    vae: AutoencoderKL
    unet: UNet2DConditionModel
    records: dict[str, StageRecord]


class Recipe:
    """One run of the recipe over a work folder; see the module docstring."""

    def __init__(
        self,
        out: str | Path,
        config: EmojiSdConfig | None = None,
        device: torch.device | None = None,
        verifier: Judge | Callable[[], Judge] | None = None,
        force: bool = False,
        progress: bool = True,
        checkpoint_seconds: float = 180.0,
        log: Callable[[str], None] = print,
        command: str = COMMAND,
        deadline: float | None = None,
    ) -> None:
        self.out = Path(out)
        self.deadline = deadline
        self.config = config or default_config()
        self.device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self._verifier = verifier
        self.force = force
        self.progress = progress
        self.checkpoint_seconds = checkpoint_seconds
        self.log = log
        self.command = command

    # -- shared inputs -------------------------------------------------------------

    def verifier(self) -> Judge:
        """The held-out judge of the gates: given, or ``emoji/verifier`` (loaded on first use)."""
        if self._verifier is None:
            from fissure.judges import load_judge

            self._verifier = load_judge("emoji/verifier")
        elif not isinstance(self._verifier, Judge):
            self._verifier = self._verifier()
        return self._verifier

    def surrogate_judge(self, name: str) -> Judge:
        """A frozen judge for a training loss: refused if it is the gates' verifier."""
        from fissure.judges import load_judge

        if name == "emoji/verifier":
            raise FissureError("the verifier gates the stages and must never enter a loss")
        return load_judge(name, device=self.device)

    def check_work_folder(self) -> None:
        """Refuse a work folder whose begun stages another recipe made (later ones may change).

        Also refuse to train a stage on once a later stage has begun on its weights:
        the later stage's cached inputs (latents, text encodings, a whole VAE in the
        decoder's checkpoint) would silently stay those of the earlier weights.
        """
        begun = [stage for stage in STAGES if (self.out / stage / CHECKPOINT_NAME).is_file()]
        if (self.out / CONFIG_FILE).is_file():
            previous = EmojiSdConfig.load(self.out)
            for stage in begun:
                if previous.fingerprint(stage) != self.config.fingerprint(stage):
                    raise FissureError(
                        f"{self.out} holds a run of another recipe (stage {stage} differs); "
                        "use a new --out folder"
                    )
        for stage, later in zip(begun, begun[1:], strict=False):
            step, steps = checkpoint_step(self.out / stage), getattr(self.config, stage).steps
            if step < steps:
                raise FissureError(
                    f"stage {stage} would train on from step {step} to {steps}, but stage "
                    f"{later} has begun on its weights in {self.out}: use a new --out folder"
                )
        self.config.save(self.out)

    def tokenizer(self) -> CLIPTokenizer:
        folder = self.out / "tokenizer"
        if not (folder / "tokenizer_config.json").is_file():
            data = self.config.data
            self.log(f"stage 0: tokenizer (BPE on {data.tokenizer_captions:,} captions)")
            tokenizer = train_tokenizer(
                caption_corpus(data.tokenizer_captions), data.vocab_size, data.max_length
            )
            tokenizer.save_pretrained(folder)
        return CLIPTokenizer.from_pretrained(folder)

    def bank(self) -> SceneBank:
        return SceneBank.cached(self.config.data.bank_spec(), self.out / "banks", self.progress)

    def _gate(self, stage: str, index: int, scores: dict, passed: bool, headline: str) -> None:
        details = ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in scores.items()
        )
        verdict = "passed" if passed else "NOT passed"
        self.log(f"gate {index} {stage}: {headline} — {verdict} ({details})")
        if not passed and not self.force:
            raise FissureError(
                f"the {stage} gate is not passed; train the stage longer "
                f"(--steps {stage}=N with N above {getattr(self.config, stage).steps}), "
                "or pass --force to go on anyway"
            )

    def _begin(self, stage: str) -> None:
        """Note in the stage's session log that this run trains it further, if it does."""
        steps = getattr(self.config, stage).steps
        step = checkpoint_step(self.out / stage)
        last = (read_sessions(self.out / stage) or [{}])[-1]
        same = last.get("command") == self.command and last.get("machine") == machine_description()
        if step < steps and not same:  # a restart of the same run is no new session
            log_session(self.out / stage, step, steps, self.command)

    def _check_finished(self, stage: str, step: int) -> None:
        steps = getattr(self.config, stage).steps
        if step < steps:
            raise TrainingPaused(stage, step, steps)

    def _loop_options(self, folder: Path) -> dict:
        """Where and how a stage's training loop runs, checkpoints and stops."""
        return dict(
            folder=folder,
            device=self.device,
            progress=self.progress,
            checkpoint_seconds=self.checkpoint_seconds,
            deadline=self.deadline,
        )

    def _measured_once(
        self, stage: str, step: int, measure: Callable[[], StageRecord]
    ) -> StageRecord:
        """The saved record of ``stage`` at ``step`` under this recipe, else ``measure()``'s, saved.

        Gates are measured once: a run that resumes a later stage does not pay for them again.
        """
        folder = self.out / stage / "final"
        record = StageRecord.load(folder)
        if (
            record
            and record.steps == step
            and record.fingerprint == self.config.fingerprint(stage)
            and record.gate_settings == self.config.gate_settings(stage)
        ):
            return record
        record = measure()
        record.save(folder)
        return record

    def _record(self, stage: str, step: int, seconds: float, gate: dict, passed: bool, **notes):
        sessions = read_sessions(self.out / stage)
        last = sessions[-1] if sessions else {}
        return StageRecord(
            stage=stage,
            steps=step,
            seconds=round(seconds, 1),
            gate=gate,
            passed=passed,
            machine=last.get("machine", machine_description()),
            command=last.get("command", self.command),
            fingerprint=self.config.fingerprint(stage),
            gate_settings=self.config.gate_settings(stage),
            notes=notes,
            sessions=sessions,
        )

    # -- stages --------------------------------------------------------------------

    def clip_stage(
        self, tokenizer: CLIPTokenizer, bank: SceneBank
    ) -> tuple[CLIPModel, StageRecord]:
        stage = self.config.clip
        folder = self.out / "clip"
        self._begin("clip")
        clip, step, seconds = train_clip(stage, bank, tokenizer, **self._loop_options(folder))
        self._check_finished("clip", step)
        record = self._measured_once(
            "clip",
            step,
            lambda: self._record(
                "clip",
                step,
                seconds,
                *clip_gate(clip, tokenizer, stage.gate_scenes, stage.gate_top1, self.out / "gates"),
            ),
        )
        clip.save_pretrained(folder / "final")
        scores = record.gate
        self._gate(
            "clip",
            1,
            scores,
            record.passed,
            f"text→image top-1 {scores['text_to_image_top1']:.1%} on {stage.gate_scenes} "
            f"scenes (bar {stage.gate_top1:.0%})",
        )
        return clip, record

    def vae_stage(self, clip: CLIPModel, bank: SceneBank) -> tuple[AutoencoderKL, StageRecord]:
        """Stage 2: the autoencoder, and its latents' scaling factor (gated after stage 2b)."""
        stage = self.config.vae
        folder = self.out / "vae"
        self._begin("vae")
        vae, step, seconds = train_vae(
            stage,
            bank,
            vision_tower(clip),
            judge=self.surrogate_judge(stage.judge) if stage.judge_weight else None,
            **self._loop_options(folder),
        )
        self._check_finished("vae", step)
        record = self._measured_once(
            "vae",
            step,
            lambda: self._record(
                "vae",
                step,
                seconds,
                {},
                True,
                scaling_factor=round(latent_scaling_factor(vae, bank), 5),
            ),
        )
        vae.register_to_config(scaling_factor=record.notes["scaling_factor"])
        vae.save_pretrained(folder / "final")
        self.log(f"stage 2 vae: trained; latent scaling factor {vae.config.scaling_factor:.4f}")
        return vae, record

    def decoder_stage(
        self, clip: CLIPModel, vae: AutoencoderKL, bank: SceneBank
    ) -> tuple[AutoencoderKL, StageRecord]:
        """Stage 2b: the decoder fine-tuned on the frozen encoder; then stage 2's gate."""
        stage = self.config.decoder
        folder = self.out / "decoder"
        self._begin("decoder")
        vae, step, seconds = train_decoder(
            stage,
            self.config.vae,
            vae,
            bank,
            vision_tower(clip),
            judge=self.surrogate_judge(stage.judge) if stage.judge_weight else None,
            **self._loop_options(folder),
        )
        self._check_finished("decoder", step)

        def measure() -> StageRecord:
            scores, passed = vae_gate(
                vae.cpu(),
                self.verifier(),
                self.config.vae.gate_scenes,
                self.config.vae.gate_retention,
                self.out / "gates",
            )
            vae.to(self.device)
            return self._record("decoder", step, seconds, scores, passed)

        record = self._measured_once("decoder", step, measure)
        vae.save_pretrained(folder / "final")
        scores = record.gate
        self._gate(
            "decoder",
            2,
            scores,
            record.passed,
            f"verifier keeps {scores['single_retention']:.1%} (single) and "
            f"{scores['pairs_retention']:.1%} (pairs) of its accuracy on "
            f"{self.config.vae.gate_scenes} scenes of each, PSNR "
            f"{scores['single_psnr']:.1f}/{scores['pairs_psnr']:.1f} dB "
            f"(bar {self.config.vae.gate_retention:.0%})",
        )
        return vae, record

    def unet_stage(
        self, tokenizer: CLIPTokenizer, clip: CLIPModel, vae: AutoencoderKL, bank: SceneBank
    ) -> tuple[UNet2DConditionModel, StageRecord]:
        stage = self.config.unet
        folder = self.out / "unet"
        text_encoder = text_encoder_from_clip(clip).to(self.device)
        vision = vision_tower(clip) if stage.repa_weight > 0 else None
        without_repa = "" if vision is not None else "-norepa"  # they lack the vision tokens
        name = f"encodings-{self.config.fingerprint('vae')}-{tokenizer.model_max_length}"
        self._begin("unet")
        ema, _, step, seconds = train_unet(
            stage,
            lambda: cached_encodings(
                folder / f"{name}{without_repa}.pt",
                lambda: encode_bank(
                    bank, tokenizer, text_encoder, vae, vision, progress=self.progress
                ),
            ),
            vae.config.scaling_factor,
            vae.config.latent_channels,
            clip.config.text_config.hidden_size,
            clip.config.vision_config.hidden_size,
            **self._loop_options(folder),
        )
        self._check_finished("unet", step)

        def measure() -> StageRecord:
            pipeline = assemble_pipeline(tokenizer, text_encoder, vae, ema, self.config)
            self.log(
                f"unet gate: generating {stage.gate_seeds} seeds × every class and "
                f"{stage.gate_pairs} pairs ({stage.gate_steps} DDIM steps, "
                f"guidance {stage.gate_guidance})"
            )
            evaluation = evaluate_pipeline(
                pipeline.to(self.device),
                self.verifier(),
                clip_judge(clip.cpu(), tokenizer),
                seeds=stage.gate_seeds,
                pairs=stage.gate_pairs,
                steps=stage.gate_steps,
                guidance=stage.gate_guidance,
                progress=self.progress,
                sheet=folder / "final" / "gate_sheet.png",
                clip_scenes=gate_bank(
                    self.config.clip.gate_scenes, 1, self.out / "gates", first_seed=PROBE.scenes
                ),
                plan=PROBE,  # the bars' own seeds stay unseen by every choice
            )
            scores = {name: score for name, (score, _, _) in evaluation.checks().items()}
            return self._record("unet", step, seconds, scores, evaluation.passed())

        record = self._measured_once("unet", step, measure)
        ema.save_pretrained(folder / "final")
        self._gate(
            "unet",
            3,
            record.gate,
            record.passed,
            f"verifier top-1 {record.gate['single_top1_strict']:.1%} ({stage.gate_seeds} seeds "
            f"per class), pairs {record.gate['pairs_top2_strict']:.1%} ({stage.gate_pairs} pairs)",
        )
        return ema, record

    # -- the whole recipe ----------------------------------------------------------

    def train(self) -> TrainedParts:
        """Run (or resume, or re-gate) every stage; returns the trained parts."""
        self.check_work_folder()
        tokenizer = self.tokenizer()
        bank = self.bank()
        records: dict[str, StageRecord] = {}
        clip, records["clip"] = self.clip_stage(tokenizer, bank)
        tokenizer, clip = widen_context(tokenizer, clip, self.config.prompt_length())
        vae, records["vae"] = self.vae_stage(clip, bank)
        vae, records["decoder"] = self.decoder_stage(clip, vae, bank)
        unet, records["unet"] = self.unet_stage(tokenizer, clip, vae, bank)
        return TrainedParts(tokenizer, clip, vae, unet, records)


def vision_tower(clip: CLIPModel):
    """The CLIP vision tower as a frozen ``CLIPVisionModel`` (shares no parameters)."""
    from transformers import CLIPVisionModel

    vision = clip.vision_model  # transformers 5: CLIPModel holds a CLIPVisionModel
    if isinstance(vision, CLIPVisionModel):
        vision = copy.deepcopy(vision)
    else:  # earlier layouts held the bare transformer
        tower = CLIPVisionModel(clip.config.vision_config)
        tower.vision_model.load_state_dict(vision.state_dict())
        vision = tower.to(next(clip.parameters()).device)
    return vision.eval().requires_grad_(False)


def assemble_pipeline(
    tokenizer: CLIPTokenizer,
    text_encoder,
    vae: AutoencoderKL,
    unet: UNet2DConditionModel,
    config: EmojiSdConfig,
) -> StableDiffusionPipeline:
    """The Stable Diffusion pipeline of the trained parts (no safety checker)."""
    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=sampling_scheduler(config.unet),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def save_model(
    folder: Path,
    parts: TrainedParts,
    config: EmojiSdConfig,
    calibration: str | None = None,
) -> Path:
    """Save the pipeline (float16 safetensors), ``clip/`` and the model card into ``folder``."""
    folder = Path(folder)
    text_encoder = text_encoder_from_clip(parts.clip.cpu())
    pipeline = assemble_pipeline(
        parts.tokenizer, text_encoder, parts.vae.cpu(), parts.unet.cpu(), config
    )
    sizes = {
        "text encoder (CLIPTextModel)": count_parameters(text_encoder),
        "CLIP vision tower": count_parameters(parts.clip.vision_model),
        "VAE (AutoencoderKL)": count_parameters(parts.vae),
        "UNet (UNet2DConditionModel)": count_parameters(parts.unet),
    }
    card = model_card(
        config, parts.records, sizes, parts.vae.config.scaling_factor, calibration=calibration
    )
    with atomic_folder(folder) as staging:
        pipeline.save_pretrained(staging, safe_serialization=True)
        clip_folder = staging / "clip"
        parts.clip.cpu().save_pretrained(clip_folder, safe_serialization=True)
        parts.tokenizer.save_pretrained(clip_folder)
        image_processor().save_pretrained(clip_folder)
        write_model_card(staging, card)
        halve_weights(staging)
    return folder


def halve_weights(folder: Path) -> None:
    """Store every safetensors file under ``folder`` in float16, configs unchanged.

    The configs still say float32, so stock ``from_pretrained`` (transformers'
    ``dtype="auto"`` reads the config) builds float32 models and upcasts on load:
    half the bytes on disk, full precision in use.
    """
    for path in sorted(Path(folder).rglob("*.safetensors")):
        with safe_open(path, "pt") as handle:
            metadata = handle.metadata()
        tensors = {
            name: (value.half() if value.is_floating_point() else value).contiguous()
            for name, value in load_file(path).items()
        }
        save_file(tensors, path, metadata=metadata)


# -- resume points -------------------------------------------------------------------


def _half_tensors(modules: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Every module's state as one flat ``module/key`` dict, floats in half precision."""
    return {
        f"{module}/{key}": (value.half() if value.is_floating_point() else value).contiguous()
        for module, state in modules.items()
        for key, value in state.items()
    }


def write_resume_point(out: str | Path, target: str | Path, force: bool = False) -> dict:
    """Copy the state of every stage in ``out`` to ``target`` (float16 weights, no optimiser).

    Safe while a training process writes ``out``: checkpoints are replaced atomically.
    A ``target`` further on than ``out`` in any stage (a work folder whose restore failed,
    or a stale one) is refused unless ``force``: the committed hours would be lost.
    Returns the manifest written.
    """
    out, target = Path(out), Path(target)
    if not (out / CONFIG_FILE).is_file():
        raise FissureError(f"{out} holds no emoji-sd training run (no {CONFIG_FILE})")
    config = EmojiSdConfig.load(out)
    if not force:
        _refuse_going_back(out, target, config)
    with atomic_folder(target) as staging:
        if (out / "tokenizer" / "tokenizer_config.json").is_file():
            shutil.copytree(out / "tokenizer", staging / "tokenizer")
        manifest: dict = {
            "config": config.to_dict(),
            "stages": {},
            "written": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        }
        for stage in STAGES:
            checkpoint = out / stage / CHECKPOINT_NAME
            if not checkpoint.is_file():
                continue
            state = torch.load(checkpoint, map_location="cpu")
            save_file(_half_tensors(state["modules"]), staging / f"{stage}.safetensors")
            record = StageRecord.load(out / stage / "final")
            finished = record is not None and record.steps == state["step"]
            manifest["stages"][stage] = {
                "step": state["step"],
                "steps": getattr(config, stage).steps,
                "seconds": round(state["seconds"], 1),
                "finished": finished,
                "fingerprint": config.fingerprint(stage),
                "record": record.__dict__ if finished else None,
                "sessions": read_sessions(out / stage),
            }
            if (out / stage / LOG_NAME).is_file():  # the loss curve, for the model card
                shutil.copy(out / stage / LOG_NAME, staging / f"{stage}-{LOG_NAME}")
        (staging / RESUME_MANIFEST).write_text(json.dumps(manifest, indent=2))
        notes = target / CALIBRATION_NOTES
        if notes.is_file():
            shutil.copy(notes, staging / CALIBRATION_NOTES)
    return manifest


def _refuse_going_back(out: Path, target: Path, config: EmojiSdConfig) -> None:
    """A one-line error if writing ``out`` to ``target`` would lose a stage's steps."""
    manifest_path = target / RESUME_MANIFEST
    if not manifest_path.is_file():
        return
    for stage, entry in json.loads(manifest_path.read_text())["stages"].items():
        step = checkpoint_step(out / stage)
        other_recipe = entry["fingerprint"] != config.fingerprint(stage)
        if other_recipe or step < entry["step"]:
            why = "another recipe's" if other_recipe else f"at step {step} in {out}"
            raise FissureError(
                f"{target} holds {stage} at step {entry['step']}, {why}: writing it would "
                "lose training; resume from it first (--resume-point), or --force to overwrite"
            )


def restore_resume_point(source: str | Path, out: str | Path, config: EmojiSdConfig) -> list[str]:
    """Seed ``out`` with the stages of the resume point ``source`` that are ahead of it.

    A stage is restored as a checkpoint without optimiser state, so the training
    loop continues from its step with fresh moments (and a finished stage is
    re-assembled and re-gated without training). Returns the stages restored.
    """
    source, out = Path(source), Path(out)
    manifest_path = source / RESUME_MANIFEST
    if not manifest_path.is_file():
        if source.exists():  # a cut or mistyped folder must not silently start from scratch
            raise FissureError(f"{source} is not a resume point (no {RESUME_MANIFEST})")
        return []
    manifest = json.loads(manifest_path.read_text())
    restored = []
    if (source / "tokenizer").is_dir() and not (
        out / "tokenizer" / "tokenizer_config.json"
    ).is_file():
        shutil.copytree(source / "tokenizer", out / "tokenizer", dirs_exist_ok=True)
    for stage, entry in manifest["stages"].items():
        if entry["fingerprint"] != config.fingerprint(stage):
            raise FissureError(
                f"the resume point {source} was made by another recipe (stage {stage} differs); "
                "move it away or give --resume-point another folder"
            )
        if checkpoint_step(out / stage) >= entry["step"]:
            continue
        checkpoint = out / stage / CHECKPOINT_NAME
        modules: dict[str, dict[str, torch.Tensor]] = {}
        for key, value in load_file(source / f"{stage}.safetensors").items():
            module, name = key.split("/", 1)
            modules.setdefault(module, {})[name] = (
                value.float() if value.is_floating_point() else value
            )
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        state = {"modules": modules, "step": entry["step"], "seconds": entry["seconds"]}
        with atomic_write(checkpoint) as partial:
            torch.save(state, partial)
        if entry.get("record"):
            StageRecord(**entry["record"]).save(out / stage / "final")
        if entry.get("sessions") and not (out / stage / SESSIONS).is_file():
            (out / stage / SESSIONS).write_text(
                "".join(json.dumps(session) + "\n" for session in entry["sessions"])
            )
        log = source / f"{stage}-{LOG_NAME}"
        if log.is_file() and not (out / stage / LOG_NAME).is_file():
            shutil.copy(log, out / stage / LOG_NAME)  # lines past the step are dropped on resume
        restored.append(stage)
    return restored


def train_emoji_sd(
    out: str | Path,
    config: EmojiSdConfig | None = None,
    device: torch.device | None = None,
    resume_point: str | Path | None = None,
    install: str | Path | None = None,
    verifier: Judge | Callable[[], Judge] | None = None,
    force: bool = False,
    progress: bool = True,
    checkpoint_seconds: float = 180.0,
    log: Callable[[str], None] = print,
    command: str = COMMAND,
    deadline: float | None = None,
) -> Path:
    """Train every stage into ``out`` (resuming), save the model to ``out/pipeline``.

    ``resume_point``: a folder written by :func:`write_resume_point` to continue
    from; ``install``: a folder to copy the finished model to (the package's
    ``weights/emoji-sd``); ``deadline`` (``time.monotonic()``): checkpoint and
    raise :class:`TrainingPaused` once passed. Returns the folder of the saved model.
    """
    config = config or default_config()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with lock_folder(out):  # a second trainer would overwrite this one's checkpoints
        recipe = Recipe(
            out, config, device, verifier, force, progress, checkpoint_seconds, log, command,
            deadline,
        )  # fmt: skip
        recipe.check_work_folder()
        calibration = None
        if resume_point is not None:
            restored = restore_resume_point(resume_point, out, config)
            if restored:
                log(f"resumed {', '.join(restored)} from {resume_point}")
            elif not Path(resume_point).exists():
                log(f"no resume point at {resume_point}: the work folder's own state goes on")
            notes = Path(resume_point) / CALIBRATION_NOTES
            calibration = notes.read_text(encoding="utf-8") if notes.is_file() else None
        log(f"emoji-sd: training on {recipe.device}; work folder {out}")
        parts = recipe.train()
        folder = save_model(out / "pipeline", parts, config, calibration)
        log(f"saved the pipeline to {folder}")
        if install is not None:
            with atomic_folder(Path(install)) as staging:
                shutil.copytree(folder, staging, dirs_exist_ok=True)
            log(f"installed it in {install}")
        return folder
