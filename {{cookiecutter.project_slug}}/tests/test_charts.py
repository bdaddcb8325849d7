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
