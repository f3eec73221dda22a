"""Short calibration runs: what each choice of the recipe buys, measured, not assumed.

Each run trains one variant of a stage for a fixed number of steps on top of the
earlier stages of a real work folder (``fissure zoo train emoji-sd --out WORK``),
then measures it on held-out scenes:

- ``clip``: the gate of the latest CLIP checkpoint (to follow a running stage);
- ``vae``: L1+MSE alone vs. with the CLIP feature loss (and any other variants, such
  as twice the widths or twice the latent channels): PSNR, and how much of a judge's
  accuracy survives reconstruction;
- ``decoder``: more steps of stage 2b from where the work folder's stage 2b ended, with
  its judge or another surrogate judge in the loss: stage 2's gate (verifier retention);
- ``unet``: plain ε-MSE vs. min-SNR vs. min-SNR + REPA (and no warm-up): held-out
  ε-MSE at fixed timesteps and noise, for the raw and the EMA weights, and
  judge accuracy of samples of every class prompt;
- ``unet-probe``: of finished ``unet`` runs, how much the caption lowers the
  held-out ε-MSE, and the verifier on one-step x0 predictions at t=600;
- ``unet-live``: samples of the work folder's latest UNet checkpoint (raw and EMA
  weights, with stage 2b's VAE): judge top-1 on every class prompt, a contact sheet
  (to follow the running stage 3), and the EMA pipeline in ``DIR/pipeline``;
- ``spacing``: DDIM's "leading" (SD's) against "trailing" timesteps on a saved pipeline
  (``--pipeline``, default ``DIR/pipeline``): singles and pairs on the probe seeds, a
  sampling-only choice made before the held-out evaluation.

Run ``python -m fissure.zoo.emoji_sd.calibration clip|vae|unet --work WORK --out DIR``;
results go to ``DIR/<kind>.json`` and a Markdown table to ``DIR/<kind>.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from transformers import CLIPModel, CLIPTokenizer

from fissure.judges.base import Judge
from fissure.world import class_names
from fissure.zoo.emoji_sd.clip_stage import build_clip, text_encoder_from_clip, widen_context
from fissure.zoo.emoji_sd.config import (
    CONFIG_FILE,
    DecoderStage,
    EmojiSdConfig,
    UnetStage,
    VaeStage,
)
from fissure.zoo.emoji_sd.evaluate import PROBE, generate, pair_evaluation, write_sheet
from fissure.zoo.emoji_sd.gates import (
    clip_gate,
    clip_judge,
    gate_bank,
    psnr,
    reconstruct,
    vae_gate,
)
from fissure.zoo.emoji_sd.recipe import assemble_pipeline, vision_tower
from fissure.zoo.emoji_sd.unet_stage import (
    Encodings,
    cached_encodings,
    encode_bank,
    train_unet,
    training_scheduler,
)
from fissure.zoo.emoji_sd.vae_stage import (
    build_vae,
    latent_scaling_factor,
    train_decoder,
    train_vae,
)
from fissure.zoo.judge_evaluation import judge_accuracy
from fissure.zoo.scene_bank import SceneBank
from fissure.zoo.training_loop import CHECKPOINT_NAME


def load_work(work: Path) -> tuple[EmojiSdConfig, CLIPTokenizer, SceneBank]:
    config = EmojiSdConfig.load(work)
    tokenizer = CLIPTokenizer.from_pretrained(work / "tokenizer")
    bank = SceneBank.cached(config.data.bank_spec(), work / "banks", progress=False)
    return config, tokenizer, bank


def load_clip(work: Path, config: EmojiSdConfig, tokenizer: CLIPTokenizer) -> tuple[CLIPModel, int]:
    """The work folder's CLIP: its latest checkpoint (finished or not) and step."""
    state = torch.load(work / "clip" / CHECKPOINT_NAME, map_location="cpu")
    clip = build_clip(config.clip, tokenizer)
    clip.load_state_dict(state["modules"]["clip"])
    return clip.eval(), state["step"]


