"""What we ask the judge model, and how its first line is read back.

The prompt follows the StarChat authors' modified Vicuna coding prompt in spirit (scores from 1
to 8, the scores first, reasons after) in our own words. Scores are read from the first line
only; anything else is "unparsed", never guessed from the reasons.
"""

from __future__ import annotations

import re

from starchat_lsp.engine.base import ChatMessage
from starchat_lsp.eval.prompt_sets import EvalPrompt

MAX_ANSWER_CHARS = 6000  # a judge with a small context must still see both answers whole enough

JUDGE_SYSTEM = "You are a strict, fair reviewer of answers from coding assistants."

_SCALE = (
    "Score each answer from 1 to 8: 8 = correct, complete and clear; 6 = correct with small "
    "flaws; 4 = partly right, with a real mistake; 2 = mostly wrong or off topic; 1 = no useful "
    "content. Judge correctness first (does the code work, does the feedback find the real bug "
    "and fix it), then helpfulness, then clarity. Do not let the order of the answers or their "
    "length sway you."
)


def _question(prompt: EvalPrompt) -> str:
    if prompt.type == "bug_feedback" and prompt.code:
        return (
            f"{prompt.prompt}\n\nThe user's {prompt.language} code, which has a bug:\n"
            f"```{prompt.language}\n{prompt.code}\n```"
        )
    return prompt.prompt


def _shown(answer: str) -> str:
    if len(answer) <= MAX_ANSWER_CHARS:
        return answer.strip() or "(empty answer)"
    return answer[:MAX_ANSWER_CHARS] + "\n[... the rest of the answer is cut here ...]"


def build_pairwise_prompt(prompt: EvalPrompt, first: str, second: str) -> list[ChatMessage]:
    """Ask for both answers' scores on the first line, `first` shown as Assistant 1."""
    user = (
        f"[Question]\n{_question(prompt)}\n\n"
        f"[The start of Assistant 1's answer]\n{_shown(first)}\n[The end of Assistant 1's answer]"
        f"\n\n[The start of Assistant 2's answer]\n{_shown(second)}\n"
        "[The end of Assistant 2's answer]\n\n"
        f"{_SCALE}\n\nOn the first line write only the two scores, Assistant 1's then Assistant "
        "2's, separated by a space (for example: 6 3). Then explain your scores."
    )
    return [ChatMessage("system", JUDGE_SYSTEM), ChatMessage("user", user)]


def build_single_prompt(prompt: EvalPrompt, answer: str) -> list[ChatMessage]:
    """Ask for one answer's score on the first line."""
    user = (
        f"[Question]\n{_question(prompt)}\n\n"
        f"[The start of the assistant's answer]\n{_shown(answer)}\n"
        "[The end of the assistant's answer]\n\n"
        f"{_SCALE}\n\nOn the first line write only the score (for example: 5). "
        "Then explain your score."
    )
    return [ChatMessage("system", JUDGE_SYSTEM), ChatMessage("user", user)]


def reminder(count: int) -> str:
    """What the judge is told when its first answer could not be read."""
    example = "6 3" if count == 2 else "5"
    what = "the two scores" if count == 2 else "the score"
    return (
        f"I could not read {what} from your first line. Reply again: the first line must be only "
        f"{what}, whole numbers from 1 to 8 (for example: {example}), then your reasons."
    )


# Labels a judge puts around its numbers ("Assistant 1: 7", "Score: 6/8", "**7**") are dropped
# before counting numbers, so that "1" in "Assistant 1" is not read as a score.
_LABEL = re.compile(r"\b(assistant|answer|response)s?\s*(#\s*)?[12ab]?\b\s*[:=-]?", re.I)
_SCORE_WORD = re.compile(r"\b(score|rating)s?\s*[:=]?", re.I)
_OUT_OF = re.compile(r"\s*(/\s*8|out\s+of\s+8)\b", re.I)
# Words that may sit between the scores; any other word means the line is a sentence, not scores.
_FILLER = {"and", "vs", "versus", "score", "scores", "points", "for", "to", "the", "is", "gets"}
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?![\w.]*\d)")


def parse_scores(text: str, count: int) -> list[float] | None:
    """The `count` scores on the answer's first non-empty line, each from 1 to 8; else None."""
    line = next((line for line in text.splitlines() if line.strip()), "")
    line = _OUT_OF.sub(" ", line.replace("*", " ").replace("`", " "))
    line = _SCORE_WORD.sub(" ", _LABEL.sub(" ", line))
    numbers = [float(n) for n in _NUMBER.findall(line)]
    if len(numbers) != count or any(not 1 <= n <= 8 for n in numbers):
        return None
    if any(word.lower() not in _FILLER for word in re.findall(r"[a-z]+", line, re.I)):
        return None  # a sentence with numbers in it is reasoning, not the scores line
    return numbers
