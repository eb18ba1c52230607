"""report.md, report.html and a chart for an `eval complete` folder, in the style of `report`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from starchat_lsp.eval import complete_runner, records
from starchat_lsp.eval.chart import write_completion_chart
from starchat_lsp.eval.complete_scores import Group, percentile, summarize
from starchat_lsp.eval.report import (
    ReportError,
    Section,
    _median,
    _number,
    _percent,
    render_html,
    render_markdown,
)
from starchat_lsp.sandbox import STATUSES

CHART = "completion.png"
KIND_NAMES = {
    "line": "whole line",
    "rest": "rest of a line",
    "body": "function body",
    "doctest": "function body with doctests",
    "all": "all",
}
CHART_NAMES = {
    "line": "whole line",
    "rest": "rest of a line",
    "body": "body",
    "doctest": "body, doctests",
}


def is_completion_folder(folder: Path) -> bool:
    manifest = records.read_json(folder / records.RUN) or {}
    return manifest.get("kind") == complete_runner.KIND


def _short(text: str, width: int = 48) -> str:
    flat = text.replace("\n", " ⏎ ")
    return "`" + (flat if len(flat) <= width else flat[: width - 1] + "…").replace("`", "'") + "`"


def _run_section(manifest: dict[str, Any], cut: list[dict[str, Any]]) -> Section:
    spec = manifest.get("holes") or {}
    counts = Counter(str(h.get("kind")) for h in cut)
    machine = manifest.get("machine") or {}
    lines = [
        f"Source: {spec.get('source')} (Python {spec.get('python')}), seed {spec.get('seed')}",
        "Holes: "
        + ", ".join(f"{counts[k]} {KIND_NAMES.get(k, k)}" for k in spec.get("kinds", []))
        + f", from {len({h.get('path') for h in cut})} files",
        f"Completion settings: max_new_tokens {spec.get('max_new_tokens')} (a line: at most 48)",
        f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores",
        "Modes: model, prompt (fim: fill-in-the-middle; chat: the chat prompt with a cursor "
        "marker; +files: with the definitions from other files of the source folder that the "
        "hole's code uses, completion.other_files; +typed: asked just after the same request "
        "one key earlier, as while typing; +moved: asked just after a request at another "
        "place of the file, 8 to 64 lines away), context tokens "
        "(completion.max_context_tokens)",
    ]
    lines += [
        f"Not run: {mode} ({why})" for mode, why in manifest.get("not_applicable", {}).items()
    ]
    lines += [f"Command: `{command}`" for command in manifest.get("commands", [])]
    return Section(title="Run", lines=lines)


def _scores_section(modes: list[str], summary: dict[str, dict[str, Group]]) -> Section:
    kinds = [k for k in [*KIND_NAMES] if any(k in summary.get(m, {}) for m in modes)]
    rows = []
    for kind in kinds:
        for mode in modes:
            group = summary.get(mode, {}).get(kind)
            if group is None:
                continue
            rows.append(
                [
                    KIND_NAMES.get(kind, kind),
                    mode,
                    str(group.holes),
                    _percent(group.exact, group.holes),
                    _number(group.mean_similarity),
                    _percent(group.parsed, group.suggested),
                    _percent(group.empty, group.holes),
                    _number(_median(group.first_token_s)),
                    _number(_median(group.seconds)),
                    _number(percentile(group.seconds, 0.9)),
                ]
            )
    return Section(
        title="Scores",
        lines=[
            "Exact: the suggestion is the hole (trailing whitespace stripped from each line). "
            "Edit similarity: 1 - Levenshtein distance / the longer length, in characters (0 "
            "for no suggestion), mean. Parses: of the suggestions made, the share with which "
            "the file still parses with tree-sitter (every file parsed before the hole was "
            "cut). Said nothing: no suggestion (the scope said no, or nothing was left after "
            "cleaning). First token: the model's first token; whole: the whole suggestion, "
            "cleaned (seconds, the holes where the model ran)."
        ],
        headers=[
            "holes",
            "mode",
            "n",
            "exact",
            "edit similarity",
            "parses",
            "said nothing",
            "first token (median s)",
            "whole (median s)",
            "whole (p90 s)",
        ],
        rows=rows,
    )


def _doctest_section(modes: list[str], summary: dict[str, dict[str, Group]]) -> Section | None:
    rows = []
    for mode in modes:
        for kind, group in summary.get(mode, {}).items():
            tested = sum(group.doctests.values())
            if kind != "all" and tested:
                rows.append(
                    [
                        KIND_NAMES.get(kind, kind),
                        mode,
                        str(tested),
                        *(str(group.doctests[s]) for s in STATUSES),
                        _percent(group.doctests["pass"], tested),
                    ]
                )
    if not rows:
        return None
    return Section(
        title="Doctests",
        lines=[
            "Function bodies whose docstring examples tell a body from none (the original "
            "passes them, a lone `pass` fails): the file with the suggestion runs in the "
            "sandbox, then the examples. No suggestion counts as a fail."
        ],
        headers=["holes", "mode", "n", *STATUSES, "pass rate"],
        rows=rows,
    )


def _scope_section(cut: list[dict[str, Any]], completions: list[dict[str, Any]]) -> Section:
    scopes: dict[str, Counter[str]] = {}
    seen = set()
    for record in completions:  # the scope depends on the document only: count each hole once
        if record.get("hole_id") not in seen:
            seen.add(record.get("hole_id"))
            scopes.setdefault(str(record.get("kind")), Counter())[str(record.get("scope"))] += 1
    kinds = list(dict.fromkeys(str(h.get("kind")) for h in cut))
    return Section(
        title="Scope decisions",
        lines=[
            "What the editor's scope decision made of each hole before any model ran: none "
            "(no suggestion), the rest of the line, or a block (one or more lines)."
        ],
        headers=["holes", "none", "line", "block"],
        rows=[
            [
                KIND_NAMES.get(k, k),
                *(str(scopes.get(k, Counter())[s]) for s in ("none", "line", "block")),
            ]
            for k in kinds
        ],
    )


def _load_section(modes: list[str], completions: list[dict[str, Any]]) -> Section:
    rows = []
    for mode in modes:
        loads = [float(r["load_1min"]) for r in completions if r.get("mode") == mode]
        if loads:
            rows.append([mode, _number(_median(loads)), _number(max(loads))])
    return Section(
        title="Machine load",
        lines=[
            "The 1-minute load average as each suggestion was recorded: latencies are "
            "only comparable between runs on an equally quiet machine."
        ],
        headers=["mode", "median load", "max load"],
        rows=rows,
    )


def _per_hole_section(
    modes: list[str], cut: list[dict[str, Any]], completions: list[dict[str, Any]]
) -> Section:
    got = {(str(r.get("mode")), str(r.get("hole_id"))): r for r in completions}
    rows = []
    for hole in cut:
        cells = [
            str(hole["id"]),
            f"{hole['path']}:{int(hole['line']) + 1}",
            _short(hole["expected"]),
        ]
        for mode in modes:
            found = got.get((mode, str(hole["id"])))
            if found is None:
                cells.append("-")
            elif found.get("empty"):
                cells.append("nothing")
            else:
                mark = "exact" if found.get("exact") else _number(found.get("similarity"))
                cells.append(f"{mark} {_short(str(found.get('text')), 32)}")
        rows.append(cells)
    return Section(
        title="Per hole",
        lines=["Each mode's suggestion: `exact`, or its edit similarity and its start."],
        headers=["hole", "where", "expected", *modes],
        rows=rows,
    )


def write_report(folder: Path) -> list[Path]:
    """Write report.md, report.html and the chart into the run folder; return their paths."""
    manifest = records.read_json(folder / records.RUN) or {}
    cut = records.read_records(folder / complete_runner.HOLES)
    completions = records.read_records(folder / complete_runner.COMPLETIONS)
    if not completions:
        raise ReportError(f"{folder} has no completions yet: run `starchat-lsp eval complete`")
    modes = [m for m in manifest.get("modes", []) if any(r.get("mode") == m for r in completions)]
    summary = summarize(completions)
    kinds = [k for k in KIND_NAMES if k != "all" and any(k in summary[m] for m in modes)]
    chart = write_completion_chart(
        [CHART_NAMES[k] for k in kinds],
        {m: [summary[m].get(k) for k in kinds] for m in modes},
        folder / CHART,
    )
    parts = [_run_section(manifest, cut), _scores_section(modes, summary)]
    doctests = _doctest_section(modes, summary)
    parts += [doctests] if doctests else []
    parts += [_scope_section(cut, completions), _load_section(modes, completions)]
    if chart:
        parts.append(Section(title="Chart", image=CHART))
    parts.append(_per_hole_section(modes, cut, completions))
    title = "starchat-lsp completion benchmark: " + ", ".join(modes)
    written = [folder / "report.md", folder / "report.html"]
    written[0].write_text(render_markdown(title, parts), encoding="utf-8")
    written[1].write_text(render_html(title, parts), encoding="utf-8")
    return [*written, folder / CHART] if chart else written
