"""Evaluation plots as PNG: the ROC curve and the confusion matrix; drift plots for the monitor.

matplotlib takes a third of a second to import, so the pipeline draws the evaluation plots in a
process of their own (`python -m ml.plots evaluation <evaluation.json> <directory>`), beside the
steps that follow evaluation, and waits for it before the run ends.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on CI runners or in containers
import matplotlib.pyplot as plt


def roc_curve(report: dict[str, Any], path: Path) -> Path:
    figure, axes = plt.subplots(figsize=(5, 5), dpi=100)
    for role, style in (("candidate", "-"), ("champion", "--")):
        scored = report.get(role)
        if scored:
            auc = scored["metrics"]["roc_auc"]
            curve = scored["roc_curve"]
            axes.plot(curve["fpr"], curve["tpr"], style, label=f"{role} (AUC {auc:.3f})")
    axes.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def confusion_matrix(report: dict[str, Any], path: Path) -> Path:
    matrix = report["candidate"]["confusion_matrix"]
    figure, axes = plt.subplots(figsize=(4, 4), dpi=100)
    axes.imshow(matrix, cmap="Blues")
    largest = max(max(row) for row in matrix) or 1
    for row in range(2):
        for column in range(2):
            value = matrix[row][column]
            colour = "white" if value > largest / 2 else "black"  # readable on dark and light cells
            axes.text(column, row, str(value), ha="center", va="center", fontsize=14, color=colour)
    axes.set(xticks=[0, 1], yticks=[0, 1], xlabel="predicted", ylabel="actual", title="Confusion matrix (candidate)")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def drift(
    name: str, baseline: dict[str, Any], live: list[float], score: float | None, threshold: float, path: Path
) -> Path:
    """Baseline and live distributions of one feature, on the baseline's buckets."""
    from ml.monitor import bucket_counts

    buckets = baseline["numerical_statistics"]["distribution"]["kll"]["buckets"]
    expected = [b["count"] for b in buckets]
    actual = bucket_counts(live, buckets) if live else [0.0] * len(buckets)
    # The buckets are training deciles of unequal width: show them side by side, labelled by range.
    positions = list(range(len(buckets)))
    figure, axes = plt.subplots(figsize=(7, 3.8), dpi=100)
    axes.bar([p - 0.2 for p in positions], [e / sum(expected) for e in expected], 0.4, label="baseline (training)")
    if sum(actual):
        axes.bar([p + 0.2 for p in positions], [a / sum(actual) for a in actual], 0.4, label="captured traffic")
    axes.set_xticks(positions, [f"≤{b['upper_bound']:.3g}" for b in buckets], rotation=45, ha="right")
    verdict = "" if score is None else f"PSI {score:.3f} ({'drift' if score > threshold else 'ok'})"
    axes.set(title=f"{name}  {verdict}", xlabel=f"{name} (baseline decile buckets)", ylabel="share of rows")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def psi_bars(ranked: list[tuple[str, float]], threshold: float, path: Path) -> Path:
    """PSI of every feature, highest first, against the drift threshold."""
    names = [name for name, _ in ranked]
    scores = [score for _, score in ranked]
    figure, axes = plt.subplots(figsize=(7, max(3.0, 0.22 * len(names))), dpi=100)
    colours = ["tab:red" if s > threshold else "tab:blue" for s in scores]
    axes.barh(names[::-1], scores[::-1], color=colours[::-1])
    axes.axvline(threshold, color="grey", linestyle="--", label=f"threshold {threshold}")
    axes.set(xlabel="population stability index", title="Drift per feature")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def evaluation_plots(report: dict[str, Any], directory: Path) -> list[Path]:
    return [
        roc_curve(report, directory / "roc_curve.png"),
        confusion_matrix(report, directory / "confusion_matrix.png"),
    ]


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 3 or args[0] != "evaluation":
        print("usage: python -m ml.plots evaluation <evaluation.json> <directory>", file=sys.stderr)
        return 2
    report = json.loads(Path(args[1]).read_text())
    for path in evaluation_plots(report, Path(args[2])):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
