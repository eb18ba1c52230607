from starchat_lsp.context import prompts
from starchat_lsp.context.prompts import CodeContext
from starchat_lsp.engine import templates
from starchat_lsp.engine.base import ChatMessage, CompletionPrompt
from starchat_lsp.engine.worker import protocol

INSIDE = CodeContext(
    code="    total = price * count\n    return total",
    language="python",
    path="shop/cart.py",
    start_line=11,
    end_line=12,
    enclosing='def cost(price, count):\n    """Cost of a line."""\n'
    "    total = price * count\n    return total",
    enclosing_start_line=9,
    imports=("import math",),
)


def user_text(messages: list[ChatMessage]) -> str:
    assert messages[-1].role == "user"
    return messages[-1].content


def test_feedback_prompt_speaks_as_the_user_and_numbers_document_lines() -> None:
    messages = prompts.build_feedback_prompt(INSIDE, user_note="It returns None for 0 items.")
    assert messages[0] == ChatMessage("system", prompts.DEFAULT_SYSTEM_PROMPT)
    text = user_text(messages)
    assert text.startswith("I wrote this Python code and it has a bug. What's wrong with it?")
    assert "It returns None for 0 items." in text
    assert "lines 12-13 of shop/cart.py" in text
    assert "```python\n12 |     total = price * count\n13 |     return total\n```" in text
    assert "one ```python block, without line numbers" in text


def test_feedback_prompt_shows_context_above_and_never_repeats_the_selection() -> None:
    text = user_text(prompts.build_feedback_prompt(INSIDE))
    assert text.count("total = price * count") == 1
    assert text.index("import math") < text.index("def cost(price, count):") < text.index("12 |")
    assert "    # ... lines 12-13: my code below ..." in text
    assert '"""Cost of a line."""' in text


def test_prompts_without_context_have_no_context_section() -> None:
    bare = CodeContext(code="x = 1", language="python")
    for messages in (
        prompts.build_feedback_prompt(bare),
        prompts.build_fix_prompt(bare),
        prompts.build_explain_prompt(bare),
    ):
        assert "surrounding code" not in user_text(messages)
        assert "My code, line 1" in user_text(messages)


def test_notes_reach_the_model() -> None:
    ctx = CodeContext(code="x = 1", language="python", notes=("the selection was cut",))
    for build in (prompts.build_feedback_prompt, prompts.build_fix_prompt):
        assert "Note: the selection was cut." in user_text(build(ctx))
    assert "Note: the selection was cut." in user_text(prompts.build_explain_prompt(ctx))
    instruction = prompts.build_instruction_prompt("Add a test.", ctx=ctx)
    assert "Note: the selection was cut." in user_text(instruction)


def test_fix_prompt_asks_for_the_code_only_and_begins_as_the_feedback_prompt() -> None:
    note = "F821 undefined name 'count'"
    hints = ("line 12: undefined name 'count' (F821)",)
    fix = user_text(
        prompts.build_fix_prompt(INSIDE, note, checks=("assert f(1) == 2",), hints=hints)
    )
    feedback = user_text(prompts.build_feedback_prompt(INSIDE, note, hints=hints))
    # The same report (note, numbered code, hints): the samples share the draft's KV cache.
    shared = feedback[: feedback.index("Tell me what is wrong")]
    assert fix.startswith(shared) and "12 |" in shared and note in shared
    assert "must pass these checks:\n```python\nassert f(1) == 2\n```" in fix
    assert "only the whole corrected code in one ```python block, without line numbers" in fix
    assert "same function names and parameters" in fix


def test_explain_prompt_asks_for_markdown() -> None:
    text = user_text(prompts.build_explain_prompt(INSIDE))
    assert text.startswith("Explain what my Python code does.")
    assert "Markdown" in text


def test_instruction_prompt_with_and_without_code() -> None:
    alone = user_text(prompts.build_instruction_prompt("Write is_even(n).", language="go"))
    assert alone == "Write is_even(n).\n\nReply with the Go code in one ```go block."
    with_code = user_text(prompts.build_instruction_prompt("Add a docstring.", ctx=INSIDE))
    assert with_code.startswith("Add a docstring.")
    assert "My code, lines 12-13 of shop/cart.py:" in with_code
    assert with_code.endswith("Reply with the Python code in one ```python block.")


def test_system_prompt_can_be_replaced_or_left_out() -> None:
    ctx = CodeContext(code="x")
    assert prompts.build_explain_prompt(ctx, system_prompt="Be terse.")[0].content == "Be terse."
    assert [m.role for m in prompts.build_explain_prompt(ctx, system_prompt="")] == ["user"]


def test_unknown_language_says_code_and_leaves_the_fence_untagged() -> None:
    text = user_text(prompts.build_feedback_prompt(CodeContext(code="x")))
    assert text.startswith("I wrote this code and it has a bug.")
    assert "```\n1 | x\n```" in text


def test_code_holding_a_fence_gets_a_longer_fence() -> None:
    ctx = CodeContext(code='doc = """\n```\nexample\n```\n"""', language="python")
    assert "````python\n" in user_text(prompts.build_fix_prompt(ctx))


def test_number_lines_aligns_numbers_and_leaves_no_trailing_space() -> None:
    assert prompts.number_lines("a\n\nb", 7) == " 8 | a\n 9 |\n10 | b"


def test_completion_prompt_heads_the_prefix_with_the_path() -> None:
    assert prompts.build_completion_prompt("def f(", None, "python", "src/a.py") == (
        CompletionPrompt(prefix="# src/a.py\ndef f(")
    )
    assert prompts.build_completion_prompt("int", None, "c", "a.c").prefix == "// a.c\nint"
    assert prompts.build_completion_prompt("SEL", None, "sql", "q.sql").prefix == "-- q.sql\nSEL"
    assert prompts.build_completion_prompt("x", None, None, "README").prefix == "x"
    assert prompts.build_completion_prompt("x", "y", "python") == CompletionPrompt(
        prefix="x", suffix="y"
    )


def test_fill_in_the_middle_can_put_the_cursor_line_start_after_the_middle_token() -> None:
    psm = prompts.build_completion_prompt("a = 1\n    b = ", "\nc = 3\n", "python", "s.py")
    assert psm == CompletionPrompt(prefix="# s.py\na = 1\n    b = ", suffix="\nc = 3\n")
    prompt = prompts.build_completion_prompt(
        "a = 1\n    b = ", "\nc = 3\n", "python", "s.py", line_in_middle=True
    )
    assert prompt == CompletionPrompt(
        prefix="# s.py\na = 1\n", suffix="\nc = 3\n", middle="    b = "
    )
    qwen = ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")
    assert templates.fill_in_middle(qwen, prompt) == (
        "<|fim_prefix|># s.py\na = 1\n<|fim_suffix|>\nc = 3\n<|fim_middle|>    b = "
    )


def test_fill_in_the_middle_can_put_the_suffix_first() -> None:
    spm = prompts.build_completion_prompt(
        "a = 1\nb = ", "\nc = 3\n", "python", "s.py", suffix_first=True
    )
    assert spm == CompletionPrompt(
        prefix="# s.py\na = 1\nb = ", suffix="\nc = 3\n", suffix_first=True
    )
    qwen = ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")
    assert templates.fill_in_middle(qwen, spm) == (
        "<|fim_suffix|>\nc = 3\n<|fim_prefix|># s.py\na = 1\nb = <|fim_middle|>"
    )
    # the model process gets it as it was asked (the shared host renders it)
    assert protocol.prompt_from_wire(protocol.prompt_to_wire(spm)) == spm
