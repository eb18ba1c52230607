"""Our Python bug-feedback prompts, each with one failing example in the user's words.

For each prompt: the first `assert CALL == EXPECTED` of its tests that the buggy code fails
becomes "For example, CALL gives ACTUAL instead of EXPECTED." (or "CALL raises ERROR.") at the
end of the user's message, the way a user reports a bug they have seen. The buggy code is ours
(the prompt set's), run in a child process to see what it gives. The tests are unchanged, so a
fix must still pass all of them, not only the example.

Usage: python docs/eval/with-examples/make_prompts.py > docs/eval/with-examples/prompts.jsonl
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys

from starchat_lsp.eval.prompt_sets import load_prompts, shipped_prompts_path
from starchat_lsp.verify.evidence import valid_check

PROBE = """
import sys
namespace = {}
exec(compile(sys.argv[1], "buggy.py", "exec"), namespace)
try:
    print(repr(eval(sys.argv[2], namespace)))
except BaseException as error:
    print("RAISES " + type(error).__name__)
"""


def observed(code: str, call: str) -> str:
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-c", PROBE, code, call],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "HANGS"
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "RAISES an error"


def example(code: str, tests: str, entry_point: str) -> str | None:
    """The first self-contained assert (literals and the function only) the buggy code fails."""
    for statement in ast.parse(tests).body:
        if not valid_check(ast.unparse(statement), [entry_point]):
            continue
        test = statement.test if isinstance(statement, ast.Assert) else None
        if not (isinstance(test, ast.Compare) and isinstance(test.ops[0], ast.Eq | ast.Is)):
            continue
        if not isinstance(test.left, ast.Call) or len(test.comparators) != 1:
            continue
        call, expected = ast.unparse(test.left), ast.unparse(test.comparators[0])
        got = observed(code, call)
        if got == "HANGS":
            return f"For example, {call} hangs."
        if got.startswith("RAISES "):
            return f"For example, {call} raises {got.removeprefix('RAISES ')}."
        if got != repr(ast.literal_eval(expected)):
            return f"For example, {call} gives {got} instead of {expected}."
    return None


def main() -> None:
    for prompt in load_prompts(shipped_prompts_path(), "bug_feedback"):
        if not prompt.runnable or prompt.code is None or prompt.tests is None:
            continue
        said = example(prompt.code, prompt.tests, prompt.entry_point or "")
        data = prompt.as_dict()
        data["id"] = f"{prompt.id}-ex"
        if said is not None:
            data["prompt"] = f"{prompt.prompt} {said}"
        print(json.dumps(data, ensure_ascii=False))


if __name__ == "__main__":
    main()
