"""The emoji-sd that ships in the package: found by name, small, loadable without fissure."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from fissure.cli import app
from fissure.models import load_pipeline
from fissure.zoo import WEIGHTS_DIR, bundled_model_path

from .conftest import run_without_fissure

BUNDLED_WEIGHTS_LIMIT = 60 * 2**20
RESUME_POINT = Path(__file__).resolve().parents[3] / "training" / "emoji-sd"


def test_zoo_path_prints_the_bundled_folder():
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["zoo", "path", "emoji-sd"])
    assert result.exit_code == 0, result.output
    assert (bundled_model_path("emoji-sd") / "model_index.json").is_file()
    assert result.output.strip() == str(bundled_model_path("emoji-sd"))


def test_all_bundled_weights_fit_the_budget():
    total = sum(path.stat().st_size for path in WEIGHTS_DIR.rglob("*.safetensors"))
    assert 0 < total <= BUNDLED_WEIGHTS_LIMIT, f"{total / 2**20:.1f} MB"


def test_load_pipeline_uses_the_bundled_model_by_default():
    pipeline = load_pipeline()
    assert pipeline.unet.config.sample_size * pipeline.vae_scale_factor == 64
    assert pipeline.name_or_path == str(bundled_model_path("emoji-sd"))
    ids = pipeline.tokenizer("a photo of a dog").input_ids  # the world's own BPE: whole words
    assert pipeline.tokenizer.decode(ids, skip_special_tokens=True) == "a photo of a dog"
    assert len(ids) == 2 + 5


def test_the_bundled_model_draws_the_classes_it_is_asked_for():
    """A quick look on probe seeds (the bars are ``fissure zoo evaluate``'s): 32 classes, one
    sample each, at the bars' 25 steps and guidance 7.5. The shipped model draws 28 of
    them; broken weights, a wrong latent scale or scheduler draw none."""
    import random

    from fissure.judges import load_judge
    from fissure.world import class_names
    from fissure.zoo.emoji_sd.evaluate import PROBE, generate

    names = class_names()
    chosen = random.Random(0).sample(range(len(names)), 32)
    prompts = [f"a photo of a {names[c]}" for c in chosen]
    seeds = [PROBE.singles + i for i in range(len(chosen))]
    images = generate(load_pipeline(), prompts, seeds, steps=25, guidance=7.5, progress=False)
    read = load_judge("emoji/verifier")(images).argmax(1).tolist()
    found = sum(r == c for r, c in zip(read, chosen, strict=True))
    assert found >= 24, f"the verifier found {found} of 32 prompted classes"


def test_stock_diffusers_runs_the_bundled_model_without_fissure():
    """Only the folder's path crosses over: the subprocess never imports fissure."""
    run_without_fissure(
        f"""
        import torch
        from diffusers import StableDiffusionPipeline
        pipe = StableDiffusionPipeline.from_pretrained(
            {str(bundled_model_path("emoji-sd"))!r}, local_files_only=True
        )
        images = pipe("a photo of a dog", num_inference_steps=3, guidance_scale=7.5,
                      generator=torch.Generator().manual_seed(0), output_type="np").images
        assert images.shape == (1, 64, 64, 3), images.shape
        assert images.std() > 0.02, "a flat image"
        """
    )


def test_its_clip_is_the_emoji_clip_judge():
    from fissure.judges import load_judge
    from fissure.world import class_names

    judge = load_judge("emoji/clip")
    assert judge.labels == list(class_names())
    assert judge.input_size == 64


def test_the_committed_resume_point_rebuilds_the_bundled_model():
    """`fissure zoo train emoji-sd --out DIR` (the default recipe and resume point) must
    restore what ships: every stage finished under default_config(), the EMA UNet equal."""
    from fissure.zoo.emoji_sd.config import default_config

    config = default_config()
    manifest = json.loads((RESUME_POINT / "resume.json").read_text())
    for stage, entry in manifest["stages"].items():
        assert entry["finished"] and entry["record"]["passed"], stage
        assert entry["fingerprint"] == config.fingerprint(stage), stage
    trained = load_file(RESUME_POINT / "unet.safetensors")
    shipped = load_file(
        bundled_model_path("emoji-sd") / "unet" / "diffusion_pytorch_model.safetensors"
    )
    assert shipped.keys() == {
        key.removeprefix("ema/average.") for key in trained if key.startswith("ema/")
    }
    assert all(torch.equal(trained[f"ema/average.{key}"], value) for key, value in shipped.items())
