"""What each part of the checked fix buys, read from recorded runs: no model runs.

Every checked answer records the fixes it tried (`verification.tried`: the draft's, the sampled
one, a second look's) with what the checks found on each. This runs the case's hidden tests on
every tried fix, then counts the passes each way of choosing would have had:

- chosen: what the pipeline offered (the run's own figure);
- draft: the draft's fix alone, as if nothing were sampled and no second look ran;
- first round: the choice among the draft's and the sampled fix, no second look;
- no model tests: the same ranking with the model's tests left out;
- any: some tried fix passes (what a perfect choice would reach).

The draft's fix in a run differs in its last bits from one decoded alone (the batch's
arithmetic), so "draft" estimates the pipeline without the sample; it is not a rerun.

    .venv/bin/python docs/eval/devset/selection_study.py docs/eval/devset/sample-qwen-s14-161-200
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from starchat_lsp import sandbox
from starchat_lsp.eval.prompt_sets import load_prompts

PROMPTS = Path(__file__).with_name("prompts.jsonl")


def _rank(tried: dict[str, object], index: int, *, tests: bool) -> tuple[object, ...]:
    """`ranking.Candidate.rank` from a recorded candidate (sound: no problems and it loads)."""
    sound = not tried["problems"] and bool(tried["loads"])
    return (
        tried["passed"],
        sound,
        tried.get("reproduced_passed", 0) if tests else 0,
        tried["generated_passed"] if tests else 0,
        tried["lint"],
        tried["votes"],
        index == 0,
        -int(str(tried["changed_lines"])),
        -index,
    )


def _choose(tried: list[dict[str, object]], indices: list[int], *, tests: bool) -> int | None:
    sound = [i for i in indices if not tried[i]["problems"] and tried[i]["loads"]]
    return max(sound, key=lambda i: _rank(tried[i], i, tests=tests)) if sound else None


def study(run: Path) -> dict[str, Counter[str]]:
    prompts = {p.id: p for p in load_prompts(PROMPTS)}
    limits = sandbox.Limits()
    counts: dict[str, Counter[str]] = {}
    for line in (run / "answers.jsonl").read_text().splitlines():
        record = json.loads(line)
        verification = record.get("verification")
        if not verification:
            continue
        prompt = prompts[record["prompt_id"]]
        tried = verification["tried"]
        first = verification.get("second_look_from") or len(tried)  # older runs had none
        assert prompt.tests is not None, prompt.id
        passes = [
            t["code"] is not None
            and sandbox.run_python_tests(t["code"], prompt.tests, prompt.entry_point, limits).status
            == "pass"
            for t in tried
        ]
        picks = {
            "chosen": verification["chosen"],
            "draft": _choose(tried, [0], tests=True) if tried else None,
            "first round": _choose(tried, list(range(first)), tests=True),
            "no model tests": _choose(tried, list(range(len(tried))), tests=False),
        }
        groups = ["all", f"note: {prompt.note_kind}"] if prompt.note_kind else ["all"]
        for group in groups:
            count = counts.setdefault(group, Counter())
            count["cases"] += 1
            count["run's own"] += (record.get("check") or {}).get("status") == "pass"
            for name, pick in picks.items():
                count[name] += pick is not None and passes[pick]
            count["any"] += any(passes)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="eval run folders (answers.jsonl)")
    args = parser.parse_args()
    total: dict[str, Counter[str]] = {}
    for run in args.runs:
        for group, count in study(run).items():
            total.setdefault(group, Counter()).update(count)
    names = ["run's own", "chosen", "draft", "first round", "no model tests", "any"]
    print("| group | cases | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 2) + "|")
    for group in sorted(total, key=lambda g: (g != "all", g)):
        count = total[group]
        cells = " | ".join(str(count[n]) for n in names)
        print(f"| {group} | {count['cases']} | {cells} |")


if __name__ == "__main__":
    main()
