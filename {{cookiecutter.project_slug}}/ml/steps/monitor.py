"""Monitor step: check captured traffic against the deployed model's baseline; report with plots."""

from __future__ import annotations

import json
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml import atomic, monitor, schema
from ml.backends.base import ArtifactStore
from ml.context import Context
from ml.errors import PipelineError

SHOWN = 4  # features plotted when nothing drifted, so the report always has pictures


@dataclass(frozen=True)
class MonitorReport:
    result: monitor.MonitorResult
    report_dir: Path
    version: int

    @property
    def violations_file(self) -> Path:
        return self.report_dir / "constraint_violations.json"


BASELINE_FILES = ("statistics", "constraints")


def extract_baseline(artifacts: ArtifactStore, model_uri: str, directory: Path) -> dict[str, Path]:
    """The baseline files train.py packed into model.tar.gz, unpacked into directory.

    Empty for a model from before baselines. The register step stores them as artifacts of their
    own; the monitor reads them.
    """
    tarball = artifacts.get(model_uri, directory / "model.tar.gz")
    with tarfile.open(tarball) as archive:
        members = {name: f"baseline/{name}.json" for name in BASELINE_FILES}
        if not set(members.values()) <= set(archive.getnames()):
            return {}
        for member in members.values():
            archive.extract(member, directory, filter="data")
    return {name: directory / member for name, member in members.items()}


def baseline_of(ctx: Context, version: int) -> tuple[dict[str, Any], dict[str, Any]]:
    model = ctx.backends.registry.get(version)
    with tempfile.TemporaryDirectory() as scratch:
        files = extract_baseline(ctx.backends.artifacts, model.package.model_uri, Path(scratch))
        if not files:
            raise PipelineError(f"model v{version} carries no monitoring baseline (it predates baselines); retrain it")
        return json.loads(files["statistics"].read_text()), json.loads(files["constraints"].read_text())


def run(ctx: Context) -> MonitorReport:
    version = ctx.backends.desired_state.read()
    if version is None:
        raise PipelineError("nothing is deployed in this environment, so there is no traffic to monitor")
    statistics, constraints = baseline_of(ctx, version)
    settings = ctx.config.monitor
    with tempfile.TemporaryDirectory() as scratch, ctx.progress("reading captured requests"):
        capture = monitor.read_capture(ctx.backends.endpoint.capture(Path(scratch)), list(schema.FEATURES))
    if capture.records == 0 and not capture.malformed:
        raise PipelineError(
            f"no captured requests for {ctx.backends.endpoint.name}: send traffic first (make drift-demo locally). "
            "Serverless endpoints cannot capture data; see README, Monitoring and drift."
        )
    result = monitor.check(capture, statistics, constraints, settings.drift_threshold, settings.min_rows)
    report_dir = ctx.config.state_dir / "monitoring" / datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    report_dir.mkdir(parents=True)
    atomic.write_text(
        report_dir / "constraint_violations.json", json.dumps(monitor.violations_document(result), indent=2)
    )
    write_report(report_dir, result, statistics, capture, version, settings.drift_threshold)
    return MonitorReport(result, report_dir, version)


def write_report(
    report_dir: Path,
    result: monitor.MonitorResult,
    statistics: dict[str, Any],
    capture: monitor.Capture,
    version: int,
    threshold: float,
) -> None:
    from ml import plots  # matplotlib only when a report is drawn

    ranked = sorted(result.psi.items(), key=lambda item: item[1], reverse=True)
    shown = result.drifted or [name for name, _ in ranked[:SHOWN]]
    plots_dir = report_dir / "plots"
    plots_dir.mkdir()
    stats = {f["name"]: f for f in statistics["features"]}
    for name in shown:
        live = monitor.column(capture.rows, name).values
        plots.drift(name, stats[name], live, result.psi.get(name), threshold, plots_dir / f"{name}.png")
    if ranked:
        plots.psi_bars(ranked, threshold, plots_dir / "psi.png")
    lines = [
        f"# Data-quality report: model v{version}",
        "",
        f"- requests read: {result.records}, rows: {result.rows}",
        f"- malformed capture lines skipped: {len(result.malformed)}",
        f"- violations: {len(result.violations)}"
        + ("" if result.judged_drift else f" (too few rows to judge drift; {result.rows} read)"),
        "",
    ]
    if result.violations:
        lines += ["| feature | check | description |", "|---|---|---|"]
        lines += [f"| {v.feature_name} | {v.constraint_check_type} | {v.description} |" for v in result.violations]
        lines.append("")
    if ranked:
        lines += ["## Drift per feature (PSI)", "", "![PSI per feature](plots/psi.png)", ""]
        lines += [f"![{name}](plots/{name}.png)" for name in shown]
        lines += ["", "| feature | PSI |", "|---|---|"] + [f"| {name} | {score:.4f} |" for name, score in ranked]
    if result.malformed:
        lines += ["", "## Malformed capture lines (skipped)", ""] + [f"- {item}" for item in result.malformed[:50]]
    atomic.write_text(report_dir / "report.md", "\n".join(lines) + "\n")
