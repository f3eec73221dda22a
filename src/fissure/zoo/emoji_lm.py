"""emoji-lm: a small GPT-2 trained on the emoji world's captions, for prompt attacks.

Prompt attacks need a language model to propose words, score fluency and give the
hidden states of a BERTScore-style similarity. Real checkpoints take any causal LM;
the bundled one reads emoji-sd's own tokenizer, so every word it proposes is a
token the bundled text encoder knows. It is a stock ``GPT2LMHeadModel`` with a
``CLIPTokenizer``: ``AutoModelForCausalLM`` and ``AutoTokenizer`` load it without
fissure.

Training batches are captions of world seeds drawn by (seed, step), plus the class
prompts the attacks start from; the held-out perplexity is measured on captions of
world seeds no batch can draw (:data:`HELD_OUT_SEEDS`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import CLIPTokenizer, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerBase

from fissure.atomic import atomic_folder, atomic_write, write_json
from fissure.errors import FissureError
from fissure.models.language import LanguageModel
from fissure.world import classes, sample_scene
from fissure.zoo.emoji_sd.common import machine_description
from fissure.zoo.training_loop import Schedule, step_generator, train

TRAINING_SEEDS = 2**31
"""Training captions come from world seeds below this."""
HELD_OUT_SEEDS = 3_000_000_000
"""The first world seed of the held-out captions (no training batch reaches it)."""
EVALUATION_NAME = "evaluation.json"


@dataclass(frozen=True)
class EmojiLmConfig:
    """The recipe: GPT-2's shape, the batches, the schedule."""

    name: str = "emoji-lm"
    n_embd: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_positions: int = 77
    """CLIP's prompt length: every prompt emoji-sd reads, the LM reads too."""
    batch_size: int = 64
    class_prompt_share: float = 0.0
    """Of each batch, "a photo of a <term>" prompts, the texts prompt attacks extend. None:
    at 12.5% the model learnt them by heart (perplexity 3.3 against 7.4 for captions), so
    any word added to one doubled its perplexity ("a photo of a large bat": 3.2 → 5.9)
    and a fluency limit measured distance from the template, not readability. Trained
    on captions only (which say "a photo of a ..." among their templates) it reads them
    as captions (5.4), and the same word costs 1.1×."""
    steps: int = 4000
    learning_rate: float = 2e-3
    weight_decay: float = 0.01
    seed: int = 0
    held_out: int = 2000

    def tiny(self) -> EmojiLmConfig:
        """Toy sizes for tests: seconds, not minutes."""
        return EmojiLmConfig(
            n_embd=16, n_layer=1, n_head=2, batch_size=8, steps=30, held_out=40, seed=self.seed
        )


def class_prompts() -> list[str]:
    """The prompts SAGE's prompt attack starts from, for every term of every class."""
    return [f"a photo of a {term}" for emoji_class in classes() for term in emoji_class.terms]


def batch_texts(config: EmojiLmConfig, step: int) -> list[str]:
    """The texts of one training step: a pure function of (seed, step)."""
    generator = step_generator(config.seed, step)
    prompts = class_prompts()
    count = round(config.batch_size * config.class_prompt_share)
    picked = torch.randint(len(prompts), (count,), generator=generator).tolist()
    seeds = torch.randint(TRAINING_SEEDS, (config.batch_size - count,), generator=generator)
    return [prompts[i] for i in picked] + [sample_scene(int(s)).caption for s in seeds]


def held_out_captions(count: int) -> list[str]:
    return [sample_scene(HELD_OUT_SEEDS + i).caption for i in range(count)]


def encode_batch(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int
) -> dict[str, torch.Tensor]:
    """The model's inputs for ``texts`` (start, words, end), with labels that leave the
    padding out of the loss."""
    batch = tokenizer(
        texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    return dict(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=labels)


def new_model(config: EmojiLmConfig, tokenizer: PreTrainedTokenizerBase) -> GPT2LMHeadModel:
    with torch.random.fork_rng():  # seeded, without reseeding the caller's generator
        torch.manual_seed(config.seed)
        return _gpt2(config, tokenizer)


def _gpt2(config: EmojiLmConfig, tokenizer: PreTrainedTokenizerBase) -> GPT2LMHeadModel:
    return GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=config.n_positions,
            n_embd=config.n_embd,
            n_layer=config.n_layer,
            n_head=config.n_head,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=True,
            # no dropout: every batch is new captions, and a resumed run must equal an
            # unbroken one (dropout draws from the global generator, which no checkpoint keeps)
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            loss_type="ForCausalLM",
        )
    )