def available_judges(clip: CLIPModel, tokenizer: CLIPTokenizer) -> dict[str, Judge]:
    """Our CLIP zero-shot always; the held-out verifier when it is installed."""
    judges: dict[str, Judge] = {"clip": clip_judge(clip, tokenizer)}
    try:
        from fissure.judges import load_judge

        judges["verifier"] = load_judge("emoji/verifier")
    except Exception:  # not trained yet on this machine
        pass
    return judges


def calibrate_vae(
    work: Path, out: Path, variants: dict[str, VaeStage], scenes: int = 300
) -> dict[str, dict]:
    config, tokenizer, bank = load_work(work)
    clip, clip_step = load_clip(work, config, tokenizer)
    judges = available_judges(clip, tokenizer)
    banks = {
        "single": gate_bank(scenes, 1, work / "gates"),
        "pairs": gate_bank(scenes, 2, work / "gates"),
    }
    results = {}
    for name, stage in variants.items():
        folder = out / "vae" / name
        dataclasses.replace(config, vae=stage).save(folder)
        started = time.monotonic()
        judge = None
        if stage.judge_weight:
            from fissure.judges import load_judge

            judge = load_judge(stage.judge)
        vae, step, seconds = train_vae(
            stage, bank, vision_tower(clip), judge, folder=folder, device=torch.device("cpu")
        )
        scores: dict[str, float] = {"steps": step, "train_seconds": round(seconds, 1)}
        for bank_name, held_out in banks.items():
            rebuilt = dataclasses.replace(held_out, images=reconstruct(vae, held_out.images))
            scores[f"{bank_name}_psnr"] = psnr(held_out.images, rebuilt.images)
            for judge_name, judge in judges.items():
                original = judge_accuracy(judge, held_out)
                scores[f"{bank_name}_{judge_name}_original"] = original
                scores[f"{bank_name}_{judge_name}_retention"] = (
                    judge_accuracy(judge, rebuilt) / original if original else 0.0
                )
        scores["scaling_factor"] = latent_scaling_factor(vae, bank)
        scores["wall_seconds"] = round(time.monotonic() - started, 1)
        results[name] = scores
        print(name, json.dumps(scores), flush=True)
    results["_context"] = {"clip_step": clip_step, "scenes": scenes}
    return results


def calibrate_decoder(
    work: Path, out: Path, variants: dict[str, DecoderStage], gate_scenes: int | None = None
) -> dict[str, dict]:
    """Fine-tune the work folder's finished stage-2b VAE further per variant; gate each.

    ``gate_scenes``: held-out scenes per kind (default: the recipe's gate).
    """
    from fissure.judges import load_judge

    config, tokenizer, bank = load_work(work)
    clip, _ = load_clip(work, config, tokenizer)
    verifier = load_judge("emoji/verifier")
    results = {}
    for name, stage in variants.items():
        started = time.monotonic()
        if stage.judge == "emoji/verifier":
            raise ValueError("the verifier gates stage 2 and must never enter a loss")
        vae, step, seconds = train_decoder(
            stage,
            config.vae,
            AutoencoderKL.from_pretrained(work / "decoder" / "final"),
            bank,
            vision_tower(clip),
            judge=load_judge(stage.judge) if stage.judge_weight else None,
            folder=out / "decoder" / name,
            device=torch.device("cpu"),
        )
        scores, _ = vae_gate(
            vae,
            verifier,
            gate_scenes or config.vae.gate_scenes,
            config.vae.gate_retention,
            work / "gates",
        )
        scores.update(steps=step, train_seconds=round(seconds, 1))
        scores["wall_seconds"] = round(time.monotonic() - started, 1)
        results[name] = scores
        print(name, json.dumps(scores), flush=True)
    return results


