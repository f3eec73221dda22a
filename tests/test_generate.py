"""Generation: seeds, reproducibility bit for bit, independence from batch neighbours."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image

from fissure.errors import FissureError
from fissure.generate import generate, parse_seeds
from fissure.models import load_pipeline


@pytest.mark.parametrize(
    ("text", "seeds"),
    [("7", [7]), ("0-3", [0, 1, 2, 3]), ("0-1,5,9-10", [0, 1, 5, 9, 10]), ("2,2,1", [2, 1])],
)
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(
    "text", ["", "a-b", "5-2", "-1", "1-", "0-99999999999999999999", "0-999999,1000000-1999999"]
)
def test_bad_seed_ranges(text):
    with pytest.raises(FissureError):
        parse_seeds(text)


@pytest.fixture(scope="module")
def pipeline(tiny_sd1_dir):
    return load_pipeline(str(tiny_sd1_dir))


def _pixels(folder, record) -> np.ndarray:
    return np.asarray(Image.open(folder / record.file))


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_writes_images_sheet_and_records(pipeline, tmp_path):
    records = generate(pipeline, ["a dog", "a cat"], [0, 1], tmp_path, steps=2, progress=False)
    assert [(r.prompt, r.seed) for r in records] == [
        ("a dog", 0),
        ("a dog", 1),
        ("a cat", 0),
        ("a cat", 1),
    ]
    lines = [json.loads(line) for line in (tmp_path / "generations.jsonl").read_text().splitlines()]
    assert len(lines) == 4
    assert {
        "prompt",
        "seed",
        "steps",
        "guidance",
        "height",
        "width",
        "batch_size",
        "model",
        "scheduler",
    } <= set(lines[0])
    assert Image.open(tmp_path / "contact_sheet.png").size[0] > 64
    assert Image.open(tmp_path / records[0].file).size == (64, 64)


def test_sheet_captions_keep_the_seed_of_a_long_prompt(pipeline, tmp_path):
    """Captions were cut after three lines: every seed of a long prompt read the same."""
    prompt = "a photo of a golden retriever playing in the snow at night"
    generate(pipeline, [prompt], [0, 1], tmp_path, steps=1, progress=False)
    sheet = np.asarray(Image.open(tmp_path / "contact_sheet.png"))
    cell, pad = 128, 4  # the sheet's tiles: two columns, the caption under each image
    captions = [
        sheet[pad + cell :, pad + i * (cell + pad) : pad + i * (cell + pad) + cell] for i in (0, 1)
    ]
    assert not np.array_equal(*captions)


@pytest.mark.parametrize(
    ("prompts", "seeds", "message"),
    [
        (["a dog"], [0, -1], "seeds must be"),
        (["a dog"], ["0"], "seeds must be"),
        ([""], [0], "empty"),
        ([f"a dog {i}" for i in range(1001)], range(1000), "over 1,000,000 images"),
    ],
)
def test_bad_seeds_and_prompts_are_refused_before_any_image(
    pipeline, tmp_path, prompts, seeds, message
):
    """[0, -1] wrote an image named …-seed-1.png."""
    with pytest.raises(FissureError, match=message):
        generate(pipeline, prompts, seeds, tmp_path / "out", steps=1, progress=False)
    assert not (tmp_path / "out").exists()


def test_one_prompt_and_one_seed_need_no_lists(pipeline, tmp_path):
    """A string prompt was split into its characters; an int seed raised a TypeError."""
    (record,) = generate(pipeline, "a dog", 3, tmp_path, steps=1, progress=False)
    assert (record.prompt, record.seed) == ("a dog", 3)
    assert record.threads == torch.get_num_threads()


def test_a_record_cut_short_by_a_kill_is_dropped_not_refused(pipeline, tmp_path):
    generate(pipeline, ["a dog"], [0], tmp_path, steps=1, progress=False)
    records = tmp_path / "generations.jsonl"
    records.write_text(
        records.read_text() + '{"file": "a-dog-seed1.png", "pro'
    )  # killed mid-append
    generate(pipeline, ["a dog"], [1], tmp_path, steps=1, progress=False)
    pngs = {path.name for path in tmp_path.glob("*seed*.png")}
    assert set(_recorded(tmp_path)) == pngs and len(pngs) == 2
    assert all(line.endswith("}") for line in records.read_text().splitlines())


def test_records_name_the_model_the_pipeline_was_loaded_from(pipeline, tiny_sd1_dir, tmp_path):
    (record,) = generate(pipeline, ["a dog"], [0], tmp_path, steps=2, progress=False)
    assert record.model == str(tiny_sd1_dir)  # the Python API gives no model_name


def test_a_second_run_into_the_folder_keeps_every_image_recorded(pipeline, tmp_path):
    generate(pipeline, ["a dog"], [0, 1], tmp_path, steps=2, progress=False)
    generate(pipeline, ["a dog"], [1, 2], tmp_path, steps=3, progress=False)
    lines = [json.loads(line) for line in (tmp_path / "generations.jsonl").read_text().splitlines()]
    pngs = {path.name for path in tmp_path.glob("*.png")} - {"contact_sheet.png"}
    assert sorted(line["file"] for line in lines) == sorted(pngs) and len(pngs) == 3
    assert {line["seed"]: line["steps"] for line in lines} == {0: 2, 1: 3, 2: 3}


def _recorded(folder) -> dict[str, dict]:
    lines = (folder / "generations.jsonl").read_text().splitlines()
    return {record["file"]: record for record in map(json.loads, lines)}


@pytest.mark.parametrize(
    "prompts",
    [
        ["a dog", "A dog!"],
        [
            "a photo of a very large red dog sitting on grass",
            "a photo of a very large red dog sitting on snow",
        ],
    ],
)
def test_a_later_run_with_a_prompt_of_the_same_slug_overwrites_nothing(pipeline, tmp_path, prompts):
    first = generate(pipeline, prompts[:1], [0], tmp_path, steps=2, progress=False)[0]
    second = generate(pipeline, prompts[1:], [0], tmp_path, steps=2, progress=False)[0]
    assert first.file != second.file
    readable = prompts[0][:5].lower().replace(" ", "-")  # the names still start with the prompt
    assert first.file.startswith(readable) and second.file.startswith(readable)
    recorded = _recorded(tmp_path)
    assert {record["prompt"] for record in recorded.values()} == set(prompts)
    for record in (first, second):
        assert recorded[record.file]["sha256"] == _sha256(tmp_path / record.file)


def test_a_corrupt_records_file_is_refused_before_any_image_is_made(pipeline, tmp_path):
    (tmp_path / "generations.jsonl").write_text('{"file": "x.png"}\n\n{"file": \n')
    with pytest.raises(FissureError, match=r"generations.jsonl line 3 is not JSON"):
        generate(pipeline, ["a dog"], [0], tmp_path, steps=2, progress=False)
    assert not list(tmp_path.glob("*.png"))


def test_blank_lines_in_the_records_file_are_skipped(pipeline, tmp_path):
    (tmp_path / "generations.jsonl").write_text('\n{"file": "earlier.png"}\n  \n')
    made = generate(pipeline, ["a dog"], [0], tmp_path, steps=2, progress=False)
    assert set(_recorded(tmp_path)) == {"earlier.png", made[0].file}


def test_an_interrupted_run_leaves_its_images_recorded(pipeline, tmp_path, monkeypatch):
    calls = []
    make = StableDiffusionPipeline.__call__

    def interrupted_at_the_second_batch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the second batch is computed
        return make(self, *args, **kwargs)

    monkeypatch.setattr(StableDiffusionPipeline, "__call__", interrupted_at_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        generate(pipeline, ["a dog"], [0, 1], tmp_path, steps=2, batch_size=1, progress=False)
    pngs = {path.name for path in tmp_path.iterdir()}
    recorded = _recorded(tmp_path)
    assert len(recorded) == 1 and pngs == set(recorded) | {"generations.jsonl"}


def test_an_interrupted_rerun_keeps_the_records_of_images_it_did_not_reach(
    pipeline, tmp_path, monkeypatch
):
    """The rerun dropped every record it meant to replace before making any image."""
    generate(pipeline, ["a dog"], [0, 1, 2], tmp_path, steps=1, progress=False)
    make = StableDiffusionPipeline.__call__
    calls = []

    def interrupted_at_the_second_batch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return make(self, *args, **kwargs)

    monkeypatch.setattr(StableDiffusionPipeline, "__call__", interrupted_at_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        generate(pipeline, ["a dog"], [0, 1, 2], tmp_path, steps=2, batch_size=1, progress=False)
    monkeypatch.undo()
    latest = _recorded(tmp_path)  # the last record of a file wins
    assert {record["seed"]: record["steps"] for record in latest.values()} == {0: 2, 1: 1, 2: 1}
    generate(pipeline, ["a cat"], [0], tmp_path, steps=1, progress=False)
    lines = (tmp_path / "generations.jsonl").read_text().splitlines()
    assert len(lines) == 4  # compacted: one record per file


def test_an_image_does_not_depend_on_what_else_was_asked(pipeline, tmp_path, one_thread):
    together = generate(
        pipeline,
        ["a dog", "a cat"],
        [0, 1, 2],
        tmp_path / "a",
        steps=2,
        batch_size=4,
        progress=False,
    )
    alone = generate(
        pipeline, ["a cat"], [2], tmp_path / "b", steps=2, batch_size=4, progress=False
    )
    assert alone[0].sha256 == together[-1].sha256
    assert (_pixels(tmp_path / "b", alone[0]) == _pixels(tmp_path / "a", together[-1])).all()


def test_different_seeds_give_different_images(pipeline, tmp_path):
    records = generate(pipeline, ["a dog"], [0, 1], tmp_path, steps=2, progress=False)
    assert records[0].sha256 != records[1].sha256


def test_guidance_changes_the_image(pipeline, tmp_path):
    images = {}
    for guidance in (1.0, 7.5):
        folder = tmp_path / str(guidance)
        (record,) = generate(
            pipeline, ["a dog"], [0], folder, steps=2, guidance=guidance, progress=False
        )
        assert record.guidance == guidance
        images[guidance] = _pixels(folder, record).astype(int)
    assert np.abs(images[1.0] - images[7.5]).max() > 1  # more than batch sizes' rounding


def test_batch_sizes_agree_to_one_grey_level(pipeline, tmp_path):
    small = generate(
        pipeline, ["a dog"], [0, 1, 2], tmp_path / "s", steps=2, batch_size=1, progress=False
    )
    large = generate(
        pipeline, ["a dog"], [0, 1, 2], tmp_path / "l", steps=2, batch_size=3, progress=False
    )
    for a, b in zip(small, large, strict=True):
        difference = np.abs(
            _pixels(tmp_path / "s", a).astype(int) - _pixels(tmp_path / "l", b).astype(int)
        )
        assert difference.max() <= 1


def test_bad_settings_are_refused_before_any_work(pipeline, tmp_path):
    for steps in (0, 1001):
        with pytest.raises(FissureError, match="--steps must be between 1 and"):
            generate(pipeline, ["a dog"], [0], tmp_path, steps=steps)
    with pytest.raises(FissureError, match="--steps 1000 makes timestep 1000"):
        generate(pipeline, ["a dog"], [0], tmp_path, steps=1000)
    with pytest.raises(FissureError, match="no prompt"):
        generate(pipeline, [], [0], tmp_path)
    with pytest.raises(FissureError, match="multiples"):
        generate(pipeline, ["a dog"], [0], tmp_path, height=60)
    assert list(tmp_path.iterdir()) == []
