"""The plots a reviewer sees on GitHub (job summaries, the promotion comment), drawn by Mermaid itself
in headless Chromium, and the tables read by a CommonMark parser with GitHub's table extension."""

from __future__ import annotations

from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from ml import charts
from tests import mermaid

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("mermaid")]

CANDIDATE = {"task": "binary", "classes": [0, 1], "confusion_matrix": [[40, 2], [3, 30]],
             "roc_curve": {"fpr": [0.0, 0.0, 0.05, 0.2, 1.0], "tpr": [0.0, 0.8, 0.9, 0.97, 1.0]}}  # fmt: skip
CHAMPION = {"task": "binary", "classes": [0, 1], "confusion_matrix": [[38, 4], [5, 28]],
            "roc_curve": {"fpr": [0.0, 0.1, 0.3, 1.0], "tpr": [0.0, 0.6, 0.9, 1.0]}}  # fmt: skip


def test_the_roc_curves_are_drawn_by_mermaid_one_line_per_model(tmp_path: Path) -> None:
    markdown = charts.evaluation_charts({"candidate v2": CANDIDATE, 'serving "v1"': CHAMPION})
    (source,) = mermaid.blocks(markdown)
    (drawn,) = mermaid.render([source], tmp_path)
    assert drawn.error == "", drawn.error
    assert drawn.count("line-plot-0") == 1 and drawn.count("line-plot-1") == 1
    assert "candidate v2 (line 1) and serving 'v1' (line 2)" in source  # a quote would end Mermaid's title


def test_a_regressions_residuals_are_drawn_as_bars(tmp_path: Path) -> None:
    part = {
        "task": "regression",
        "residuals": {"actual": [1.0, 2.0, 3.0, 4.0, 10.0], "predicted": [1.2, 1.9, 3.5, 3.0, 9.0]},
    }
    (source,) = mermaid.blocks(charts.evaluation_charts({"candidate": part}))
    (drawn,) = mermaid.render([source], tmp_path)
    assert drawn.error == "" and drawn.count("bar-plot-0") == 1, drawn.error


def test_mermaid_refuses_a_chart_it_cannot_draw(tmp_path: Path) -> None:
    """The check can fail: an unescaped quote in a title is what _mermaid_text prevents."""
    (drawn,) = mermaid.render(['xychart-beta\n    title "a "quoted" title"\n    line [1, 2]'], tmp_path)
    assert drawn.svg == "" and "Parse error" in drawn.error


def test_each_confusion_matrix_is_a_table_githubs_markdown_reads() -> None:
    markdown = charts.evaluation_charts({"candidate v2": CANDIDATE, "serving v1": CHAMPION})
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    tables = [t for t in tokens if t.type == "table_open"]
    assert len(tables) == 2
    cells = [t.content for t in tokens if t.type == "inline"]
    assert "40" in cells and "38" in cells


def test_class_names_that_would_break_a_table_are_escaped_and_many_classes_are_not_tabled() -> None:
    part = {
        "task": "multiclass",
        "classes": ["a|b", "two\nlines", "c"],
        "confusion_matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
    }
    tokens = MarkdownIt("commonmark").enable("table").parse(charts.evaluation_charts({"candidate": part}))
    rows = [t for t in tokens if t.type == "tr_open"]
    assert len(rows) == 4  # the header and one row per class: no cell split, no row broken
    many = {"task": "multiclass", "classes": list(range(200)), "confusion_matrix": [[0] * 200] * 200}
    text = charts.evaluation_charts({"candidate": many, "serving v1": many})
    assert len(text) < 2_000 and "200 classes" in text  # a description's limit is 65,536 characters


def test_residual_bins_far_from_zero_keep_distinct_labels(tmp_path: Path) -> None:
    actual = [1000.0 + i / 100 for i in range(50)]
    part = {
        "task": "regression",
        "residuals": {"actual": actual, "predicted": [a + 1000.0 + (i % 7) / 1000 for i, a in enumerate(actual)]},
    }
    (source,) = mermaid.blocks(charts.evaluation_charts({"candidate": part}))
    labels = source.split("x-axis")[1].split("[")[1].split("]")[0].split(", ")
    assert len(set(labels)) == len(labels) == charts.RESIDUAL_BINS
    (drawn,) = mermaid.render([source], tmp_path)
    assert drawn.error == "" and drawn.count("bar-plot-0") == 1