@torch.no_grad()
def heldout_mse(
    unet,
    encodings: Encodings,
    scaling_factor: float,
    stage: UnetStage,
    timesteps=(50, 200, 400, 600, 800, 950),
) -> dict[str, float]:
    """Unweighted ε-MSE on held-out scenes at fixed timesteps and noise."""
    scheduler = training_scheduler(stage)
    generator = torch.Generator().manual_seed(0)
    latents = encodings.latent_mean.float() * scaling_factor
    text = encodings.text.float()
    scores = {}
    for t in timesteps:
        noise = torch.randn(latents.shape, generator=generator)
        steps = torch.full((len(latents),), t)
        noisy = scheduler.add_noise(latents, noise, steps)
        errors = []
        for start in range(0, len(latents), 64):
            prediction = unet(
                noisy[start : start + 64], steps[start : start + 64], text[start : start + 64]
            ).sample
            errors.append((prediction - noise[start : start + 64]).square().mean((1, 2, 3)))
        scores[f"mse_t{t}"] = float(torch.cat(errors).mean())
    scores["mse_mean"] = sum(scores.values()) / len(scores)
    return scores


@torch.no_grad()
def sample_accuracy(
    pipeline,
    judges: dict[str, Judge],
    seeds: int = 1,
    steps: int = 25,
    sheet: Path | None = None,
) -> dict[str, float]:
    """Top-1 of each judge on "a photo of a <class>" samples (every class × ``seeds``).

    ``sheet``: also write the first seed's images, captioned with their prompts, there.
    """
    names = class_names()
    prompts = [f"a photo of a {name}" for _ in range(seeds) for name in names]
    seed_list = [PROBE.singles + s for s in range(seeds) for _ in names]
    labels = torch.tensor([c for _ in range(seeds) for c in range(len(names))])
    images = generate(pipeline, prompts, seed_list, steps, 7.5, 16, progress=False)
    if sheet is not None:
        write_sheet(sheet, images[: len(names)], prompts[: len(names)], images[:0], [])
    return {
        f"samples_{name}_top1": float((judge(images).argmax(1) == labels).float().mean())
        for name, judge in judges.items()
    }


def load_vae_checkpoint(config: EmojiSdConfig, folder: Path) -> AutoencoderKL:
    """The VAE of a finished calibration run's checkpoint, in eval mode, in its variant's shape."""
    if (folder / CONFIG_FILE).is_file():
        config = EmojiSdConfig.load(folder)
    vae = build_vae(config.vae)
    vae.load_state_dict(torch.load(folder / CHECKPOINT_NAME, map_location="cpu")["modules"]["vae"])
    return vae.eval()


def calibrate_unet(
    work: Path, out: Path, vae_folder: Path, variants: dict[str, UnetStage], scenes: int = 15_000
) -> dict[str, dict]:
    config, tokenizer, bank = load_work(work)
    clip, clip_step = load_clip(work, config, tokenizer)
    judges = available_judges(clip, tokenizer)
    vae = load_vae_checkpoint(config, vae_folder)
    scaling = latent_scaling_factor(vae, bank)
    text_encoder = text_encoder_from_clip(clip)
    vision = vision_tower(clip)
    subset = bank.subset(torch.arange(len(bank)) < scenes)
    encodings = cached_encodings(
        out / "unet" / f"encodings-{scenes}.pt",
        lambda: encode_bank(subset, tokenizer, text_encoder, vae, vision),
    )
    held_out = gate_bank(128, 1, work / "gates")
    held_pairs = gate_bank(128, 2, work / "gates")
    validation = cached_encodings(
        out / "unet" / "encodings-validation.pt",
        lambda: encode_bank(
            SceneBank(
                torch.cat([held_out.images, held_pairs.images]),
                torch.cat([held_out.targets, held_pairs.targets]),
                held_out.captions + held_pairs.captions,
                held_out.emoji_sets + held_pairs.emoji_sets,
                torch.cat([held_out.object_counts, held_pairs.object_counts]),
            ),
            tokenizer,
            text_encoder,
            vae,
            None,
            progress=False,
        ),
    )
    results = {}
    for name, stage in variants.items():
        folder = out / "unet" / name
        started = time.monotonic()
        used_encodings = (
            encodings if stage.repa_weight else dataclasses.replace(encodings, repa=None)
        )
        ema, raw, step, seconds = train_unet(
            stage,
            lambda used=used_encodings: used,
            scaling,
            vae.config.latent_channels,
            config.clip.text_hidden,
            config.clip.vision_hidden,
            folder,
            torch.device("cpu"),
        )
        scores: dict[str, float] = {"steps": step, "train_seconds": round(seconds, 1)}
        for weights_name, unet in (("raw", raw), ("ema", ema)):
            for key, value in heldout_mse(unet, validation, scaling, stage).items():
                scores[f"{weights_name}_{key}"] = value
            pipeline = assemble_pipeline(tokenizer, text_encoder, vae, unet, config)
            for key, value in sample_accuracy(pipeline, judges).items():
                scores[f"{weights_name}_{key}"] = value
        scores["wall_seconds"] = round(time.monotonic() - started, 1)
        results[name] = scores
        print(name, json.dumps(scores), flush=True)
    results["_context"] = {"clip_step": clip_step, "scenes": scenes, "scaling_factor": scaling}
    return results


