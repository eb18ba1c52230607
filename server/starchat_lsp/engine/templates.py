"""How chat messages and completion prompts become model input for a given tokenizer."""

from __future__ import annotations

from typing import Any

from starchat_lsp.engine.base import ChatMessage, CompletionPrompt

# The StarChat dialogue format; used for tokenizers that bring no chat template of their own.
STARCHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

# Tokens that end an assistant turn in the common chat formats (StarChat, ChatML, Llama 3, Gemma).
END_OF_TURN_TOKENS = ("<|end|>", "<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|endoftext|>")

# Fill-in-the-middle token sets: StarCoder / SantaCoder, Qwen2.5-Coder and DeepSeek-Coder style.
FIM_TOKEN_SETS = (
    ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
    ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
)


def _vocab_id(tokenizer: Any, token: str) -> int | None:
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or token_id == tokenizer.unk_token_id:
        return None
    return int(token_id)


def uses_starchat_template(tokenizer: Any) -> bool:
    return not getattr(tokenizer, "chat_template", None)


def render_chat(tokenizer: Any, messages: list[ChatMessage]) -> str:
    """The prompt text for `messages`, ending where the assistant's answer starts."""
    as_dicts = [{"role": m.role, "content": m.content} for m in messages]
    template = STARCHAT_TEMPLATE if uses_starchat_template(tokenizer) else None
    try:
        text = tokenizer.apply_chat_template(
            as_dicts, chat_template=template, tokenize=False, add_generation_prompt=True
        )
    except Exception as error:  # jinja raises TemplateError for roles a template refuses
        if not any(m.role == "system" for m in messages) or "system" not in str(error).lower():
            raise
        # Some templates (Gemma, Mistral) refuse a system turn: fold it into the first user turn.
        text = tokenizer.apply_chat_template(
            _fold_system(as_dicts),
            chat_template=template,
            tokenize=False,
            add_generation_prompt=True,
        )
    return str(text)


def _fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if rest and rest[0]["role"] == "user":
        rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
    else:
        rest.insert(0, {"role": "user", "content": system})
    return rest


def render_completion(tokenizer: Any, prompt: CompletionPrompt) -> str:
    """Fill-in-the-middle when there is a suffix and the model knows FIM tokens, else the prefix."""
    if prompt.suffix is not None:
        tokens = fim_tokens(tokenizer)
        if tokens is not None:
            return fill_in_middle(tokens, prompt)
    return prompt.prefix + prompt.middle


def fill_in_middle(tokens: tuple[str, str, str], prompt: CompletionPrompt) -> str:
    """Prefix, suffix, then the middle so far (prefix-suffix-middle order)."""
    prefix_token, suffix_token, middle_token = tokens
    return (
        f"{prefix_token}{prompt.prefix}{suffix_token}{prompt.suffix or ''}"
        f"{middle_token}{prompt.middle}"
    )


def fim_tokens(tokenizer: Any) -> tuple[str, str, str] | None:
    for token_set in FIM_TOKEN_SETS:
        if all(_vocab_id(tokenizer, token) is not None for token in token_set):
            return token_set
    return None


def end_token_ids(tokenizer: Any, generation_eos: int | list[int] | None) -> list[int]:
    """Every token id that ends an answer: the model's eos ids and the chat format's end tokens."""
    ids: list[int] = []
    if isinstance(generation_eos, int):
        ids.append(generation_eos)
    elif generation_eos:
        ids.extend(int(i) for i in generation_eos)
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    for token in END_OF_TURN_TOKENS:
        token_id = _vocab_id(tokenizer, token)
        if token_id is not None:
            ids.append(token_id)
    return sorted(set(ids))


def end_strings(tokenizer: Any) -> tuple[str, ...]:
    """End-of-turn markers that the tokenizer does not know as one token: stop on them as text."""
    if uses_starchat_template(tokenizer) and _vocab_id(tokenizer, "<|end|>") is None:
        return ("<|end|>", "<|user|>")
    return ()
