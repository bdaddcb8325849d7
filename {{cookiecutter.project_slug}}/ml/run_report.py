"""One self-contained HTML page per run, beside its JSON record: what a reviewer opens.

Everything is inside the file (plots as data URIs, no scripts, no links that must resolve), so it
can be attached to a pull request, uploaded as a CI artifact or logged to MLflow and still read
whole. Written by the orchestrator from files already on disk: no pandas, no matplotlib.
"""

from __future__ import annotations

import base64
import json
import re
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml import atomic

if TYPE_CHECKING:
    from ml.config import Config
    from ml.steps.evaluate import EvaluationResult

PLOTS = (
    "roc_curve.png",
    "confusion_matrix.png",
    "per_class.png",
    "residuals.png",
    "importance.png",
    "slices.png",
    "shap_summary.png",
)
STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1f272d}
table{border-collapse:collapse;margin:.6em 0 1.2em}td,th{border:1px solid #cfd6dc;padding:.25em .6em}
th{background:#f2f4f6;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#1a7f37}.fail{color:#cf222e}.warn{color:#9a6700}figure{display:inline-block;margin:0 1em 1em 0}
img{max-width:520px;border:1px solid #e1e4e8}code{background:#f6f8fa;padding:0 .2em}
"""


def path_for(state_dir: Path, run_id: str) -> Path:
    return state_dir / "runs" / f"{run_id}.html"


def write(state_dir: Path, record: dict[str, Any], path: Path | None = None) -> Path:
    """Write the run's report (beside its record unless told where); returns its path."""
    report_dir = Path(record["paths"]["report"]) if record.get("paths", {}).get("report") else None
    evaluation = _json(report_dir / "evaluation.json") if report_dir else {}
    parts = [
        _header(record),
        _table("Steps", ["step", "status", "seconds", "detail"], _steps(record)),
        _metrics(record),
        _checks(record),
        _slices(evaluation),
        _importance(record),
        _shap(report_dir),
        _plots(report_dir),
        _markdown_file("Model card", report_dir / "model_card.md" if report_dir else None),
        _monitoring(state_dir),
    ]
    title = f"run {record['run_id']}: {record.get('status')}"
    page = (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n"
    )
    path = path or path_for(state_dir, record["run_id"])
    atomic.write_text(path, page)
    return path


def write_evaluation(config: Config, result: EvaluationResult) -> Path:
    """`make evaluate` on its own (CI runs the steps one job each): the evaluation's part of the report,
    as report.html beside evaluation.json."""
    record = {
        "run_id": result.job_name,
        "status": "gate passed" if result.passed else "gate failed",
        "env": config.env,
        "metrics": result.metrics,
        "champion": {"version": result.champion_version, "metrics": result.champion_metrics}
        if result.champion_metrics
        else {},
        "evaluation": {"checks": result.checks, "baselines": result.baselines, "importance": result.importance},
        "paths": {"report": result.report_dir},
    }
    return write(config.state_dir, record, Path(result.report_dir) / "report.html")


def _json(path: Path) -> dict[str, Any]:
    try:
        found: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found


def _number(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else escape(str(value))


def _table(title: str, columns: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(rows_cell(cell) for cell in row) + "</tr>" for row in rows)
    return f"<h2>{escape(title)}</h2><table><tr>{head}</tr>{body}</table>"


def rows_cell(cell: str) -> str:
    # Cells are escaped where they are made; a number is right-aligned.
    numeric = re.fullmatch(r"[-+]?[\d.]+(e[-+]?\d+)?|nan|-", cell) is not None
    return f"<td class=n>{cell}</td>" if numeric else f"<td>{cell}</td>"


def _header(record: dict[str, Any]) -> str:
    status = str(record.get("status"))
    css = {"succeeded": "pass", "gate passed": "pass", "rejected": "warn"}.get(status, "fail")
    model = record.get("model") or {}
    facts = [
        ("environment", record.get("env")),
        ("started", record.get("started_at")),
        ("seconds", record.get("seconds")),
        ("model version", model.get("version")),
        ("approval", model.get("approval")),
        ("serving", model.get("promoted")),
        ("fingerprint", model.get("fingerprint")),
        ("data hash", (record.get("data") or {}).get("hash")),
        ("parameters", ", ".join(f"{k}={v}" for k, v in (record.get("params") or {}).items())),
    ]
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in facts if v not in (None, ""))
    error = f"<p class=fail><b>error:</b> {escape(record['error'])}</p>" if record.get("error") else ""
    return f"<h1>{escape(record['run_id'])}: <span class={css}>{escape(status)}</span></h1>{error}<table>{rows}</table>"


def _steps(record: dict[str, Any]) -> list[list[str]]:
    return [
        [escape(s["name"]), escape(s["status"]), f"{s['seconds']:.2f}", escape(s.get("detail", ""))]
        for s in record.get("steps", [])
    ]


def _metrics(record: dict[str, Any]) -> str:
    candidate = record.get("metrics") or {}
    columns: list[tuple[str, dict[str, Any]]] = [("candidate", candidate)]
    champion = record.get("champion") or {}
    if champion.get("metrics"):
        columns.append((f"champion v{champion.get('version')}", champion["metrics"]))
    baselines = (record.get("evaluation") or {}).get("baselines") or {}
    columns += [(f"{role} baseline", baselines[role]) for role in ("simple", "trivial") if role in baselines]
    rows = [[escape(name), *(_number(values.get(name, "-")) for _, values in columns)] for name in sorted(candidate)]
    return _table("Metrics (held-out test set)", ["metric", *(title for title, _ in columns)], rows)


def _checks(record: dict[str, Any]) -> str:
    rows = []
    for check in (record.get("evaluation") or {}).get("checks", []):
        relation = ">=" if check.get("higher_is_better", True) else "<="
        if check.get("not_judged"):
            value, result = "-", f"<span class=warn>not judged</span>: {escape(check['not_judged'])}"
        else:
            passed = check["passed"]
            value, result = _number(check["value"]), f"<span class={'pass' if passed else 'fail'}>"
            result += ("pass" if passed else "fail") + "</span>"
        rows.append([escape(check["name"]), value, escape(f"{relation} {check['required']:.4f}"), result])
    return _table("Gate", ["check", "value", "required", "result"], rows)


def _slices(evaluation: dict[str, Any]) -> str:
    out = []
    for name, cut in (evaluation.get("slices") or {}).items():
        groups = cut.get("groups", [])
        metric_names = sorted({m for g in groups for m in g.get("metrics", {})})
        rows = [
            [
                escape(str(g["group"])),
                str(g["rows"]),
                *(_number(g["metrics"].get(m) if g["metrics"].get(m) is not None else "-") for m in metric_names),
            ]
            for g in groups
        ]
        out.append(_table(f"Slice {name} ({cut.get('column')})", ["group", "rows", *metric_names], rows))
    return "".join(out)


def _importance(record: dict[str, Any]) -> str:
    ranked = (record.get("evaluation") or {}).get("importance") or []
    rows = [[escape(i["feature"]), f"{i['mean']:+.4f}", f"{i.get('std', 0.0):.4f}"] for i in ranked[:15]]
    return _table("Permutation importance (drop in the primary metric)", ["feature", "mean", "std"], rows)


def _shap(report_dir: Path | None) -> str:
    """The features that decided a few predictions (ml/explain.py), or why there are none."""
    from ml import explain

    if report_dir is None:
        return ""
    found = _json(report_dir / explain.RESULT)
    if not found:
        if explain.switched_off():
            why = "switched off (MLOPS_EXPLAIN=off)"
        elif not explain.installed():
            why = explain.install_hint()
        else:
            why = "none for this run: no candidate was evaluated"
        return f"<h2>SHAP</h2><p>{escape(why)}</p>"
    if found.get("skipped"):
        return f"<h2>SHAP</h2><p>{escape(found['skipped'])}</p>"
    rows = [
        [str(example["row"]), escape(example["explains"]), f"{example['base_value']:.4f}", f"{example['output']:.4f}",
         "<br>".join(f"{escape(t['feature'])} = {escape(str(t['value']))}: {t['shap']:+.4f}" for t in example["top"])]
        for example in found["examples"]
    ]  # fmt: skip
    title = f"SHAP ({found['explainer']}): what decided the first {len(rows)} test predictions"
    table = _table(title, ["test row", "explains", "base value", "prediction", "largest pushes"], rows)
    ranked = ", ".join(f"{escape(f['feature'])} {f['mean_abs']:.4f}" for f in found["features"][:5])
    return f"{table}<p>Mean |SHAP| over {found['rows']} test rows, of {escape(found['explains'])}: {ranked}</p>"


def _data_uri(path: Path) -> str:
    kind = "image/svg+xml" if path.suffix == ".svg" else "image/png"
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"


def _plots(report_dir: Path | None) -> str:
    if report_dir is None:
        return ""
    figures = [
        f"<figure><img alt='{escape(name)}' src='{_data_uri(report_dir / name)}'><figcaption>{escape(name)}"
        "</figcaption></figure>"
        for name in PLOTS
        if (report_dir / name).is_file()
    ]
    return "<h2>Plots</h2>" + "".join(figures) if figures else ""


def _render_markdown(text: str, base: Path) -> str:
    from markdown_it import MarkdownIt  # rich's own Markdown parser, already installed

    html = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)

    def inline(match: re.Match[str]) -> str:
        source = base / match.group(1)
        return f'src="{_data_uri(source)}"' if source.is_file() and base in source.resolve().parents else match.group(0)

    # The monitoring report's plots are files beside it: embedded, so the page stands alone.
    return re.sub(r'src="([^":]+\.(?:svg|png))"', inline, html)


def _markdown_file(title: str, path: Path | None) -> str:
    if path is None or not path.is_file():
        return ""
    return f"<h2>{escape(title)}</h2>" + _render_markdown(path.read_text(), path.parent.resolve())


def _monitoring(state_dir: Path) -> str:
    """The latest drift and quality report, when `make monitor` has written one."""
    reports = sorted((state_dir / "monitoring").glob("*/report.md"))
    if not reports:
        return ""
    latest = reports[-1]
    return _markdown_file(f"Monitoring (latest: {latest.parent.name})", latest)
