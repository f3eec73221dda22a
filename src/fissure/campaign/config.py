"""A campaign: models × attacks × prompts (or classes) × seeds, read from a TOML file.

Every problem of a file is found before any model loads and said on a line of its own
(unknown attack, bad option, missing prompt file). The config, with a prompt file's
prompts read in, is stored with the results so the run can be reproduced from the store.

```toml
name = "sage-vs-random"
models = ["emoji-sd"]
classes = ["dog", "cat", "red apple"]   # or "all", or prompts = [...], or prompt_file = "..."
seeds = "0-4"

[[attacks]]
name = "sage-latent"
max_iterations = 50

[[attacks]]
name = "random-latent"
budget = 1500
```
"""

from __future__ import annotations

import difflib
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fissure.errors import FissureError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: The held-out judges of the emoji world: a classifier that never entered a loss, and
#: emoji-sd's CLIP zero-shot.
DEFAULT_VERIFIERS = ["emoji/verifier", "emoji/clip"]
DEFAULT_SURROGATE = ["emoji/surrogate"]


@dataclass(frozen=True)
class AttackSpec:
    """One attack of a campaign: a recipe by name, its options, and the label its findings
    carry (default: the recipe's name; two configurations of one recipe need two labels)."""

    name: str
    label: str
    options: dict = field(default_factory=dict)


@dataclass
class CampaignConfig:
    name: str
    attacks: list[AttackSpec]
    models: list[str] = field(default_factory=lambda: ["emoji-sd"])
    prompts: list[str] | None = None
    classes: list[str] | None = None  # each "all", a label, or names split by , or ;
    template: str | None = None
    target: str | None = None
    prompt_targets: dict[str, str] | None = None  # a prompt's class, where a prompt set says it
    seeds: list[int] = field(default_factory=lambda: list(range(10)))
    judges: list[str] = field(default_factory=lambda: list(DEFAULT_SURROGATE))
    verifiers: list[str] = field(default_factory=lambda: list(DEFAULT_VERIFIERS))
    device: str = "cpu"
    dtype: str = "float32"
    default_judges: bool = True  # neither judges nor verifiers given: the emoji world's

    def to_dict(self) -> dict:
        """What the store keeps: enough to run the campaign again."""
        record = asdict(self)
        record["attacks"] = [asdict(spec) for spec in self.attacks]
        return record


_KEYS = {
    "name", "model", "models", "prompts", "prompt_file", "classes", "template", "target",
    "seeds", "judges", "verifiers", "device", "dtype", "attacks",
}  # fmt: skip


