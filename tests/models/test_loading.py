"""load_pipeline: local folders, SD 1.x and 2.x layouts, devices, dtypes and bad input."""

from __future__ import annotations

import json
import shutil

import huggingface_hub.constants
import pytest
import torch
from diffusers import StableDiffusionPipeline, UNet2DConditionModel

from fissure.errors import FissureError
from fissure.models import load_pipeline, resolve_device, resolve_dtype
from fissure.models.prompts import check_prompt
from fissure.zoo.tiny import build_tiny_pipeline


def test_loads_both_layouts_with_their_prediction_type(tiny_pipeline_dir):
    pipeline = load_pipeline(str(tiny_pipeline_dir))
    assert isinstance(pipeline, StableDiffusionPipeline)
    assert pipeline.device.type == "cpu"
    assert pipeline.unet.dtype == torch.float32
    expected = "v_prediction" if "sd2" in tiny_pipeline_dir.name else "epsilon"
    assert pipeline.scheduler.config.prediction_type == expected


def test_loaded_pipeline_generates_the_same_image_as_the_saved_one(tiny_sd1_dir, one_thread):
    """Against the pipeline that was saved, not a second load: a dropped weight shows."""
    saved = build_tiny_pipeline("sd1")  # what tiny_sd1_dir holds, built again from its seed
    images = [
        p(
            "a dog",
            generator=torch.Generator().manual_seed(3),
            num_inference_steps=3,
            output_type="np",
        ).images
        for p in (saved, load_pipeline(str(tiny_sd1_dir)))
    ]
    assert images[0].std() > 0.01 and (images[0] == images[1]).all()


@pytest.mark.parametrize(
    ("index", "message"),
    [
        ([], "no JSON object"),
        ({"_class_name": "StableDiffusionPipeline", "unet": "x"}, "lacks pipeline components"),
    ],
)
def test_a_malformed_model_index_is_one_line(tmp_path, tiny_sd1_dir, index, message):
    """A list or a string entry raised AttributeError / TypeError tracebacks."""
    folder = tmp_path / "bad"
    shutil.copytree(tiny_sd1_dir, folder)
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(FissureError, match=message):
        load_pipeline(str(folder))


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FissureError, match="no such model folder"):
        load_pipeline(str(tmp_path / "absent"))


def test_folder_without_model_index_is_refused(tmp_path):
    with pytest.raises(FissureError, match="not a diffusers pipeline folder"):
        load_pipeline(str(tmp_path))


def test_other_pipeline_class_is_refused(tmp_path, tiny_sd1_dir):
    folder = tmp_path / "xl"
    shutil.copytree(tiny_sd1_dir, folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusionXLPipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(FissureError, match="not a Stable Diffusion 1.x/2.x pipeline"):
        load_pipeline(str(folder))


def test_a_missing_component_folder_is_named(tmp_path, tiny_sd1_dir):
    """diffusers said "no file named model.safetensors ... in <the pipeline folder>"."""
    folder = tmp_path / "partial"
    shutil.copytree(tiny_sd1_dir, folder, ignore=shutil.ignore_patterns("text_encoder"))
    with pytest.raises(FissureError, match="lacks the component folders .*: text_encoder;"):
        load_pipeline(str(folder))


def test_an_inpainting_unet_is_refused(tmp_path, tiny_sd1_dir):
    folder = tmp_path / "inpaint"
    shutil.copytree(tiny_sd1_dir, folder)
    config = UNet2DConditionModel.load_config(folder / "unet")
    UNet2DConditionModel.from_config({**config, "in_channels": 9}).save_pretrained(folder / "unet")
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusionInpaintPipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(FissureError, match="takes 9 input channels, not the VAE's 4"):
        load_pipeline(str(folder))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"addition_embed_type": "text"}, "extra conditioning"),  # SDXL-style added embeddings
        ({"time_cond_proj_dim": 16}, "extra conditioning"),  # LCM-style guidance embedding
        ({"cross_attention_dim": 16}, "16-wide text states, but its text encoder makes 32"),
    ],
)
def test_a_unet_that_is_not_sd_1_or_2_is_refused(tmp_path, tiny_sd1_dir, change, message):
    folder = tmp_path / "other-unet"
    shutil.copytree(tiny_sd1_dir, folder)
    config = UNet2DConditionModel.load_config(folder / "unet")
    UNet2DConditionModel.from_config({**config, **change}).save_pretrained(folder / "unet")
    with pytest.raises(FissureError, match=message):
        load_pipeline(str(folder))


