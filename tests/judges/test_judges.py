"""Judges: preprocessing, saving, pretrained loaders and registry, with tiny real models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import (
    AutoTokenizer,
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    ConvNextImageProcessor,
    EfficientNetImageProcessor,
    MobileViTImageProcessor,
    ResNetConfig,
    ResNetForImageClassification,
    ViTImageProcessor,
)

from fissure.errors import FissureError
from fissure.judges import (
    ClipJudge,
    EmojiJudge,
    Ensemble,
    TransformersJudge,
    imagenet_labels,
    load_judge,
)
from fissure.world import class_names
from fissure.zoo.tiny import build_byte_tokenizer

LABELS = ["dog", "cat", "red apple", "bicycle"]
TINY_RESNET = dict(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic")
TINY_VIT = dict(
    image_size=32, patch_size=4, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
    intermediate_size=32, conv_stem=[8, 16],
)  # fmt: skip


def tiny_emoji_judge(architecture: str = "resnet", seed: int = 0) -> EmojiJudge:
    torch.manual_seed(seed)
    configs = {
        "resnet": TINY_RESNET,
        "convnet": {"channels": [8, 16]},
        "edge": {"channels": [8, 16]},
        "vit": TINY_VIT,
        "regnet": dict(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], groups_width=8),
    }
    return EmojiJudge(LABELS, architecture, configs[architecture], input_size=32).eval()


@pytest.mark.parametrize("architecture", ["resnet", "convnet", "edge", "vit", "regnet"])
def test_any_image_size_gives_probabilities(architecture):
    judge = tiny_emoji_judge(architecture)
    for size in (32, 64, 100):
        probabilities = judge(torch.rand(2, 3, size, size))
        assert probabilities.shape == (2, len(LABELS))
        assert torch.allclose(probabilities.sum(-1), torch.ones(2), atol=1e-5)


def test_vit_conv_stem_replaces_the_patchify_conv_and_needs_its_stride():
    judge = tiny_emoji_judge("vit")
    stem = judge.network.backbone.embeddings.patch_embeddings.projection
    assert [type(m).__name__ for m in stem][:3] == ["Conv2d", "BatchNorm2d", "ReLU"]
    with pytest.raises(FissureError, match="needs patch_size 4"):
        EmojiJudge(LABELS, "vit", {**TINY_VIT, "patch_size": 8}, input_size=32)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_images_meet_float32_weights(dtype):
    judge = tiny_emoji_judge()
    images = torch.rand(2, 3, 32, 32)
    assert torch.allclose(judge(images.to(dtype)), judge(images), atol=1e-2)


def test_wrong_image_shape_is_a_clear_error():
    with pytest.raises(FissureError, match="B×3×H×W"):
        tiny_emoji_judge()(torch.rand(3, 32, 32))


def test_save_and_load_round_trip_in_half_precision(tmp_path):
    judge = tiny_emoji_judge()
    judge.save_pretrained(tmp_path)
    loaded = EmojiJudge.from_pretrained(tmp_path)
    images = torch.rand(4, 3, 32, 32)
    assert loaded.labels == LABELS
    assert torch.allclose(judge(images), loaded(images), atol=2e-3)


def test_a_save_cut_short_leaves_no_judge_to_load(tmp_path, monkeypatch):
    def killed_halfway(state, path):
        Path(path).write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr("fissure.judges.emoji.save_file", killed_halfway)
    with pytest.raises(KeyboardInterrupt):
        tiny_emoji_judge().save_pretrained(tmp_path)
    assert not (tmp_path / "judge.json").exists()
    assert not (tmp_path / "model.safetensors").exists()


def test_corrupt_weights_are_a_clear_error(tmp_path):
    tiny_emoji_judge().save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(FissureError, match="could not read the weights"):
        EmojiJudge.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "damage",
    [
        lambda config: "{cut short",
        lambda config: config.replace('"architecture"', '"arch"'),  # another version's keys
        lambda config: config.replace('"architecture": "resnet"', '"architecture": "alexnet"'),
    ],
    ids=["cut", "old-keys", "unknown-architecture"],
)
def test_a_damaged_judge_config_is_a_clear_error(tmp_path, damage):
    tiny_emoji_judge().save_pretrained(tmp_path)
    config = tmp_path / "judge.json"
    config.write_text(damage(config.read_text()))
    with pytest.raises(FissureError, match="judge.json is unreadable.*train-judges"):
        EmojiJudge.from_pretrained(tmp_path)


def test_unknown_class_names_the_close_ones():
    with pytest.raises(FissureError, match="did you mean red apple"):
        tiny_emoji_judge().label_index("apple")


def test_ensemble_averages_members():
    members = [tiny_emoji_judge("resnet", 0), tiny_emoji_judge("edge", 1)]
    ensemble = Ensemble(members, names=["resnet", "edge"])
    images = torch.rand(3, 3, 32, 32)
    stacked = ensemble.member_probabilities(images)
    assert stacked.shape == (2, 3, len(LABELS))
    assert torch.allclose(ensemble(images), stacked.mean(0))
    single = members[0].member_probabilities(images)  # any judge is an ensemble of one
    assert torch.equal(single, members[0](images)[None])


def test_transformers_classifier_from_a_folder(tmp_path):
    config = ResNetConfig(
        num_labels=3, id2label={0: "tench", 1: "goldfish", 2: "shark"}, **TINY_RESNET
    )
    ResNetForImageClassification(config).save_pretrained(tmp_path)
    judge = load_judge(str(tmp_path))
    assert isinstance(judge, TransformersJudge)
    assert judge.labels == ["tench", "goldfish", "shark"]
    assert judge(torch.rand(2, 3, 64, 64)).shape == (2, 3)
    assert not any(p.requires_grad for p in judge.parameters())


def _disc(size: int = 64) -> torch.Tensor:
    """A smooth test image: a bright disc off-centre on a dark ramp."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    disc = (((x - 0.6) ** 2 + (y - 0.4) ** 2) < 0.08).float()
    return torch.stack([0.2 + 0.6 * disc, 0.3 * x + 0.5 * disc, 0.1 + 0.2 * y]).unsqueeze(0)


