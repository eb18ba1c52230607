"""The charts (PNG): the judge's score distribution, one bar group per score 1-8 and one bar per
candidate; and the completion benchmark's scores, one bar group per kind of hole and one bar per
mode."""

from __future__ import annotations

from pathlib import Path

from starchat_lsp.eval.complete_scores import Group
from starchat_lsp.eval.scores import CandidateSummary


def write_score_chart(candidates: list[CandidateSummary], path: Path) -> bool:
    """Draw the chart; False (and no file) when there are no scores to draw."""
    if not any(c.scores for c in candidates):
        return False
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 3.6), dpi=110)
    width = 0.8 / len(candidates)
    bins = range(1, 9)
    for index, candidate in enumerate(candidates):
        # Half scores (the mean of two orders is never stored; a judge may give 6.5) round down.
        counts = [sum(1 for s in candidate.scores if int(s) == b) for b in bins]
        total = len(candidate.scores) or 1
        offsets = [b - 0.4 + width * (index + 0.5) for b in bins]
        axes.bar(offsets, [c / total for c in counts], width, label=candidate.name)
    axes.set_xticks(list(bins))
    axes.set_xlabel("judge score (1-8)")
    axes.set_ylabel("share of the candidate's scores")
    axes.set_title("Score distribution")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
    return True


def write_completion_chart(
    kinds: list[str], modes: dict[str, list[Group | None]], path: Path
) -> bool:
    """Exact match and edit similarity per kind of hole, one bar per mode; False: none drawn."""
    if not kinds or not modes:
        return False
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, panels = pyplot.subplots(1, 2, figsize=(10, 4.2), dpi=110, sharey=True)
    width = 0.8 / len(modes)
    places = range(len(kinds))
    for index, (mode, groups) in enumerate(modes.items()):
        offsets = [p - 0.4 + width * (index + 0.5) for p in places]
        exact = [g.exact / g.holes if g and g.holes else 0.0 for g in groups]
        similar = [(g.mean_similarity or 0.0) if g else 0.0 for g in groups]
        panels[0].bar(offsets, exact, width, label=mode)
        panels[1].bar(offsets, similar, width, label=mode)
    for panel, title in zip(panels, ("Exact match", "Edit similarity (mean)"), strict=True):
        panel.set_xticks(list(places))
        panel.set_xticklabels(kinds, fontsize=8)
        panel.set_title(title)
        panel.set_ylim(0, 1)
    panels[0].set_ylabel("share of the holes / mean")
    handles, labels = panels[0].get_legend_handles_labels()
    rows = (len(modes) + 2) // 3
    figure.legend(handles, labels, loc="lower center", ncol=min(3, len(modes)), fontsize=8)
    figure.tight_layout(rect=(0, 0.05 + 0.05 * rows, 1, 1))
    figure.savefig(path)
    pyplot.close(figure)
    return True