@torch.no_grad()
def conditioning_probe(
    unet,
    vae,
    verifier: Judge | None,
    validation: Encodings,
    labels: torch.Tensor,
    scaling: float,
    stage: UnetStage,
    timesteps=(400, 600, 800, 950),
) -> dict[str, float]:
    """How much the caption helps, long before samples show it.

    ``gain_t*``: held-out ε-MSE with the empty caption minus with the true caption
    (positive once the UNet uses the text). ``x0_verifier_t600_*``: the verifier's
    top-1 on single-object scenes decoded from the one-step x0 prediction at t=600,
    with and without the caption.
    """
    scheduler = training_scheduler(stage)
    generator = torch.Generator().manual_seed(1)
    latents = validation.latent_mean.float() * scaling
    text = validation.text.float()
    empty = validation.empty.float().expand_as(text)
    scores: dict[str, float] = {}
    for t in timesteps:
        noise = torch.randn(latents.shape, generator=generator)
        steps = torch.full((len(latents),), t)
        noisy = scheduler.add_noise(latents, noise, steps)
        errors = {}
        for name, condition in (("cond", text), ("empty", empty)):
            prediction = torch.cat(
                [
                    unet(noisy[i : i + 64], steps[i : i + 64], condition[i : i + 64]).sample
                    for i in range(0, len(latents), 64)
                ]
            )
            errors[name] = float((prediction - noise).square().mean())
            if t == 600 and verifier is not None:
                alpha = scheduler.alphas_cumprod[t]
                x0 = (noisy - (1 - alpha).sqrt() * prediction) / alpha.sqrt()
                single = labels >= 0
                images = (vae.decode(x0[single] / scaling).sample.clamp(-1, 1) + 1) / 2
                top1 = verifier(images).argmax(1) == labels[single]
                scores[f"x0_verifier_t600_{name}"] = float(top1.float().mean())
        scores[f"gain_t{t}"] = errors["empty"] - errors["cond"]
    return scores


def unet_weights(modules: dict, weights: str) -> dict[str, torch.Tensor]:
    """The UNet state dict of a stage-3 checkpoint's modules: ``raw`` or ``ema`` weights."""
    if weights == "raw":
        return {
            k.removeprefix("unet."): v
            for k, v in modules["denoiser"].items()
            if k.startswith("unet.")
        }
    return {k.removeprefix("average."): v for k, v in modules["ema"].items()}


