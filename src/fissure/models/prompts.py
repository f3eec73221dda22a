"""Checks on prompts before they reach a text encoder."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from fissure.errors import FissureError


def prompt_token_count(tokenizer: PreTrainedTokenizerBase, prompt: str) -> int:
    """Number of tokens the prompt takes, not counting start and end tokens."""
    return len(tokenizer(prompt, truncation=False).input_ids) - 2


def check_prompt_length(
    tokenizer: PreTrainedTokenizerBase, prompt: str, reserved: int = 0, what: str = "prompt"
) -> int:
    """The prompt's token count, or a one-line error if it would be truncated (the pipeline
    cuts a long prompt without a word); ``reserved``: tokens to be inserted into it;
    ``what`` names it in the error ("negative prompt")."""
    limit = tokenizer.model_max_length - 2 - reserved
    count = prompt_token_count(tokenizer, prompt)
    if count > limit:
        beside = f" beside {reserved} inserted tokens" if reserved else ""
        raise FissureError(
            f"{what} is {count} tokens long but this model reads at most {limit}{beside}: "
            f"shorten it ({prompt[:40]!r}...)"
        )
    return count


def check_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str) -> None:
    """Refuse prompts a pipeline would silently mangle: empty, or truncated for length."""
    if not prompt or not prompt.strip():
        raise FissureError("empty prompt: give the words the image should show")
    check_prompt_length(tokenizer, prompt)