@pytest.mark.parametrize(
    "processor",
    [
        ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875),  # ResNet-50's
        ViTImageProcessor(size={"height": 40, "width": 40}, resample=2),
        CLIPImageProcessor(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32}),
        MobileViTImageProcessor(  # rescales only, then flips RGB to BGR
            size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32}
        ),
        ViTImageProcessor(size={"height": 32, "width": 32}, do_rescale=False),  # takes 0–255
        EfficientNetImageProcessor(  # to [-1, 1], normalised, then divided by the std again
            size={"height": 32, "width": 32},
            rescale_offset=True,
            rescale_factor=1 / 127.5,
            resample=2,
        ),
    ],
    ids=[
        "resize-crop_pct",
        "resize",
        "resize-crop_size",
        "bgr-unnormalised",
        "no-rescale",
        "offset-include_top",
    ],  # fmt: skip
)
@pytest.mark.parametrize("shape", [(64, 64), (64, 96), (80, 48)], ids=["square", "wide", "tall"])
def test_a_hub_classifier_sees_what_its_image_processor_gives(tmp_path, processor, shape):
    """Non-square images were squashed where "shortest edge" processors crop."""
    config = ResNetConfig(num_labels=2, **TINY_RESNET)
    ResNetForImageClassification(config).save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    image = torch.nn.functional.interpolate(_disc(), size=shape, mode="bilinear")
    pixels = (image[0].permute(1, 2, 0) * 255).round().byte().numpy()
    expected = processor(Image.fromarray(pixels), return_tensors="pt").pixel_values
    seen = load_judge(str(tmp_path)).preprocess(image)
    assert seen.shape == expected.shape
    unit = 255.0 if processor.do_rescale is False else 1.0  # pixels in 0–255, not 0–1
    assert (seen - expected).abs().mean() < 0.02 * unit


def test_an_unreadable_image_processor_is_a_clear_error(tmp_path):
    """It fell back to ImageNet's settings and judged with the wrong normalisation."""
    config = ResNetConfig(num_labels=2, **TINY_RESNET)
    ResNetForImageClassification(config).save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text("{cut short")
    with pytest.raises(FissureError, match="could not read the image processor"):
        load_judge(str(tmp_path))


def save_tiny_clip(folder) -> None:
    tokenizer = build_byte_tokenizer()
    text = dict(
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=len(tokenizer),
        # the pooled text is read at the tokenizer's end token: without these ids, at the first
        # token, the same for every prompt
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = dict(
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        image_size=32,
        patch_size=8,
    )
    CLIPModel(
        CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    ).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(
        crop_size={"height": 32, "width": 32}, size={"shortest_edge": 32}, image_mean=[0.5] * 3
    ).save_pretrained(folder)


def test_clip_zero_shot_from_a_folder(tmp_path):
    save_tiny_clip(tmp_path)
    judge = load_judge(f"clip:{tmp_path}", labels=LABELS)
    assert isinstance(judge, ClipJudge)
    assert judge.input_size == 32 and judge.mean.flatten().tolist() == [0.5] * 3  # its processor
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))  # no resize
    model = CLIPModel.from_pretrained(tmp_path).eval()
    prompts = [f"a photo of a {label}" for label in LABELS]
    tokens = AutoTokenizer.from_pretrained(tmp_path)(
        prompts, padding="max_length", truncation=True, return_tensors="pt"
    )
    processor = CLIPImageProcessor.from_pretrained(tmp_path)
    mean, std = (
        torch.tensor(v).view(1, 3, 1, 1) for v in (processor.image_mean, processor.image_std)
    )
    with torch.no_grad():
        expected = model(**tokens, pixel_values=(images - mean) / std).logits_per_image
        assert expected.std(dim=1).min() > 0.1  # the labels' prompts score apart
        assert torch.allclose(judge.logits(images), expected, atol=1e-4)
        scale = model.logit_scale.exp()
        assert torch.allclose(judge.similarities(images) * scale, expected, atol=1e-4)
    assert len(load_judge(f"clip:{tmp_path}").labels) == 1000
    with pytest.raises(FissureError, match="at least one label"):
        load_judge(f"clip:{tmp_path}", labels=[])


