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


def _saved(figure: Any, path: Path) -> Path:
    """Lay the figure out, write it, and free it (pyplot keeps every open figure)."""
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


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
    return _saved(figure, path)


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
    return _saved(figure, path)


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
    return _saved(figure, path)


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
    return _saved(figure, path)


def importance(report: dict[str, Any], path: Path) -> Path:
    """Permutation importance per feature, largest first, with its spread over the shuffles."""
    ranked = report["importance"]["features"]
    figure, axes = plt.subplots(figsize=(7, max(3.0, 0.28 * len(ranked) + 1.2)), dpi=100)
    positions = list(range(len(ranked)))[::-1]
    axes.barh(positions, [f["mean"] for f in ranked], xerr=[f["std"] for f in ranked], color="tab:blue")
    axes.set(yticks=positions, yticklabels=[f["feature"] for f in ranked])
    axes.axvline(0, color="grey", linewidth=0.8)
    axes.set_xlabel(f"drop in {report['importance']['metric']} when the feature is shuffled")
    axes.set_title("Permutation importance (candidate, test set)")
    return _saved(figure, path)


def slices(report: dict[str, Any], path: Path) -> Path:
    """Each slice's groups side by side on the task's first metric, with their row counts."""
    parts = report["slices"]
    figure, rows = plt.subplots(len(parts), 1, figsize=(7, 2.6 * len(parts)), dpi=100, squeeze=False)
    for axes, (name, part) in zip(rows[:, 0], parts.items(), strict=True):
        groups = part["groups"]
        shown = next(iter(report["candidate"]["metrics"]))
        values = [g["metrics"].get(shown) for g in groups]
        axes.bar(range(len(groups)), [v if v is not None else 0.0 for v in values], color="tab:blue")
        labels = [f"{g['group']}\n{g['rows']} rows" for g in groups]
        axes.set(xticks=list(range(len(groups))), xticklabels=labels, ylabel=shown, title=f"{name} ({part['column']})")
        for index, value in enumerate(values):
            axes.text(index, value or 0.0, "n/a" if value is None else f"{value:.3f}", ha="center", va="bottom")
    return _saved(figure, path)


def evaluation_plots(report: dict[str, Any], directory: Path) -> list[Path]:
    """The task's plots: ROC and confusion matrix (binary), confusion matrix and per-class bars
    (multiclass), residuals (regression); then, for every task, feature importance and the slices."""
    task = report["candidate"].get("task", "binary")
    if task == "regression":
        drawn = [residuals(report, directory / "residuals.png")]
    elif task == "multiclass":
        drawn = [
            confusion_matrix(report, directory / "confusion_matrix.png"),
            per_class(report, directory / "per_class.png"),
        ]
    else:
        drawn = [
            roc_curve(report, directory / "roc_curve.png"),
            confusion_matrix(report, directory / "confusion_matrix.png"),
        ]
    if report.get("importance"):
        drawn.append(importance(report, directory / "importance.png"))
    if report.get("slices"):
        drawn.append(slices(report, directory / "slices.png"))
    return drawn


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
