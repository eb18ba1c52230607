"""report.md and report.html for a run folder: the same tables, written twice."""

from __future__ import annotations

import html
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starchat_lsp.eval import records
from starchat_lsp.eval.chart import write_score_chart
from starchat_lsp.eval.runner import run_candidates
from starchat_lsp.eval.scores import Summary, VerificationSummary, summarize
from starchat_lsp.sandbox import STATUSES

CHART = "scores.png"


class ReportError(ValueError):
    """The folder has nothing to report on."""


@dataclass(kw_only=True)
class Section:
    title: str
    lines: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    image: str | None = None


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _percent(count: int, total: int) -> str:
    return "-" if not total else f"{100 * count / total:.1f}% ({count}/{total})"


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def sections(summary: Summary, prompts: list[dict[str, Any]], chart: bool) -> list[Section]:
    """The report's content, independent of the format it is written in."""
    names = [c.name for c in summary.candidates]
    out = [
        Section(
            title="Run",
            lines=[
                f"Candidates: {', '.join(names)}" + (" (A, B)" if len(names) == 2 else ""),
                f"Judge: {summary.judge or 'not judged yet'}",
                f"Prompts: {summary.prompts}; judgments: {summary.judgments}, "
                f"of which unparsed (dropped, never guessed): {summary.unparsed}",
            ],
        ),
        Section(
            title="Scores",
            lines=["Judge scores from 1 to 8; pairwise runs give each answer one per order."],
            headers=["candidate", "mean score", "scores", "answers"],
            rows=[
                [c.name, _number(c.mean_score), str(len(c.scores)), str(c.answers)]
                for c in summary.candidates
            ],
        ),
    ]
    found = sorted({k for c in summary.candidates for k in c.scores_by_category})
    if found:
        out.append(
            Section(
                title="Scores by category",
                headers=["category", *names],
                rows=[
                    [
                        category,
                        *(
                            f"{_number(_mean(c.scores_by_category.get(category, [])))} "
                            f"(n={len(c.scores_by_category.get(category, []))})"
                            for c in summary.candidates
                        ),
                    ]
                    for category in found
                ],
            )
        )
    pair = summary.pair
    if pair is not None:
        decided = pair.wins + pair.losses
        bias = sum(pair.first_shown.values())
        out.append(
            Section(
                title=f"{pair.a} (A) against {pair.b} (B)",
                lines=[
                    "Per prompt, each answer's score is the mean over the two orders "
                    "(A shown first, B shown first).",
                    f"Win rate of A over B without ties: {_percent(pair.wins, decided)}",
                    "Judge agreement between the two orders (same winner or both a tie): "
                    f"{_percent(pair.agreement.count, pair.agreement.total)}",
                    "Position bias: the answer shown first scored higher in "
                    f"{_percent(pair.first_shown['higher'], bias)} of judgments, lower in "
                    f"{_percent(pair.first_shown['lower'], bias)}",
                ],
                headers=["A wins", "ties", "A loses", "prompts judged"],
                rows=[
                    [
                        _percent(pair.wins, pair.judged),
                        _percent(pair.ties, pair.judged),
                        _percent(pair.losses, pair.judged),
                        str(pair.judged),
                    ]
                ],
            )
        )
    out.append(_tests_section(summary))
    if len(names) > 1 and any(c.tests_by_category for c in summary.candidates):
        out.append(_pass_rates_section(summary))
    out.append(
        Section(
            title="Speed",
            lines=[
                "Tokens/s: decoding after the first token. Time to first token: prompt cost. "
                "Cut: answers stopped by the token or time limit instead of ending."
            ],
            headers=[
                "candidate",
                "mean tokens/s",
                "mean time to first token (s)",
                "median time to first token (s)",
                "median seconds per answer",
                "answers cut",
            ],
            rows=[
                [
                    c.name,
                    _number(_mean(c.tokens_per_s), 1),
                    _number(_mean(c.time_to_first_token_s)),
                    _number(_median(c.time_to_first_token_s)),
                    _number(_median(c.seconds), 1),
                    _percent(c.cut, c.answers),
                ]
                for c in summary.candidates
            ],
        )
    )
    out.extend(_verification_section(v) for v in summary.verification)
    if chart:
        out.append(Section(title="Score distribution", image=CHART))
    return out


def _verification_section(found: VerificationSummary) -> Section:
    ratios = found.time_ratios
    total = found.seconds / found.plain_seconds if found.plain_seconds else None
    return Section(
        title=f"Verification: {found.name} against {found.plain}",
        lines=[
            "Time: each answer's seconds (verification included) over the plain answer's "
            f"seconds on the same prompt: median {_number(_median(ratios))}x, "
            f"min {_number(min(ratios) if ratios else None)}x, "
            f"max {_number(max(ratios) if ratios else None)}x; all answers together "
            f"{_number(total)}x.",
            "The chosen fix was the plain answer's in "
            f"{_percent(found.chose_the_draft, found.answers)} of answers.",
        ],
        headers=["verdict", "answers"],
        rows=[[kind, str(count)] for kind, count in found.verdicts.most_common()],
    )


