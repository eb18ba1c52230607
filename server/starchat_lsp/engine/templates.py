"""How chat messages and completion prompts become model input for a given tokenizer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from starchat_lsp.engine.base import ChatMessage, CompletionPrompt, OtherFiles

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
_Tokens = TypeVar("_Tokens", bound=tuple[str, ...])
# Repo-level tokens (repository name, file separator): Qwen2.5-Coder, StarCoder2.
REPO_TOKEN_SETS = (("<|repo_name|>", "<|file_sep|>"), ("<repo_name>", "<file_sep>"))


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
    repo = repo_tokens(tokenizer) if prompt.other_files else None
    if prompt.suffix is not None:
        tokens = fim_tokens(tokenizer)
        if tokens is not None:
            return fill_in_middle(tokens, prompt, repo)
    return plain_completion(prompt, repo)


def plain_completion(prompt: CompletionPrompt, repo: tuple[str, str] | None = None) -> str:
    """The prompt without fill-in-the-middle: the other files, the prefix and the middle."""
    ahead, inside = other_files(prompt.other_files, repo)
    return f"{ahead}{inside}{prompt.prefix}{prompt.middle}"


def fill_in_middle(
    tokens: tuple[str, str, str], prompt: CompletionPrompt, repo: tuple[str, str] | None = None
) -> str:
    """Prefix, suffix, then the middle so far (prefix-suffix-middle order), or with
    `suffix_first` the suffix, the prefix, then the middle (llama-cpp-python's `spm_infill`
    layout); the other files first, in the repo-level format when `repo` has its tokens, else
    at the prefix's start."""
    prefix_token, suffix_token, middle_token = tokens
    ahead, inside = other_files(prompt.other_files, repo)
    if prompt.suffix_first:
        return (
            f"{ahead}{suffix_token}{prompt.suffix or ''}{prefix_token}{inside}{prompt.prefix}"
            f"{middle_token}{prompt.middle}"
        )
    return (
        f"{ahead}{prefix_token}{inside}{prompt.prefix}{suffix_token}{prompt.suffix or ''}"
        f"{middle_token}{prompt.middle}"
    )


def other_files(files: OtherFiles | None, repo: tuple[str, str] | None) -> tuple[str, str]:
    """The other files' text (before the FIM prefix token, after it): one of the two is empty.

    With repo-level tokens, llama.cpp server's infill layout: `<|repo_name|>name`, then
    `<|file_sep|>path` and the text for each file, then `<|file_sep|>path` of the document.
    """
    if files is None or not files.files:
        return "", ""
    if repo is not None:
        repo_token, separator = repo
        chunks = "".join(f"{separator}{path}\n{text}\n" for path, text in files.files)
        return f"{repo_token}{files.repo}\n{chunks}{separator}{files.path}\n", ""
    heading = f"{files.comment} from " if files.comment else ""
    return "", "".join(f"{heading}{path}:\n{text}\n\n" for path, text in files.files)


def first_known(sets: tuple[_Tokens, ...], known: Callable[[str], bool]) -> _Tokens | None:
    """The first of the token sets whose every token the vocabulary has."""
    return next((tokens for tokens in sets if all(known(t) for t in tokens)), None)


def repo_tokens(tokenizer: Any) -> tuple[str, str] | None:
    return first_known(REPO_TOKEN_SETS, lambda token: _vocab_id(tokenizer, token) is not None)


def fim_tokens(tokenizer: Any) -> tuple[str, str, str] | None:
    return first_known(FIM_TOKEN_SETS, lambda token: _vocab_id(tokenizer, token) is not None)


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