@torch.no_grad()
def sample_live_unet(work: Path, out: Path, seeds: int = 1, pairs: int = 0) -> dict[str, float]:
    """:func:`sample_accuracy` of the latest UNet checkpoint in ``work`` (raw and EMA).

    ``pairs``: also the EMA's share of the evaluation's first ``pairs`` pair prompts
    with both objects found, the bar the singles say least about.
    """
    from fissure.zoo.emoji_sd.unet_stage import build_unet

    config, tokenizer, _ = load_work(work)
    clip, _ = load_clip(work, config, tokenizer)
    tokenizer, clip = widen_context(tokenizer, clip, config.prompt_length())
    judges = available_judges(clip, tokenizer)
    vae = AutoencoderKL.from_pretrained(work / "decoder" / "final").eval()
    state = torch.load(work / "unet" / CHECKPOINT_NAME, map_location="cpu")
    scores: dict[str, float] = {"step": state["step"]}
    for weights in ("raw", "ema"):
        unet = build_unet(config.unet, config.vae.latent_channels, config.clip.text_hidden)
        unet.load_state_dict(unet_weights(state["modules"], weights))
        pipeline = assemble_pipeline(
            tokenizer, text_encoder_from_clip(clip), vae, unet.eval(), config
        )
        accuracy = sample_accuracy(pipeline, judges, seeds, sheet=out / f"live-{weights}.png")
        if weights == "ema":  # a pipeline to try attacks on before the stage ends
            pipeline.save_pretrained(out / "pipeline", safe_serialization=True)
            if pairs and "verifier" in judges:
                results = pair_evaluation(
                    pipeline, judges["verifier"], pairs, progress=False, plan=PROBE
                )
                accuracy["pairs_top2"] = results.found / pairs
                accuracy["pairs_top2_strict"] = results.found_strict / pairs
        scores.update({f"{weights}_{key}": value for key, value in accuracy.items()})
    return scores


@torch.no_grad()
def compare_spacing(folder: Path, out: Path, pairs: int) -> dict[str, dict]:
    """Verifier scores of the pipeline in ``folder`` under each DDIM timestep spacing."""
    from diffusers import DDIMScheduler

    from fissure.judges import load_judge
    from fissure.models import load_pipeline

    pipeline = load_pipeline(str(folder), local_files_only=True)
    verifier = load_judge("emoji/verifier")
    config = dict(pipeline.scheduler.config)
    results = {}
    for spacing, offset in (("leading", 1), ("trailing", 0)):
        pipeline.scheduler = DDIMScheduler.from_config(
            {**config, "timestep_spacing": spacing, "steps_offset": offset}
        )
        scores = sample_accuracy(pipeline, {"verifier": verifier}, sheet=out / f"{spacing}.png")
        found = pair_evaluation(pipeline, verifier, pairs, progress=False, plan=PROBE)
        scores["pairs_top2"] = found.found / pairs
        scores["pairs_top2_strict"] = found.found_strict / pairs
        results[spacing] = scores
        print(spacing, json.dumps(scores), flush=True)
    return results


def probe_unet(work: Path, out: Path, vae_folder: Path, variants: list[str]) -> dict[str, dict]:
    """:func:`conditioning_probe` of finished calibration runs (raw and EMA weights)."""
    from fissure.zoo.emoji_sd.unet_stage import build_unet

    config, tokenizer, bank = load_work(work)
    clip, _ = load_clip(work, config, tokenizer)
    judges = available_judges(clip, tokenizer)
    vae = load_vae_checkpoint(config, vae_folder)
    scaling = latent_scaling_factor(vae, bank)
    validation = Encodings(**torch.load(out / "unet" / "encodings-validation.pt"))
    singles = gate_bank(128, 1, work / "gates")
    labels = torch.cat(
        [singles.targets.argmax(1), torch.full((len(validation) - len(singles),), -1)]
    )
    results = {}
    for name in variants:
        state = torch.load(out / "unet" / name / CHECKPOINT_NAME, map_location="cpu")["modules"]
        scores: dict[str, float] = {}
        for weights in ("raw", "ema"):
            unet = build_unet(config.unet, config.vae.latent_channels, config.clip.text_hidden)
            unet.load_state_dict(unet_weights(state, weights))
            probe = conditioning_probe(
                unet.eval(), vae, judges.get("verifier"), validation, labels, scaling, config.unet
            )
            scores.update({f"{weights}_{key}": value for key, value in probe.items()})
        results[name] = scores
        print(name, json.dumps(scores), flush=True)
    return results