def _tests_section(summary: Summary) -> Section:
    rows = []
    for c in summary.candidates:
        groups = [("all", c.tests), *sorted(c.tests_by_category.items())]
        for group, counts in groups:
            tested = sum(counts.values())
            if tested:
                named = c.named_line if group == "all" else c.named_line_by_category.get(group)
                rows.append(
                    [
                        c.name,
                        group,
                        *(str(counts[s]) for s in STATUSES),
                        _percent(counts["pass"], tested),
                        _percent(named.count, named.total) if named and named.total else "",
                    ]
                )
    return Section(
        title="Tests",
        lines=[
            "The code of each answer to a prompt with tests (the fixed code for bug feedback) "
            "run in a sandboxed process; an answer without code counts as an error. "
            "Named the buggy line: bug feedback whose answer points at (or its fix changes) "
            "one of the prompt's `bug_lines`."
        ],
        headers=["candidate", "prompts", *STATUSES, "pass rate", "named the buggy line"],
        rows=rows,
    )


def _pass_rates_section(summary: Summary) -> Section:
    """The test pass rates of the candidates side by side, one row per group of prompts."""
    groups = sorted({g for c in summary.candidates for g in c.tests_by_category})
    rows = []
    for group in ["all", *groups]:
        row = [group]
        for c in summary.candidates:
            counts = c.tests if group == "all" else c.tests_by_category.get(group, Counter())
            row.append(_percent(counts["pass"], sum(counts.values())))
        rows.append(row)
    return Section(
        title="Test pass rate by group",
        lines=["The pass rates of the Tests table, the candidates side by side."],
        headers=["group", *(c.name for c in summary.candidates)],
        rows=rows,
    )


def per_prompt_section(
    names: list[str],
    prompts: list[dict[str, Any]],
    answers: list[dict[str, Any]],
    judgments: list[dict[str, Any]],
) -> Section:
    """One row per prompt: its test status and mean score for each candidate."""
    status = {
        (str(a.get("candidate")), str(a.get("prompt_id"))): (a.get("check") or {}).get("status")
        for a in answers
    }
    got: dict[tuple[str, str], list[float]] = {}
    for j in judgments:
        for name, score in (j.get("scores") or {}).items():
            got.setdefault((name, str(j.get("prompt_id"))), []).append(float(score))
    rows = []
    for p in prompts:
        cells = [str(p["id"]), str(p.get("type")), str(p.get("language"))]
        for name in names:
            key = (name, str(p["id"]))
            cells.append(str(status.get(key) or "-"))
            cells.append(_number(_mean(got.get(key, [])), 1))
        rows.append(cells)
    headers = ["prompt", "type", "language"]
    for name in names:
        headers += [f"{name} test", f"{name} score"]
    return Section(title="Per prompt", headers=headers, rows=rows)


def render_markdown(title: str, parts: list[Section]) -> str:
    lines = [f"# {title}", ""]
    for part in parts:
        lines += [f"## {part.title}", ""]
        lines += [f"{line}  " for line in part.lines]
        if part.lines:
            lines.append("")
        if part.headers:
            lines.append("| " + " | ".join(part.headers) + " |")
            lines.append("|" + "---|" * len(part.headers))
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in part.rows]
            lines.append("")
        if part.image:
            lines += [f"![{part.title}]({part.image})", ""]
    return "\n".join(lines)


def render_html(title: str, parts: list[Section]) -> str:
    e = html.escape
    body = [f"<h1>{e(title)}</h1>"]
    for part in parts:
        body.append(f"<h2>{e(part.title)}</h2>")
        body += [f"<p>{e(line)}</p>" for line in part.lines]
        if part.headers:
            head = "".join(f"<th>{e(h)}</th>" for h in part.headers)
            rows = "".join(
                "<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in part.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        if part.image:
            body.append(f'<p><img src="{e(part.image)}" alt="{e(part.title)}"></p>')
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:.5em 0}"
        "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
        "th{background:#f3f3f3}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(title)}</title><style>{style}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_report(folder: Path) -> list[Path]:
    """Write report.md, report.html and the chart into the run folder; return their paths."""
    candidates = run_candidates(folder)
    if not candidates:
        raise ReportError(f"{folder} is not a run folder: run `starchat-lsp eval run` first")
    prompts = records.read_records(folder / records.PROMPTS)
    answers = records.read_records(folder / records.ANSWERS)
    if not answers:
        raise ReportError(f"{folder} has no answers yet: run `starchat-lsp eval run` first")
    judgments = records.read_records(folder / records.JUDGMENTS)
    summary = summarize(candidates, prompts, answers, judgments)
    chart = write_score_chart(summary.candidates, folder / CHART)
    parts = sections(summary, prompts, chart)
    parts.append(per_prompt_section(candidates, prompts, answers, judgments))
    title = "starchat-lsp evaluation: " + " vs ".join(candidates)
    written = [folder / "report.md", folder / "report.html"]
    written[0].write_text(render_markdown(title, parts), encoding="utf-8")
    written[1].write_text(render_html(title, parts), encoding="utf-8")
    return [*written, folder / CHART] if chart else written
