"""The score distribution chart: one bar group per score 1-8, one bar per candidate (PNG)."""

from __future__ import annotations

from pathlib import Path

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
