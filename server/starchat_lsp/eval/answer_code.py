"""The code to test from an answer: the fixed code for bug feedback, the written code otherwise.

It goes through the same answer readers the editor uses (`tasks.conclude`, `answers`), so a
passing test means the fix the user would have been offered works.
"""

from __future__ import annotations

from starchat_lsp.context import answers, languages


def written_code(answer: str, language: str | None) -> str | None:
    """The longest block in the language (or untagged), else the longest block; None without one.

    The same choice as `starchat-lsp ask`, narrowed to the language: a usage example in a shell
    block must not win over the function.
    """
    blocks = answers.code_blocks(answer)
    want = languages.normalize(language)
    fitting = [b for b in blocks if b.language is None or languages.normalize(b.language) == want]
    chosen = fitting or blocks
    if not chosen:
        return None
    return max(chosen, key=lambda block: len(block.code)).code
