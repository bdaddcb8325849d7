"""The local monitor: shifted traffic raises violations, clean traffic none, bad lines are counted."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml import monitor, schema
from ml.steps.monitor import write_report
from ml.train import baseline
from tests.data_factory import example_frame

FEATURES = list(schema.FEATURES)
FRAME = example_frame()
# The same kind of split the data step makes: the baseline from one part, live traffic from the other.
TRAIN = FRAME.sample(frac=0.75, random_state=42)
LIVE = FRAME.drop(TRAIN.index)
STATISTICS, CONSTRAINTS = baseline(TRAIN, FEATURES)
STD = {f["name"]: f["numerical_statistics"]["std_dev"] for f in STATISTICS["features"]}


def record(body: str, content_type: str = "text/csv", encoding: str | None = None) -> str:
    data = {"observedContentType": content_type, "mode": "INPUT", "data": body, "encoding": encoding or "CSV"}
    output = {"observedContentType": "application/json", "mode": "OUTPUT", "data": "{}", "encoding": "JSON"}
    return json.dumps(
        {
            "captureData": {"endpointInput": data, "endpointOutput": output},
            "eventMetadata": {"eventId": "e", "inferenceTime": "2026-11-22T00:00:00.000000Z"},
            "eventVersion": "0",
        }
    )


def write_capture(root: Path, frame: pd.DataFrame, extra_lines: tuple[str, ...] = ()) -> Path:
    directory = root / "tc-local" / "AllTraffic" / "2026" / "11" / "22" / "14"
    directory.mkdir(parents=True)
    lines = [
        record(frame.iloc[i : i + 10][FEATURES].to_csv(header=False, index=False)) for i in range(0, len(frame), 10)
    ]
    (directory / "capture-1.jsonl").write_text("\n".join([*lines, *extra_lines]) + "\n")
    return root


def run(root: Path, threshold: float = 0.2, min_rows: int = 50) -> monitor.MonitorResult:
    return monitor.check(monitor.read_capture(root, FEATURES), STATISTICS, CONSTRAINTS, threshold, min_rows)


def test_clean_traffic_raises_no_violation(tmp_path: Path) -> None:
    result = run(write_capture(tmp_path, LIVE))
    assert result.rows == len(LIVE)
    assert result.violations == []
    assert max(result.psi.values()) < 0.2


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shifted=st.sets(st.sampled_from(FEATURES), min_size=1, max_size=5),
    size=st.floats(min_value=1.0, max_value=4.0),
    direction=st.sampled_from([-1.0, 1.0]),
)
def test_shifted_features_are_flagged_and_only_those(
    tmp_path_factory: pytest.TempPathFactory, shifted: set[str], size: float, direction: float
) -> None:
    live = LIVE.copy()
    for name in shifted:
        live[name] = live[name] + direction * size * STD[name]
    result = run(write_capture(tmp_path_factory.mktemp("capture"), live))
    assert set(result.drifted) == shifted


def test_too_few_rows_are_not_judged_for_drift(tmp_path: Path) -> None:
    live = LIVE.head(20).copy()
    live["mean_radius"] += 5 * STD["mean_radius"]
    result = run(write_capture(tmp_path, live))
    assert not result.judged_drift and result.drifted == [] and result.psi == {}


def json_record(instances: list[dict[Any, Any]]) -> str:
    return record(json.dumps({"instances": instances}), "application/json", "JSON")


def test_missing_column_type_mismatch_and_completeness(tmp_path: Path) -> None:
    rows = LIVE[FEATURES].head(60).to_dict(orient="records")
    for row in rows:
        row.pop("mean_area")  # never sent
    rows[0]["mean_texture"] = "abc"  # not a number
    rows[1]["worst_symmetry"] = None  # missing value
    directory = tmp_path / "cap"
    directory.mkdir()
    (directory / "c.jsonl").write_text(json_record(rows) + "\n")
    checks = {(v.feature_name, v.constraint_check_type) for v in run(tmp_path).violations}
    assert ("mean_area", "missing_column_check") in checks
    assert ("mean_texture", "data_type_check") in checks
    assert ("worst_symmetry", "completeness_check") in checks


def test_malformed_lines_are_reported_counted_and_skipped(tmp_path: Path) -> None:
    bad = (
        "{not json",
        json.dumps({"captureData": {}}),
        record("1,2,3\n"),
        record(base64.b64encode(b"\xff\xfe").decode(), encoding="BASE64"),
        record("x", "application/x-npy", "BASE64"),
    )
    result = run(write_capture(tmp_path, LIVE, bad))
    assert result.rows == len(LIVE)  # every good line still counted
    assert len(result.malformed) == len(bad)
    assert result.malformed[0].startswith("tc-local/AllTraffic/2026/11/22/14/capture-1.jsonl:")
    assert "CSV row has 3 values" in " ".join(result.malformed)


def test_report_and_plots_match_the_violations_file(tmp_path: Path) -> None:
    live = LIVE.copy()
    live["worst_area"] += 2 * STD["worst_area"]
    capture = monitor.read_capture(write_capture(tmp_path / "capture", live), FEATURES)
    result = monitor.check(capture, STATISTICS, CONSTRAINTS, 0.2, 50)
    report_dir = tmp_path / "report"
    report_dir.mkdir()
    (report_dir / "constraint_violations.json").write_text(json.dumps(monitor.violations_document(result)))
    write_report(report_dir, result, STATISTICS, capture, 1, 0.2)
    violations = json.loads((report_dir / "constraint_violations.json").read_text())["violations"]
    report = (report_dir / "report.md").read_text()
    assert f"- violations: {len(violations)}" in report
    for violation in violations:
        assert (
            f"| {violation['feature_name']} | {violation['constraint_check_type']} | {violation['description']} |"
            in report
        )
    assert f"| worst_area | {result.psi['worst_area']:.4f} |" in report
    for plot in ("psi.png", "worst_area.png"):
        assert (report_dir / "plots" / plot).read_bytes().startswith(b"\x89PNG")


def test_the_baseline_uses_model_monitor_formats() -> None:
    assert STATISTICS["dataset"]["item_count"] == len(TRAIN)
    feature = STATISTICS["features"][0]
    assert feature["inferred_type"] == "Fractional"
    assert set(feature["numerical_statistics"]) >= {"common", "mean", "sum", "std_dev", "min", "max", "distribution"}
    assert CONSTRAINTS["monitoring_config"]["evaluate_constraints"] == "Enabled"
