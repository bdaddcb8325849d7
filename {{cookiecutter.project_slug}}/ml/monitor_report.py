"""The monitoring report: Markdown with SVG plots, written by the monitoring job wherever it runs.

The job runs in the SageMaker scikit-learn image, which has no matplotlib, so the plots are
plain SVG drawn here (a bar chart is a few rectangles); they read the same in a browser, a
pull request and an S3 console. Only the standard library is used.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

if __package__:
    from ml.monitor import MonitorResult, Settings, baseline_counts, is_categorical, metrics_document, score_threshold
else:  # in the monitoring job's container: ml/monitor.py sits beside this file
    from monitor import (  # type: ignore[import-not-found, no-redef]
        MonitorResult,
        Settings,
        baseline_counts,
        is_categorical,
        metrics_document,
        score_threshold,
    )

WIDTH, HEIGHT, MARGIN = 640, 300, 48
COLOURS = ("#4c78a8", "#f58518", "#e45756")
SHOWN = 4  # features plotted when none drifted, so a report always shows some


def bars_svg(title: str, labels: list[str], series: dict[str, list[float]], threshold: float | None = None) -> str:
    """Grouped vertical bars, one group per label, one colour per series; an optional threshold line."""
    top = max([v for values in series.values() for v in values] + [threshold or 0.0, 1e-9])
    plot_w, plot_h = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN
    group = plot_w / max(1, len(labels))
    bar = group * 0.8 / max(1, len(series))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}"'
        ' font-family="sans-serif" font-size="10">',
        f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" font-size="13">{escape(title)}</text>',
        f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{WIDTH - MARGIN}" y2="{HEIGHT - MARGIN}" stroke="#333"/>',
        f'<text x="{MARGIN - 4}" y="{MARGIN + 4}" text-anchor="end">{top:.3g}</text>',
        f'<text x="{MARGIN - 4}" y="{HEIGHT - MARGIN}" text-anchor="end">0</text>',
    ]
    for s, (name, values) in enumerate(series.items()):
        colour = COLOURS[s % len(COLOURS)]
        for i, value in enumerate(values):
            height = plot_h * value / top
            x = MARGIN + i * group + group * 0.1 + s * bar
            parts.append(
                f'<rect x="{x:.1f}" y="{HEIGHT - MARGIN - height:.1f}" width="{bar:.1f}" height="{height:.1f}" '
                f'fill="{colour}"><title>{escape(name)} {escape(labels[i])}: {value:.4g}</title></rect>'
            )
        parts.append(
            f'<rect x="{WIDTH - MARGIN - 150}" y="{28 + 14 * s}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{WIDTH - MARGIN - 136}" y="{37 + 14 * s}">{escape(name)}</text>'
        )
    for i, label in enumerate(labels):
        x = MARGIN + (i + 0.5) * group
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - MARGIN + 12}" text-anchor="end" '
            f'transform="rotate(-40 {x:.1f} {HEIGHT - MARGIN + 12})">{escape(label)}</text>'
        )
    if threshold is not None:
        y = HEIGHT - MARGIN - plot_h * threshold / top
        parts.append(
            f'<line x1="{MARGIN}" y1="{y:.1f}" x2="{WIDTH - MARGIN}" y2="{y:.1f}" stroke="#e45756" '
            f'stroke-dasharray="4 3"/><text x="{MARGIN + 4}" y="{y - 3:.1f}" fill="#e45756">threshold {threshold:.3g}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _share(values: list[float]) -> list[float]:
    total = sum(values)
    return [v / total for v in values] if total else [0.0 for _ in values]


def write_report(
    directory: Path, result: MonitorResult, statistics: dict[str, Any], settings: Settings, version: int | str
) -> Path:
    """report.md and plots/*.svg in directory; returns report.md's path."""
    window = result.window
    plots = directory / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    scores = result.scores
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    threshold = score_threshold(settings, len(scores))
    shown = result.drifted or [name for name, _ in ranked[:SHOWN]]
    stats = {f["name"]: f for f in statistics["features"]}
    for name in shown:
        feature = stats[name]
        if is_categorical(feature):
            buckets = feature["string_statistics"]["distribution"]["categorical"]["buckets"]
            labels = [str(b["value"]) for b in buckets] + ["(other)"]
        else:
            buckets = feature["numerical_statistics"]["distribution"]["kll"]["buckets"]
            labels = [f"<{b['upper_bound']:.3g}" for b in buckets]
        svg = bars_svg(
            f"{name}: training vs the window" + (f" (drift score {scores[name]:.1f})" if name in scores else ""),
            labels,
            {"training": _share(baseline_counts(feature)), "window": _share(window.features[name].buckets)},
        )
        (plots / f"{_safe(name)}.svg").write_text(svg)
    if ranked:
        (plots / "drift_scores.svg").write_text(
            bars_svg(
                "Drift score per feature (-log10 p)",
                [n for n, _ in ranked],
                {"drift score": [s for _, s in ranked]},
                threshold,
            )
        )
    metrics = metrics_document(result, settings)
    lines = [
        f"# Monitoring report: model v{version}",
        "",
        f"- window: {window.start:%Y-%m-%d %H:%M} to {window.end:%Y-%m-%d %H:%M} UTC",
        f"- requests read: {window.records}, rows: {window.rows}; unreadable requests: {window.unreadable}; "
        f"the project's own requests left out: {window.excluded}",
        f"- violations: {len(result.violations)}",
    ]
    if not result.judged_drift:
        lines.append(f"- drift not judged: {window.rows} rows in the window, fewer than min_rows = {settings.min_rows}")
    if result.labelled or window.labels:
        lines.append(
            f"- ground truth: {result.labelled} labelled requests joined; {window.unknown_labels} label(s) for inference "
            f"ids not in this window; {window.bad_labels} unreadable label line(s)"
        )
    if result.live_metrics:
        lines.append(
            "- model quality on labelled traffic: "
            + ", ".join(f"{k} {v:.4f}" for k, v in sorted(result.live_metrics.items()))
        )
    if result.model_age_days is not None:
        lines.append(f"- model age: {result.model_age_days:.1f} days (max {settings.max_model_age_days})")
    lines.append("")
    if result.violations:
        lines += ["| feature | check | description |", "|---|---|---|"]
        lines += [f"| {v.feature_name} | {v.constraint_check_type} | {v.description} |" for v in result.violations]
        lines.append("")
    if ranked:
        lines += [
            f"## Drift per feature (chi-square test against training; drift above a score of {threshold:.1f})",
            "",
            "![drift scores](plots/drift_scores.svg)",
            "",
        ]
        lines += [f"![{name}](plots/{_safe(name)}.svg)" for name in shown]
        lines += ["", "| feature | drift score | p-value |", "|---|---|---|"]
        lines += [f"| {name} | {score:.2f} | {result.drift_p[name]:.3g} |" for name, score in ranked]
    if window.unreadable_examples:
        lines += ["", "## Unreadable captured requests (first ones)", ""]
        lines += [f"- {example}" for example in window.unreadable_examples]
    if window.bad_label_examples:
        lines += ["", "## Unreadable ground-truth lines (first ones)", ""]
        lines += [f"- {example}" for example in window.bad_label_examples]
    lines += ["", "## Metrics (metrics.json, published to CloudWatch in AWS)", "", "```json"]
    lines += [json.dumps(metrics, indent=2, default=str), "```", ""]
    report = directory / "report.md"
    report.write_text("\n".join(lines))
    return report


def _safe(name: str) -> str:
    """A file name for a column name (columns may hold '/', spaces, anything)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "_"