def _cache_as_hub_id(folder, cache, model_id: str) -> None:
    """Lay ``folder`` out in a hub cache as ``model_id``'s main revision, as a download would."""
    revision = "0" * 40
    repo = cache / f"models--{model_id.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An offline hub cache in tmp_path; hub ids resolve only to what a test puts there."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_a_cached_hub_id_loads(hub_cache, tiny_sd1_dir):
    _cache_as_hub_id(tiny_sd1_dir, hub_cache, "someone/tiny-sd")
    assert isinstance(load_pipeline("someone/tiny-sd"), StableDiffusionPipeline)


def test_a_hub_id_of_another_pipeline_class_is_refused(hub_cache, tmp_path, tiny_sd1_dir):
    folder = tmp_path / "xl"
    shutil.copytree(tiny_sd1_dir, folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(
        json.dumps({**index, "_class_name": "StableDiffusionXLPipeline"})
    )
    _cache_as_hub_id(folder, hub_cache, "someone/tiny-xl")
    with pytest.raises(FissureError, match="someone/tiny-xl holds a StableDiffusionXLPipeline"):
        load_pipeline("someone/tiny-xl")


def test_corrupt_weights_are_a_clear_error(tmp_path, tiny_sd1_dir):
    folder = tmp_path / "corrupt"
    shutil.copytree(tiny_sd1_dir, folder)
    weights = next((folder / "unet").glob("*.safetensors"))
    weights.write_bytes(b"not a safetensors file")
    with pytest.raises(FissureError, match="could not load"):
        load_pipeline(str(folder))


def test_unknown_hub_id_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FissureError, match="could not load.*check the path or id"):
        load_pipeline("fissure-tests/no-such-model")
    with pytest.raises(FissureError, match="did you mean emoji-sd"):
        load_pipeline("emoji_sd")  # taken for a hub id


def test_untrained_bundled_model_says_how_to_get_it(tmp_path, monkeypatch):
    import fissure.zoo

    monkeypatch.setattr(fissure.zoo, "WEIGHTS_DIR", tmp_path)  # an install without weights
    with pytest.raises(FissureError, match="fissure zoo train emoji-sd"):
        load_pipeline("emoji-sd")


def test_float16_on_cpu_is_refused():
    with pytest.raises(FissureError, match="float16"):
        resolve_dtype("float16", torch.device("cpu"))


def test_dtype_and_device_names():
    assert resolve_dtype(None, torch.device("cpu")) == torch.float32
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(FissureError, match="unknown dtype"):
        resolve_dtype("float8", torch.device("cpu"))
    assert resolve_device(None).type == "cpu"
    with pytest.raises(FissureError, match="unknown device"):
        resolve_device("toaster")


def test_cuda_without_a_gpu_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(FissureError, match="sees no GPU"):
        resolve_device("cuda")


def test_a_gpu_index_past_the_last_gpu_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(FissureError, match="sees only GPUs 0..0: use cuda:0 or cpu"):
        resolve_device("cuda:7")


def test_mps_without_mps_is_refused(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(FissureError, match="no MPS backend"):
        resolve_device("mps")


def test_prompt_checks(tiny_sd1_dir):
    tokenizer = load_pipeline(str(tiny_sd1_dir)).tokenizer
    check_prompt(tokenizer, "a dog")
    with pytest.raises(FissureError, match="empty prompt"):
        check_prompt(tokenizer, "   ")
    with pytest.raises(FissureError, match=r"is 80 tokens long but this model reads at most 75"):
        check_prompt(tokenizer, "x" * 80)


def test_records_name_a_model_the_way_it_loads(tmp_path, tiny_sd1_dir, monkeypatch):
    """A ./emoji-sd folder was recorded by its path while the bundled model was loaded."""
    from fissure.models.loading import model_label

    monkeypatch.chdir(tmp_path)
    (tmp_path / "emoji-sd").mkdir()
    shutil.copytree(tiny_sd1_dir, tmp_path / "mine")
    assert model_label("emoji-sd") == "emoji-sd"
    assert model_label("./mine") == str(tmp_path / "mine") == model_label(str(tmp_path / "mine"))
    assert model_label("owner/model") == "owner/model"