def load_campaign(path: str | Path) -> CampaignConfig:
    """Read and check a campaign file; every error found is one line of the message."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FissureError(f"no campaign file {path}: write one as the README shows") from None
    except (OSError, UnicodeDecodeError) as error:
        raise FissureError(f"cannot read {path} ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise FissureError(f"{path} is not valid TOML ({error})") from None
    return campaign_from_dict(data, base=path.parent, where=str(path))


def campaign_from_dict(
    data: dict, base: Path = Path("."), where: str = "campaign"
) -> CampaignConfig:
    """A checked config from a parsed file (``base``: where relative prompt files are)."""
    from fissure.attacks.recipes import ATTACKS, check_options
    from fissure.generate import parse_seeds
    from fissure.models.loading import DTYPES, resolve_model_source

    errors: list[str] = []

    def error(message: str) -> None:
        errors.append(f"{where}: {message}")

    for key in sorted(set(data) - _KEYS):
        close = difflib.get_close_matches(key, _KEYS, n=1)
        error(f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))

    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        error('needs a name (name = "my-campaign"): results are kept under it')
        name = ""

    if "model" in data and "models" in data:
        error("give model or models, not both")
    models = data.get("models", [data["model"]] if "model" in data else ["emoji-sd"])
    if not _strings(models):
        error('models must be a list of model names or folders (e.g. ["emoji-sd"])')
        models = []
    for model in models:  # a folder that is not a pipeline: before the first model's run
        try:
            resolve_model_source(model)
        except FissureError as problem:
            error(str(problem))

    sources = [key for key in ("prompts", "prompt_file", "classes") if key in data]
    if len(sources) != 1:
        error("give exactly one of prompts, prompt_file or classes" + (
            f" (found {', '.join(sources)})" if sources else ""
        ))  # fmt: skip
    prompts = classes = None
    if "prompts" in data:
        prompts = data["prompts"]
        if not _strings(prompts) or not prompts:
            error("prompts must be a non-empty list of strings")
            prompts = None
    prompt_targets = None
    if "prompt_file" in data:
        prompts, prompt_targets = _read_prompt_file(data["prompt_file"], base, error)
    if "classes" in data:
        raw = data["classes"]
        classes = [raw] if isinstance(raw, str) else raw
        if not _strings(classes) or not [c for c in classes if c.strip(" ,;")]:
            error('classes must be "all" or a list of class names (["dog", "cat"])')
            classes = None
    template, target = data.get("template"), data.get("target")
    if template is not None and classes is None:
        error("template is for classes: prompts are attacked as written")
    if template is not None and (not isinstance(template, str) or template.count("{}") != 1):
        error(f"template needs one {{}} where the class goes, not {template!r}")
    if target is not None and prompts is None:
        error("target is for prompts: with classes each class is its own target")

    seeds: list[int] = []
    raw_seeds = data.get("seeds", "0-9")
    try:
        seeds = parse_seeds(str(raw_seeds) if not isinstance(raw_seeds, list) else
                            ",".join(str(seed) for seed in raw_seeds))  # fmt: skip
    except FissureError as problem:
        error(str(problem))

    judges = data.get("judges", DEFAULT_SURROGATE)
    verifiers = data.get("verifiers", DEFAULT_VERIFIERS)
    for key, value in (("judges", judges), ("verifiers", verifiers)):
        if not _strings(value) or not value:
            error(f"{key} must be a non-empty list of judge names")
    device, dtype = data.get("device", "cpu"), data.get("dtype", "float32")
    # the form only: a Ray cluster's nodes may have the GPUs this machine lacks
    if not isinstance(device, str) or not re.fullmatch(r"cpu|mps|cuda(:\d+)?", device):
        error(f"unknown device {device!r}: use cpu, cuda, cuda:N or mps")
    elif dtype not in DTYPES or (dtype == "float16" and device == "cpu"):
        error(
            f"dtype {dtype!r} does not run on {device}: use float32 or bfloat16 (float16 on cuda)"
        )

    specs: list[AttackSpec] = []
    attacks = data.get("attacks")
    if not isinstance(attacks, list) or not attacks:
        error('needs at least one [[attacks]] table, e.g. name = "sage-latent"')
        attacks = []
    for index, table in enumerate(attacks):
        at = f"attacks[{index}]"
        if not isinstance(table, dict) or not isinstance(table.get("name"), str):
            error(f'{at} needs a name (name = "sage-latent")')
            continue
        options = {k: v for k, v in table.items() if k not in ("name", "label")}
        recipe = table["name"]
        if recipe not in ATTACKS:
            error(f"{at}: unknown attack {recipe!r}; known: {', '.join(ATTACKS)}")
            continue
        try:
            check_options(recipe, options)
        except FissureError as problem:
            error(f"{at} ({recipe}): {problem}")
            continue
        specs.append(AttackSpec(recipe, str(table.get("label", recipe)), options))
    labels = [spec.label for spec in specs]
    for label in sorted({label for label in labels if labels.count(label) > 1}):
        error(f'two attacks are labelled {label!r}: give each a label = "..." of its own')

    if errors:
        raise FissureError("\n".join(errors))
    return CampaignConfig(
        name=name.strip(),
        attacks=specs,
        models=list(models),
        prompts=prompts,
        classes=classes,
        template=template,
        target=target,
        prompt_targets=prompt_targets,
        seeds=seeds,
        judges=list(dict.fromkeys(judges)),
        verifiers=list(dict.fromkeys(verifiers)),
        device=device,
        dtype=dtype,
        default_judges="judges" not in data and "verifiers" not in data,
    )


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _read_prompt_file(
    name: object, base: Path, error
) -> tuple[list[str] | None, dict[str, str] | None]:
    """The prompts, and each one's class where the file gives it: a CSV with ``prompt`` and
    ``classname`` (or ``class``) columns, as ATM's prompt files; otherwise one prompt per
    line, blank lines and lines starting with # skipped."""
    if not isinstance(name, str):
        error("prompt_file must be a path")
        return None, None
    path = base / Path(name).expanduser()
    if path.suffix.lower() == ".csv":
        from fissure.attacks.prompt_sets import read_prompt_file

        try:
            pairs = read_prompt_file(path, [])
        except FissureError as problem:
            error(f"prompt_file: {problem}")
            return None, None
        return [prompt for prompt, _ in pairs], dict(pairs)
    try:
        lines = path.read_text().splitlines()
    except OSError as problem:
        error(f"cannot read prompt_file {path} ({problem.strerror or problem})")
        return None, None
    prompts = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        error(f"prompt_file {path} holds no prompt")
        return None, None
    return prompts, None
