"""Evaluation plots as PNG: the ROC curve and the confusion matrix (the monitor draws SVG itself).

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