def train_emoji_lm(
    out: Path,
    tokenizer_folder: Path,
    config: EmojiLmConfig = EmojiLmConfig(),
    device: str | torch.device = "cpu",
    install: Path | None = None,
    checkpoint_seconds: float = 120.0,
    deadline: float | None = None,
    progress: bool = True,
    command: str = "fissure zoo train emoji-lm",
) -> Path | None:
    """Train (or resume) in ``out``; the finished model goes to ``out/emoji-lm`` with its
    model card, and to ``install`` too. Returns None when ``deadline`` paused it."""
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_folder)
    model = new_model(config, tokenizer).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    out.mkdir(parents=True, exist_ok=True)
    recorded = out / "config.json"
    if recorded.is_file() and _without_steps(json.loads(recorded.read_text())) != _without_steps(
        asdict(config)
    ):
        raise FissureError(
            f"{out} holds a run of another emoji-lm recipe: give another --out, or remove it"
        )
    write_json(recorded, asdict(config))

    def step_loss(step: int) -> torch.Tensor:
        inputs = encode_batch(tokenizer, batch_texts(config, step), config.n_positions)
        return model(**{name: tensor.to(device) for name, tensor in inputs.items()}).loss

    step, seconds = train(
        {"model": model},
        optimizer,
        step_loss,
        Schedule(config.learning_rate, config.steps),
        out / "checkpoints",
        config.name,
        progress=progress,
        checkpoint_seconds=checkpoint_seconds,
        max_grad_norm=1.0,
        log_every=50,
        deadline=deadline,
    )
    if step < config.steps:
        return None
    folder = out / config.name
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    evaluation = dict(
        **measure(LanguageModel(model, tokenizer, str(folder)), config.held_out),
        parameters=sum(p.numel() for p in model.parameters()),
        size_bytes=(folder / "model.safetensors").stat().st_size,
        steps=step,
        training_seconds=round(seconds, 1),
        machine=machine_description(),
        command=command,
    )
    write_json(folder / EVALUATION_NAME, evaluation)
    with atomic_write(folder / "README.md") as partial:
        partial.write_text(model_card(config, evaluation), encoding="utf-8")
    if install is not None:
        with atomic_folder(install) as staging:
            shutil.copytree(folder, staging, dirs_exist_ok=True)
    return folder


def _without_steps(config: dict) -> dict:
    """A recipe less its length and its evaluation: a run may go on to more steps."""
    return {key: value for key, value in config.items() if key not in ("steps", "held_out")}


def measure(language_model: LanguageModel, held_out: int) -> dict[str, float]:
    """Perplexity on held-out captions and on the class prompts (which training saw)."""
    return dict(
        held_out_captions=held_out,
        held_out_perplexity=round(language_model.perplexity(held_out_captions(held_out)), 3),
        class_prompt_perplexity=round(language_model.perplexity(class_prompts()), 3),
    )


def model_card(config: EmojiLmConfig, evaluation: dict) -> str:
    """The README beside the weights: how to load them, how they were made, how good."""
    shape = f"{config.n_layer} layers, width {config.n_embd}, {config.n_head} heads"
    texts = f"captions of world seeds below {TRAINING_SEEDS:,}"
    if config.class_prompt_share:
        texts = (
            f'a share of {config.class_prompt_share:.1%} are the class prompts "a photo of a '
            f'<term>", the rest {texts}'
        )
    return "\n".join(
        [
            f"# {config.name}",
            "",
            "A small GPT-2 trained by fissure (`fissure zoo train emoji-lm`) on the emoji",
            "world's captions, with emoji-sd's CLIP tokenizer, so every word it proposes is",
            "a token of emoji-sd's text encoder. fissure's prompt attacks use it to propose",
            "words, score fluency (perplexity) and compare prompts (BERTScore-style).",
            "Load it without fissure:",
            "",
            "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            "tokenizer = AutoTokenizer.from_pretrained(folder)",
            "model = AutoModelForCausalLM.from_pretrained(folder)",
            "```",
            "",
            "## Recipe",
            "",
            f"- GPT2LMHeadModel, {shape}, {evaluation['parameters']:,} parameters "
            f"({evaluation['size_bytes'] / 1e6:.1f} MB in float32), tied input and output "
            "embeddings.",
            f"- {evaluation['steps']:,} AdamW steps of {config.batch_size} texts ({texts}), peak rate "
            f"{config.learning_rate:g}, warm-up then cosine decay, gradients clipped at 1.",
            f"- {evaluation['training_seconds'] / 60:.1f} min on {evaluation['machine']}.",
            f"- Reproduce: `{evaluation['command']}`.",
            "",
            "## Quality",
            "",
            "| measure | texts | perplexity |",
            "|---|---|---|",
            f"| held-out captions (world seeds from {HELD_OUT_SEEDS:,}) | "
            f"{evaluation['held_out_captions']:,} | {evaluation['held_out_perplexity']:.2f} |",
            f'| class prompts "a photo of a <term>" | {len(class_prompts()):,} | '
            f"{evaluation['class_prompt_perplexity']:.2f} |",
            "",
            "Perplexity per predicted token (the words and the end of the text). About a",
            "fifth of the captions carry random common words, which no model can predict:",
            "they bound how low the held-out figure can go.",
            "",
        ]
    )
