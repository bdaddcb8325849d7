"""The evaluation's plots as Markdown that GitHub draws itself: Mermaid charts and tables.

A pull request or job summary shows an image only from a URL the reader's browser can fetch, and a
private repository's artifacts are not such URLs; Mermaid blocks are drawn by GitHub from the text,
in private repositories too. So the ROC curve is a Mermaid xychart, the confusion matrix a table,
and a regression's residuals a histogram; the PNGs stay in the report for everything else.
"""

from __future__ import annotations

from typing import Any

ROC_POINTS = 11  # false-positive rates 0, 0.1, ... 1: enough to read a curve, few enough to label
RESIDUAL_BINS = 12
# Beyond this many classes a confusion matrix is not read on a page, and two of them would take a
# good part of a pull request description's 65,536 characters: the report has the plot.
TABLE_CLASSES = 20


def _mermaid_text(text: str) -> str:
    # A title or axis label is a double-quoted string in Mermaid: no quotes or newlines inside.
    return " ".join(text.replace('"', "'").split())


def roc_chart(curves: dict[str, dict[str, list[float]]]) -> str:
    """One line per model: true-positive rate at evenly spaced false-positive rates."""
    grid = [i / (ROC_POINTS - 1) for i in range(ROC_POINTS)]
    lines = []
    for curve in curves.values():
        fpr, tpr = curve["fpr"], curve["tpr"]
        lines.append([round(_at(fpr, tpr, x), 3) for x in grid])
    names = " and ".join(f"{name} (line {i + 1})" for i, name in enumerate(curves))
    return "\n".join(
        [
            "```mermaid",
            "xychart-beta",
            f'    title "{_mermaid_text("ROC curve, held-out test set: " + names)}"',
            '    x-axis "false positive rate" [' + ", ".join(f"{x:.1f}" for x in grid) + "]",
            '    y-axis "true positive rate" 0 --> 1',
            *(f"    line [{', '.join(str(v) for v in values)}]" for values in lines),
            "```",
        ]
    )


def _at(xs: list[float], ys: list[float], x: float) -> float:
    """The curve's value at x, interpolated between the recorded points (xs ascending)."""
    for i in range(1, len(xs)):
        if xs[i] >= x:
            span = xs[i] - xs[i - 1]
            return ys[i] if span == 0 else ys[i - 1] + (ys[i] - ys[i - 1]) * (x - xs[i - 1]) / span
    return ys[-1]


def _cell(text: object) -> str:
    # A class name lands in a table cell: a pipe would end the cell, a newline the row.
    return " ".join(str(text).split()).replace("|", "\\|")


def confusion_table(title: str, part: dict[str, Any]) -> str:
    classes = [_cell(c) for c in part["classes"]]
    matrix = part["confusion_matrix"]
    if len(classes) > TABLE_CLASSES:
        return (
            f"**{_cell(title)}**: {len(classes)} classes; the confusion matrix is in the report (confusion_matrix.png)"
        )
    lines = [f"**{_cell(title)}**: rows are the true class, columns the predicted one", ""]
    lines += ["| true \\ predicted | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
    for name, row in zip(classes, matrix, strict=True):
        lines.append(f"| **{name}** | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def residual_chart(title: str, residuals: dict[str, list[float]]) -> str:
    errors = [p - a for a, p in zip(residuals["actual"], residuals["predicted"], strict=True)]
    if not errors:
        return ""
    low, high = min(errors), max(errors)
    width = (high - low) / RESIDUAL_BINS or 1.0
    counts = [0] * RESIDUAL_BINS
    for error in errors:
        counts[min(int((error - low) / width), RESIDUAL_BINS - 1)] += 1
    centres = _distinct_labels([low + width * (i + 0.5) for i in range(RESIDUAL_BINS)])
    return "\n".join(
        [
            "```mermaid",
            "xychart-beta",
            f'    title "{_mermaid_text(title + ": residuals (predicted - actual), held-out test set")}"',
            '    x-axis "residual" [' + ", ".join(f'"{c}"' for c in centres) + "]",
            f'    y-axis "rows" 0 --> {max(counts)}',
            f"    bar [{', '.join(str(c) for c in counts)}]",
            "```",
        ]
    )


def _distinct_labels(values: list[float]) -> list[str]:
    """As few significant digits as tell every bin apart: Mermaid draws two equal labels as one bar."""
    for digits in range(3, 16):
        labels = [f"{v:.{digits}g}" for v in values]
        if len(set(labels)) == len(labels):
            return labels
    return [repr(v) for v in values]


def evaluation_charts(models: dict[str, dict[str, Any] | None]) -> str:
    """Markdown for each model's part of evaluation.json (its "candidate" section), by title."""
    present = {title: part for title, part in models.items() if part}
    blocks = []
    curves = {title: part["roc_curve"] for title, part in present.items() if part.get("roc_curve")}
    if curves:
        blocks.append(roc_chart(curves))
    for title, part in present.items():
        if part.get("confusion_matrix"):
            blocks.append(confusion_table(title, part))
        elif part.get("residuals"):
            blocks.append(residual_chart(title, part["residuals"]))
    return "\n\n".join(block for block in blocks if block)