def test_clip_prompts_a_repeated_label_by_its_name(tmp_path):
    """A hub surrogate's "crane (517)" was prompted to CLIP as "a photo of a crane (517)"."""
    save_tiny_clip(tmp_path)
    judge = load_judge(f"clip:{tmp_path}", labels=["crane", "cat", "crane (2)"])
    assert judge.labels == ["crane", "cat", "crane (2)"]
    assert torch.equal(judge.text_features[0], judge.text_features[2])
    assert not torch.equal(judge.text_features[0], judge.text_features[1])
    from fissure.attacks.verdicts import check_verifier_labels

    check_verifier_labels({"clip": judge}, ["cat"])
    with pytest.raises(FissureError, match="CLIP cannot tell them apart"):  # a tie, always lost
        check_verifier_labels({"clip": judge}, ["crane (2)"])


def test_emoji_clip_is_emoji_sds_clip_over_the_emoji_classes(tmp_path, monkeypatch):
    import fissure.judges.registry as registry
    from fissure.world import class_names

    save_tiny_clip(tmp_path / "clip")
    monkeypatch.setattr(registry, "bundled_model_path", lambda name: tmp_path)
    judge = load_judge("emoji/clip")
    assert isinstance(judge, ClipJudge) and judge.labels == list(class_names())


def test_emoji_clip_before_emoji_sd_is_trained_says_how(monkeypatch):
    import fissure.zoo

    monkeypatch.setattr(fissure.zoo, "WEIGHTS_DIR", fissure.zoo.WEIGHTS_DIR / "nowhere")
    with pytest.raises(FissureError, match="emoji/clip is emoji-sd's CLIP: train emoji-sd"):
        load_judge("emoji/clip")


def test_imagenet_labels():
    """Two classes were "crane" and two "maillot": the second of each could never be a target."""
    labels = imagenet_labels()
    assert len(labels) == 1000 == len(set(labels)) and labels[1] == "goldfish"
    assert (labels[134], labels[517], labels[639]) == (
        "crane bird",
        "construction crane",
        "tank suit",
    )


def test_a_repeated_label_is_named_by_its_column(tmp_path):
    """A hub classifier's id2label may repeat a name (ViT's ImageNet head: "crane" twice)."""
    labels = {0: "crane", 1: "cat", 2: "crane"}
    config = ResNetConfig(num_labels=3, id2label=labels, **TINY_RESNET)
    ResNetForImageClassification(config).save_pretrained(tmp_path)
    assert load_judge(str(tmp_path)).labels == ["crane", "cat", "crane (2)"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("emoji/nope", "unknown emoji judge"),
        ("", "empty judge name"),
        ("/no/such/classifier", "could not load"),
        ("resnet", "did you mean emoji/resnet"),  # went to the hub, retried for 23 s
        ("surrogate", "did you mean emoji/surrogate"),
    ],
)
def test_bad_judge_names(name, message, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FissureError, match=message):
        load_judge(name)


def test_labels_are_refused_by_a_judge_with_its_own():
    """load_judge("emoji/resnet", labels=["dog"]) used to ignore the labels without a word."""
    with pytest.raises(FissureError, match="has its own labels"):
        load_judge("emoji/resnet", labels=["dog"])


def test_a_saved_emoji_judge_folder_loads_by_its_path(tmp_path):
    """`fissure judge --judge runs/judges/verifier/final` fell through to transformers."""
    torch.manual_seed(0)
    EmojiJudge(class_names(), "convnet", {"channels": [8, 16]}).save_pretrained(tmp_path)
    judge = load_judge(str(tmp_path))
    assert isinstance(judge, EmojiJudge) and judge.source == str(tmp_path)
    assert not any(p.requires_grad for p in judge.parameters())


def test_a_clip_folder_given_as_a_classifier_is_refused(tmp_path):
    """It loaded as a 2-class classifier with a random head, and judged at random."""
    save_tiny_clip(tmp_path)
    with pytest.raises(
        FissureError, match=f"without a trained classification head.*clip:{tmp_path}"
    ):
        load_judge(str(tmp_path))