def markdown_table(results: dict[str, dict]) -> str:
    variants = [name for name in results if not name.startswith("_")]
    keys = [key for key in results[variants[0]]]
    lines = ["| measure | " + " | ".join(variants) + " |", "|---" * (len(variants) + 1) + "|"]
    for key in keys:
        cells = []
        for variant in variants:
            value = results[variant].get(key)
            cells.append(f"{value:.4g}" if isinstance(value, float) else str(value))
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "kind",
        choices=["clip", "vae", "decoder", "unet", "unet-probe", "unet-live", "spacing"],
    )
    parser.add_argument("--work", type=Path, default=Path("runs/emoji-sd"))
    parser.add_argument("--out", type=Path, default=Path("runs/emoji-sd-calibration"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--vae", type=Path, help="unet: the calibration VAE folder to build on")
    parser.add_argument("--only", nargs="*", help="run only these variants")
    parser.add_argument("--gate-scenes", type=int, help="decoder: held-out scenes per kind")
    parser.add_argument(
        "--pairs", type=int, default=0, help="unet-live: also score the EMA on this many pairs"
    )
    parser.add_argument("--pipeline", type=Path, help="spacing: a saved pipeline folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.kind == "spacing":
        args.out.mkdir(parents=True, exist_ok=True)
        results = compare_spacing(
            args.pipeline or args.out / "pipeline", args.out, args.pairs or 200
        )
        (args.out / "spacing.md").write_text(markdown_table(results) + "\n")
        print(markdown_table(results))
        return
    config = EmojiSdConfig.load(args.work)
    if args.kind == "clip":  # the gate of the work folder's latest CLIP checkpoint
        _, tokenizer, _ = load_work(args.work)
        clip, step = load_clip(args.work, config, tokenizer)
        scores, passed = clip_gate(
            clip, tokenizer, config.clip.gate_scenes, config.clip.gate_top1, args.work / "gates"
        )
        print(json.dumps({"step": step, **scores, "passed": passed}))
        return
    if args.kind == "unet-live":
        args.out.mkdir(parents=True, exist_ok=True)
        print(json.dumps(sample_live_unet(args.work, args.out, pairs=args.pairs)))
        return
    if args.kind == "unet-probe":
        results = probe_unet(args.work, args.out, args.vae, args.only or [])
        path = args.out / "unet-probe.json"
        path.write_text(json.dumps(results, indent=2))
        (args.out / "unet-probe.md").write_text(markdown_table(results) + "\n")
        print(markdown_table(results))
        return
    if args.kind == "decoder":
        base = dataclasses.replace(
            config.decoder, steps=args.steps, warmup_steps=50, seed=config.decoder.seed + 1
        )
        variants = {
            "resnet-kl": base,
            "surrogate-kl": dataclasses.replace(base, judge="emoji/surrogate"),
            "deeper": dataclasses.replace(base, extra_layers=1),
        }
    elif args.kind == "vae":
        base = dataclasses.replace(config.vae, steps=args.steps, warmup_steps=50)
        variants = {
            "l1+mse": dataclasses.replace(base, perceptual_weight=0.0),
            "l1+mse+clip-features": base,
            "l1+mse+resnet-kl": dataclasses.replace(base, perceptual_weight=0.0, judge_weight=0.1),
            "wide": dataclasses.replace(base, block_out_channels=(64, 128, 128)),
            "8-channels": dataclasses.replace(base, latent_channels=8),
        }
    else:
        base = dataclasses.replace(config.unet, steps=args.steps, warmup_steps=50)
        variants = {
            "plain": dataclasses.replace(base, min_snr_gamma=None, repa_weight=0.0),
            "min-snr": dataclasses.replace(base, repa_weight=0.0),
            "min-snr+repa": base,
            "min-snr+repa,no-warmup": dataclasses.replace(base, warmup_steps=1),
        }
    if args.only:
        variants = {name: variants[name] for name in args.only}
    args.out.mkdir(parents=True, exist_ok=True)
    if args.kind == "decoder":
        results = calibrate_decoder(args.work, args.out, variants, args.gate_scenes)
    elif args.kind == "vae":
        results = calibrate_vae(args.work, args.out, variants)
    else:
        results = calibrate_unet(args.work, args.out, args.vae, variants)
    path = args.out / f"{args.kind}.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    previous.update(results)
    path.write_text(json.dumps(previous, indent=2))
    (args.out / f"{args.kind}.md").write_text(markdown_table(previous) + "\n")
    print(markdown_table(previous))


if __name__ == "__main__":
    main()
