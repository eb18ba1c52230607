"""The run's report: a markdown table per section, a PNG chart, and the raw figures as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.results_model import Section

HEADER = "| measure | starchat-lsp | baseline | ratio | target | met |\n|---|---|---|---|---|---|\n"


def _met(value: bool | None) -> str:
    return {True: "yes", False: "**no**", None: ""}[value]


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def markdown(title: str, machine: dict[str, str], command: str, sections: list[Section]) -> str:
    lines = [f"# {title}", "", f"`{command}`", ""]
    lines += [f"- {key}: {value}" for key, value in machine.items()]
    for section in sections:
        lines += ["", f"## {section.title}", ""]
        table = HEADER + "".join(
            f"| {row.measure} | {row.ours} | {row.baseline} | "
            f"{_ratio(row.ratio)} | {row.target} | {_met(row.met)} |\n"
            for row in section.rows
        )
        lines.append(table.rstrip("\n"))
        lines += [""] + [f"- {note}" for note in section.notes]
    return "\n".join(lines) + "\n"


def chart(path: Path, title: str, sections: list[Section]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, Any] = {}
    ratios: dict[str, float] = {}
    for section in sections:
        series.update(section.series)
        ratios.update(section.series.get("worker_ratios", {}))
        for row in section.rows:
            if row.ratio is not None and (
                section.key in ("engine", "reuse")
                or ("llama.cpp" in row.measure and section.key != "worker")
            ):
                ratios[
                    row.measure.replace("llama.cpp backend vs raw llama-cpp-python", "llama.cpp")
                ] = row.ratio
    figure, axes = plt.subplots(2, 2, figsize=(13, 9))
    figure.suptitle(title)

    ax = axes[0][0]
    if ratios:
        names = [name[:48] for name in ratios]
        ax.barh(names, list(ratios.values()), color="#4c72b0")
        ax.axvline(1.0, color="black", linewidth=1)
        ax.set_xlabel("ours / baseline (1.0 = the same)")
        ax.invert_yaxis()
    ax.set_title("Ratios against the baselines")

    ax = axes[0][1]
    latency = {k: v for k, v in series.items() if k.startswith(("code-action", "completion on"))}
    for name, values in latency.items():
        ax.hist(values, bins=40, alpha=0.6, label=name)
    ax.axvline(50, color="red", linewidth=1, label="50 ms target (p99)")
    ax.set_xlabel("ms from request to reply, during a generation")
    ax.set_title("Responsiveness")
    ax.legend(fontsize=8)

    ax = axes[1][0]
    points = series.get("prompt_length", [])
    if points:
        xs = [p[0] for p in points]
        ax.plot(xs, [p[1] for p in points], "o-", label="first token (s)")
        ax.set_xlabel("prompt tokens")
        ax.set_ylabel("seconds to first token")
        twin = ax.twinx()
        twin.plot(xs, [p[2] for p in points], "s--", color="#dd8452", label="tokens/s")
        twin.set_ylabel("tokens/s")
    ax.set_title("Prompt length")

    ax = axes[1][1]
    points = series.get("concurrency", [])
    if points:
        xs = [p[0] for p in points]
        ax.plot(xs, [p[1] for p in points], "o-", label="median first token")
        ax.plot(xs, [p[2] for p in points], "s-", label="last first token")
        ax.set_xticks(xs)
        ax.set_xlabel("requests at once")
        ax.set_ylabel("seconds")
        ax.legend(fontsize=8)
    ax.set_title("Requests at once (one model worker)")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def save(
    out: Path, title: str, machine: dict[str, str], command: str, sections: list[Section]
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    report = out / "report.md"
    report.write_text(markdown(title, machine, command, sections))
    chart(out / "chart.png", title, sections)
    (out / "results.json").write_text(
        json.dumps(
            {"machine": machine, "command": command, "sections": [asdict(s) for s in sections]},
            indent=1,
        )
    )
    return report
