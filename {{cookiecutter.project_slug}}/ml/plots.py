"""Evaluation plots as PNG, by task (the monitor draws SVG itself).

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
        if scored and "roc_curve" in scored:
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
    classes = [str(c) for c in report["candidate"]["classes"]]
    size = max(4.0, 0.6 * len(classes) + 2)
    figure, axes = plt.subplots(figsize=(size, size), dpi=100)
    axes.imshow(matrix, cmap="Blues")
    largest = max(max(row) for row in matrix) or 1
    for row in range(len(classes)):
        for column in range(len(classes)):
            value = matrix[row][column]
            colour = "white" if value > largest / 2 else "black"  # readable on dark and light cells
            axes.text(column, row, str(value), ha="center", va="center", fontsize=12, color=colour)
    ticks = list(range(len(classes)))
    axes.set(xticks=ticks, yticks=ticks, xticklabels=classes, yticklabels=classes, xlabel="predicted", ylabel="actual")
    axes.set_title("Confusion matrix (candidate)")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def per_class(report: dict[str, Any], path: Path) -> Path:
    """Precision, recall and F1 per class, side by side (multiclass)."""
    scores = report["candidate"]["per_class"]
    classes = list(scores)
    figure, axes = plt.subplots(figsize=(max(5.0, 0.9 * len(classes) + 2), 4), dpi=100)
    width = 0.27
    for offset, name in enumerate(("precision", "recall", "f1")):
        positions = [i + (offset - 1) * width for i in range(len(classes))]
        axes.bar(positions, [scores[c][name] for c in classes], width, label=name)
    axes.set(
        xticks=list(range(len(classes))), xticklabels=classes, ylim=(0, 1.05), title="Per-class metrics (candidate)"
    )
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def residuals(report: dict[str, Any], path: Path) -> Path:
    """Predicted against actual, and the residuals against the prediction (regression)."""
    points = report["candidate"]["residuals"]
    actual, predicted = points["actual"], points["predicted"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.5), dpi=100)
    left.scatter(actual, predicted, s=10, alpha=0.6)
    low, high = min(actual + predicted), max(actual + predicted)
    left.plot([low, high], [low, high], ":", color="grey")
    left.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual (candidate)")
    right.scatter(predicted, [a - p for a, p in zip(actual, predicted, strict=True)], s=10, alpha=0.6)
    right.axhline(0, linestyle=":", color="grey")
    right.set(xlabel="predicted", ylabel="actual - predicted", title="Residuals (candidate)")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def evaluation_plots(report: dict[str, Any], directory: Path) -> list[Path]:
    """The task's plots: ROC and confusion matrix (binary), confusion matrix and per-class bars
    (multiclass), residuals (regression)."""
    task = report["candidate"].get("task", "binary")
    if task == "regression":
        return [residuals(report, directory / "residuals.png")]
    if task == "multiclass":
        return [
            confusion_matrix(report, directory / "confusion_matrix.png"),
            per_class(report, directory / "per_class.png"),
        ]
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
