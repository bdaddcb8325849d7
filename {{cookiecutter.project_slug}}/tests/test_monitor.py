"""The monitor: drift without false alarms, unreadable traffic, ground truth, age, the report, memory.

Drift is judged on the project's own data (its schema, whatever it holds) and on a synthetic data
set with numbers, categories and gaps (tests/data_factory.py); the monitor's mechanics (windows,
unreadable lines, labels, the report) on the synthetic one, so every test holds for any project.
"""

from __future__ import annotations

import base64
import json
import random
import tracemalloc
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml import monitor
from ml.monitor_job import main as job_main
from ml.monitor_report import write_report
from ml.schema import Feature, Kind, Schema, Task
from ml.train import baseline
from tests.data_factory import csv_line, example_frame, project_schema, schema_frame, synthetic_schema


@dataclass(frozen=True)
class Case:
    """A data set split as the data step splits it: the baseline from one part, live traffic from the other."""

    schema: Schema
    train: pd.DataFrame
    live: pd.DataFrame
    statistics: dict[str, Any]
    constraints: dict[str, Any]

    @property
    def features(self) -> list[str]:
        return self.schema.names

    @property
    def settings(self) -> monitor.Settings:
        # A small data set (wine's 178 rows leave 44 held out) holds fewer live rows than the
        # monitor's minimum window; judge what it has rather than asserting on too small a window.
        return monitor.Settings(min_rows=min(monitor.Settings().min_rows, len(self.live)))


def make_case(contract: Schema, frame: pd.DataFrame) -> Case:
    train = frame.sample(frac=0.75, random_state=42)
    live = frame.drop(train.index)
    statistics, constraints = baseline(train, contract.as_dict())
    return Case(contract, train, live, statistics, constraints)


PROJECT = make_case(project_schema(), example_frame())
SYNTHETIC = make_case(synthetic_schema(Task.BINARY), schema_frame(synthetic_schema(Task.BINARY), 800, seed=3))
CASES = [pytest.param(PROJECT, id="project-data"), pytest.param(SYNTHETIC, id="synthetic-categories-and-gaps")]
# The mechanics below run on the synthetic case, which has every kind of feature.
FEATURES = SYNTHETIC.features
LIVE = SYNTHETIC.live
STATISTICS, CONSTRAINTS = SYNTHETIC.statistics, SYNTHETIC.constraints
NOW = datetime(2026, 11, 22, 14, 30, tzinfo=UTC)
SETTINGS = monitor.Settings()


def shifted(case: Case, frame: pd.DataFrame, names: set[str], size: float, direction: float = 1.0) -> pd.DataFrame:
    """Each named feature moved: a number by size standard deviations, a category or a two-valued
    number onto its rarest value."""
    moved = frame.copy()
    stats = {f["name"]: f for f in case.statistics["features"]}
    for name in names:
        feature = case.schema.feature(name)
        counts = case.train[name].value_counts()
        if feature.kind is Kind.NUMERIC and len(counts) <= 2:
            # A two-valued number (diabetes' sex) cannot move by a spread: a shift is its mix changing.
            moved[name] = counts.index[-1]
        elif feature.kind is Kind.NUMERIC:
            spread = stats[name]["numerical_statistics"]["std_dev"] or 1.0
            moved[name] = moved[name] + direction * size * spread
        else:
            buckets = stats[name]["string_statistics"]["distribution"]["categorical"]["buckets"]
            rarest = min(buckets, key=lambda b: b["count"])["value"]
            moved[name] = moved[name].where(moved[name].isna(), rarest)
    return moved


def record(
    body: str,
    content_type: str = "text/csv",
    encoding: str | None = None,
    inference_id: str | None = None,
    answer: str = '{"predictions": []}',
    when: datetime = NOW,
) -> str:
    data = {"observedContentType": content_type, "mode": "INPUT", "data": body, "encoding": encoding or "CSV"}
    output = {"observedContentType": "application/json", "mode": "OUTPUT", "data": answer, "encoding": "JSON"}
    metadata = {"eventId": "e", "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    if inference_id:
        metadata["inferenceId"] = inference_id
    return json.dumps({"captureData": {"endpointInput": data, "endpointOutput": output}, "eventMetadata": metadata,
                       "eventVersion": "0"})  # fmt: skip


def batches(frame: pd.DataFrame, size: int = 10, features: list[str] | None = None) -> list[str]:
    names = features or FEATURES
    rows = [csv_line(row, names) for _, row in frame.iterrows()]
    return [record("\n".join(rows[i : i + size]) + "\n") for i in range(0, len(rows), size)]


def window_of(lines: list[str], start: datetime = NOW - timedelta(hours=1), case: Case = SYNTHETIC) -> monitor.Window:
    window = monitor.new_window(case.statistics, start, NOW + timedelta(minutes=1))
    monitor.add_capture(window, "capture.jsonl", lines)
    return window


def run(lines: list[str], case: Case = SYNTHETIC, **checks: Any) -> monitor.MonitorResult:
    settings_ = checks.pop("settings", case.settings)
    return monitor.check(window_of(lines, case=case), case.statistics, case.constraints, settings_, **checks)


@pytest.mark.parametrize("case", CASES)
def test_clean_traffic_raises_no_violation(case: Case) -> None:
    result = run(batches(case.live, features=case.features), case)
    assert result.window.rows == len(case.live) and result.judged_drift
    assert result.violations == []


@pytest.mark.parametrize("case", CASES)
def test_clean_traffic_at_the_minimum_window_raises_under_one_percent_false_alarms(case: Case) -> None:
    # The finding: PSI flagged 200 of 200 clean samples of 50 rows. Now 200 windows of min_rows
    # clean held-out rows each (a fixed seed) must raise a drift alarm in fewer than 1 % of them.
    chooser = random.Random(7)
    rows = [csv_line(row, case.features) for _, row in case.live.iterrows()]
    alarms = 0
    for _ in range(200):
        sample = chooser.sample(rows, min(SETTINGS.min_rows, len(rows)))
        result = run([record(line + "\n") for line in sample], case, settings=monitor.Settings(min_rows=len(sample)))
        assert result.judged_drift
        alarms += bool(result.drifted)
    assert alarms / 200 < 0.01, f"{alarms} false alarms in 200 clean windows"


def movable(case: Case) -> list[str]:
    """Features a shift changes: numbers that vary, categories with more than one value."""
    stats = {f["name"]: f for f in case.statistics["features"]}
    return [
        name for name in case.features
        if ("numerical_statistics" in stats[name] and stats[name]["numerical_statistics"]["std_dev"] > 0)
        or ("string_statistics" in stats[name] and stats[name]["string_statistics"]["distinct_count"] > 1)
    ]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), size=st.floats(min_value=1.5, max_value=4.0), direction=st.sampled_from([-1.0, 1.0]))
def test_shifted_features_are_flagged_and_only_those(
    case: Case, data: st.DataObject, size: float, direction: float
) -> None:
    names = data.draw(st.sets(st.sampled_from(movable(case)), min_size=1, max_size=4))
    live = shifted(case, case.live, names, size, direction)
    assert set(run(batches(live, features=case.features), case).drifted) == names


def test_a_jump_in_missing_values_is_drift_where_gaps_are_allowed() -> None:
    live = LIVE.copy()
    live.loc[live.index[: len(live) // 2], "weight"] = np.nan  # far more gaps than training had
    assert run(batches(live)).drifted == ["weight"]


def test_an_unseen_category_is_drift_not_an_error() -> None:
    live = LIVE.copy()
    live["colour"] = "purple"
    result = run(batches(live))
    assert result.drifted == ["colour"] and result.window.unreadable == 0


def test_a_window_too_small_is_said_so_not_passed() -> None:
    live = shifted(SYNTHETIC, LIVE.head(20), {"length"}, 5)
    result = run(batches(live))
    assert not result.judged_drift and result.drifted == [] and result.drift_p == {}
    assert monitor.metrics_document(result, SETTINGS)["judged_drift"] is False


def json_record(instances: list[dict[Any, Any]]) -> str:
    return record(json.dumps({"instances": instances}), "application/json", "JSON")


def test_missing_column_type_mismatch_and_completeness_with_counts() -> None:
    rows = LIVE[FEATURES].head(60).astype(object).where(LIVE[FEATURES].head(60).notna(), None).to_dict(orient="records")
    for row in rows:
        row.pop("grade")  # never sent
    rows[0]["weight"] = "abc"  # not a number
    rows[1]["length"] = None  # missing value where the schema allows none
    result = run([json_record(rows)])
    checks = {(v.feature_name, v.constraint_check_type): v.description for v in result.violations}
    assert ("grade", "missing_column_check") in checks
    assert ("weight", "data_type_check") in checks
    # The finding: "Completeness 1.0000 is below the baseline's 1.0000". Now the count is said.
    assert checks[("length", "completeness_check")].startswith("1 of 60 values are missing")


def test_unreadable_lines_are_counted_and_a_window_of_them_is_a_violation() -> None:
    bad = [
        "{not json",
        json.dumps({"captureData": {}}),
        record("1,2,3\n"),
        record(base64.b64encode(b"\xff\xfe").decode(), encoding="BASE64"),
        record("x", "application/x-npy", "BASE64"),
        "\x00\x01binary",
    ]
    mixed = run([*batches(LIVE), *bad])
    assert mixed.window.rows == len(LIVE) and mixed.window.unreadable == len(bad)
    assert "CSV row has 3 values" in " ".join(mixed.window.unreadable_examples)
    # The finding: a window where nothing could be read said "no violations". Now it is one.
    only_bad = run(bad * 10)
    assert [v.constraint_check_type for v in only_bad.violations] == ["unreadable_traffic_check"]
    assert "60 of 60 captured requests could not be read" in only_bad.violations[0].description


def test_the_projects_own_requests_are_left_out() -> None:
    lines = [*batches(LIVE), record("1,2\n", inference_id=f"{monitor.SMOKE_TEST_ID}bad-row")]
    result = run(lines)
    assert result.window.excluded == 1 and result.violations == []


def test_only_the_window_is_read() -> None:
    old = [record(line, when=NOW - timedelta(days=3)) for line in ["1,2\n"] * 5]
    result = run([*batches(LIVE), *old])
    assert result.window.unreadable == 0 and result.window.rows == len(LIVE)


def test_memory_follows_the_window_not_the_capture(tmp_path: Path) -> None:
    # The finding: 1 GB of memory for 77 MB of capture. Counts are kept, rows are not.
    lines = batches(LIVE) * 60  # about 8,600 rows
    tracemalloc.start()
    window = window_of(lines)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    text = sum(len(line) for line in lines)
    assert window.rows == len(LIVE) * 60
    assert peak < text / 4, f"{peak} bytes held for {text} bytes of capture"


def answered(probability: float) -> str:
    label = int(probability >= 0.5)
    return json.dumps({"predictions": [{"label": label, "probability": probability}]})


def labelled_traffic(flip_every: int = 0) -> tuple[list[str], list[str]]:
    """One request per row with its InferenceId; the labels that arrive later (some changed)."""
    capture, labels = [], []
    for number, (_, row) in enumerate(LIVE.iterrows()):
        truth = int(row["target"] == "yes")  # the synthetic binary label, as 0/1
        probability = 0.9 if truth else 0.1  # a model that is right on every row
        capture.append(record(csv_line(row, FEATURES) + "\n", inference_id=f"r{number}", answer=answered(probability)))
        label = 1 - truth if flip_every and number % flip_every == 0 else truth
        labels.append(json.dumps({"groundTruthData": {"data": str(label), "encoding": "CSV"},
                                  "eventMetadata": {"eventId": f"r{number}"}, "eventVersion": "0"}))  # fmt: skip
    return capture, labels


def quality(capture: list[str], labels: list[str]) -> monitor.MonitorResult:
    window = window_of(capture)
    monitor.add_ground_truth(window, "labels.jsonl", labels)
    return monitor.check(window, STATISTICS, CONSTRAINTS, SETTINGS, {"accuracy": 0.97}, NOW - timedelta(days=1), NOW)


def test_model_quality_on_labelled_traffic_passes_a_healthy_model() -> None:
    result = quality(*labelled_traffic())
    assert result.labelled == len(LIVE) and result.live_metrics["accuracy"] == 1.0
    assert result.live_metrics["roc_auc"] == 1.0
    assert [v for v in result.violations if v.constraint_check_type == "model_quality_check"] == []


def test_model_quality_catches_a_drop_on_later_labels() -> None:
    result = quality(*labelled_traffic(flip_every=3))
    drops = [v for v in result.violations if v.constraint_check_type == "model_quality_check"]
    assert len(drops) == 1 and f"accuracy on {len(LIVE)} labelled requests" in drops[0].description


def test_bad_labels_and_unknown_ids_are_counted_never_a_crash() -> None:
    capture, labels = labelled_traffic()
    extra = [
        "not json",
        json.dumps({"groundTruthData": {"data": " ", "encoding": "CSV"}, "eventMetadata": {"eventId": "r1"}}),
        json.dumps({"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "never-sent"}}),
    ]
    window = window_of(capture)
    monitor.add_ground_truth(window, "labels.jsonl", [*labels, *extra])
    assert window.bad_labels == 2 and window.unknown_labels == 1


def test_a_model_past_its_age_is_a_violation() -> None:
    old = datetime(2026, 1, 1, tzinfo=UTC)
    result = monitor.check(window_of(batches(LIVE)), STATISTICS, CONSTRAINTS, SETTINGS, None, old, NOW)
    ages = [v for v in result.violations if v.constraint_check_type == "model_age_check"]
    assert len(ages) == 1 and result.model_age_days is not None and result.model_age_days > SETTINGS.max_model_age_days


def test_the_job_writes_the_report_plots_and_violations_it_found(tmp_path: Path) -> None:
    live = shifted(SYNTHETIC, LIVE, {"length"}, 2)
    capture = tmp_path / "capture"
    hour = capture / NOW.strftime("%Y/%m/%d/%H")
    hour.mkdir(parents=True)
    (hour / "30-00-000-x.jsonl").write_text("\n".join(batches(live)) + "\n")
    root = tmp_path / "processing"
    for name, document in (("statistics", STATISTICS), ("constraints", CONSTRAINTS)):
        (root / "input" / name).mkdir(parents=True)
        (root / "input" / name / f"{name}.json").write_text(json.dumps(document))
    end = (NOW + timedelta(minutes=1)).isoformat()
    assert job_main(["--root", str(root), "--capture", str(capture), "--end", end, "--version", "3"]) == 0
    output = root / "output" / "monitoring"
    violations = json.loads((output / "constraint_violations.json").read_text())["violations"]
    assert [v["feature_name"] for v in violations] == ["length"]
    report = (output / "report.md").read_text()
    assert f"- violations: {len(violations)}" in report
    for violation in violations:
        assert (
            f"| {violation['feature_name']} | {violation['constraint_check_type']} | {violation['description']} |"
            in report
        )
    for plot in ("drift_scores.svg", "length.svg"):
        assert (output / "plots" / plot).read_text().startswith("<svg")
    assert json.loads((output / "metrics.json").read_text())["drift"] == 1


def test_a_column_name_any_file_system_refuses_still_gets_its_plot(tmp_path: Path) -> None:
    odd = "od280/od315 of diluted wines"  # scikit-learn's own wine data names a column so
    frame = SYNTHETIC.train.rename(columns={"length": odd})
    contract = SYNTHETIC.schema.as_dict()
    contract["features"][0]["name"] = odd
    statistics, _ = baseline(frame, contract)
    window = monitor.new_window(statistics, NOW - timedelta(hours=1), NOW)
    result = monitor.MonitorResult(window, [], {odd: 1e-9, "colour": 1e-9}, True, {}, 0, None)
    write_report(tmp_path, result, statistics, SETTINGS, 1)
    assert (tmp_path / "plots" / "od280_od315_of_diluted_wines.svg").is_file()
    assert (tmp_path / "plots" / "colour.svg").read_text().count("(other)") >= 1


def test_the_baseline_uses_model_monitor_formats() -> None:
    assert STATISTICS["dataset"]["item_count"] == len(SYNTHETIC.train)
    kinds = {f["name"]: f["inferred_type"] for f in STATISTICS["features"]}
    assert kinds == {"length": "Fractional", "weight": "Fractional", "colour": "String", "grade": "String"}
    feature = STATISTICS["features"][0]
    assert set(feature["numerical_statistics"]) >= {"common", "mean", "sum", "std_dev", "min", "max", "distribution"}
    colour = STATISTICS["features"][2]["string_statistics"]["distribution"]["categorical"]["buckets"]
    assert [b["value"] for b in colour] == ["blue, dark", "green", "red"]
    assert [f["completeness"] for f in CONSTRAINTS["features"]] == [1.0, 0.0, 1.0, 0.0]
    assert CONSTRAINTS["monitoring_config"]["evaluate_constraints"] == "Enabled"


def test_training_and_traffic_bucket_a_value_on_an_edge_alike() -> None:
    feature = STATISTICS["features"][0]
    lowers = monitor.lower_bounds(feature)
    counts = [0.0] * len(lowers)
    for value in SYNTHETIC.train[feature["name"]]:
        counts[monitor.bucket_of(float(value), lowers)] += 1
    assert counts == [b["count"] for b in feature["numerical_statistics"]["distribution"]["kll"]["buckets"]]


@pytest.mark.parametrize("hours", [1, 25])
def test_the_window_spans_the_hour_folders_data_capture_writes(hours: int) -> None:
    start = NOW - timedelta(hours=hours)
    folders = list(monitor.hours(start, NOW))
    assert folders[0] == start.strftime("%Y/%m/%d/%H") and folders[-1] == NOW.strftime("%Y/%m/%d/%H")
    assert len(folders) == hours + 1


def test_a_change_in_the_mix_of_a_two_valued_number_is_drift() -> None:
    # A 0/1 flag's deciles fold into one bucket, where no change of its mix can show; the baseline
    # keeps one bucket per value for a number with few values (diabetes' sex column found it).
    contract = Schema(
        label="y", task=Task.BINARY, features=(Feature("flag", Kind.NUMERIC, minimum=0.0, maximum=1.0),), classes=(0, 1)
    )
    # diabetes' mix: 176 and 156, so no decile falls between the two values
    train = pd.DataFrame({"flag": [0.0] * 176 + [1.0] * 156, "y": [0, 1] * 166})
    statistics, constraints = baseline(train, contract.as_dict())
    case = Case(contract, train, train.sample(200, random_state=0), statistics, constraints)
    assert run(batches(case.live, features=["flag"]), case).drifted == []
    mixed = pd.DataFrame({"flag": [1.0] * 180 + [0.0] * 20})
    assert run(batches(mixed, features=["flag"]), case).drifted == ["flag"]


# ---- a batch's input (the scheduled batch's drift step, infra/components/batch_schedule.py) ----


def processing_root(tmp_path: Path, case: Case) -> Path:
    root = tmp_path / "processing"
    for name, document in (("statistics", case.statistics), ("constraints", case.constraints)):
        (root / "input" / name).mkdir(parents=True)
        (root / "input" / name / f"{name}.json").write_text(json.dumps(document))
    return root


def landed(folder: Path, case: Case, frame: pd.DataFrame) -> Path:
    """The rows as files land in batch_input: CSV lines of the features alone, in the schema's order,
    no header, in two files, one of them a folder down (SageMaker downloads the prefix whole)."""
    lines = [csv_line(row, case.features) for _, row in frame.iterrows()]
    (folder / "2026-12-01").mkdir(parents=True)
    half = len(lines) // 2
    (folder / "part-1.csv").write_text("\n".join(lines[:half]) + "\n")
    (folder / "2026-12-01" / "part-2.csv").write_text("\n".join(lines[half:]) + "\n")
    return folder


@pytest.mark.parametrize("case", CASES)
def test_a_batchs_input_files_are_judged_as_traffic_is(case: Case, tmp_path: Path) -> None:
    rows = ["--min-rows", str(case.settings.min_rows)]
    clean = landed(tmp_path / "clean", case, case.live)
    root = processing_root(tmp_path / "a", case)
    assert job_main(["--root", str(root), "--batch-input", str(clean), *rows]) == 0
    metrics = json.loads((root / "output" / "monitoring" / "metrics.json").read_text())
    assert (metrics["rows"], metrics["requests"], metrics["drift"]) == (len(case.live), len(case.live), 0)
    moved = landed(tmp_path / "moved", case, shifted(case, case.live, set(movable(case)[:1]), 3))
    root = processing_root(tmp_path / "b", case)
    assert job_main(["--root", str(root), "--batch-input", str(moved), *rows]) == 0
    output = root / "output" / "monitoring"
    assert json.loads((output / "metrics.json").read_text())["drift"] == 1
    violations = json.loads((output / "constraint_violations.json").read_text())["violations"]
    assert {v["feature_name"] for v in violations if v["constraint_check_type"] == "baseline_drift_check"} == set(
        movable(case)[:1]
    )


def test_a_batch_line_of_another_shape_is_unreadable_and_named() -> None:
    window = monitor.new_window(STATISTICS, NOW, NOW)
    good = csv_line(LIVE.iloc[0], FEATURES)
    monitor.add_batch(window, "incoming/a.csv", [good, "1,2\n", "\n", good])
    assert (window.records, window.rows, window.unreadable) == (2, 2, 1)
    assert window.unreadable_examples == [f"incoming/a.csv:2: 2 fields where the baseline has {len(FEATURES)} features"]


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ([], "give one of --capture"),
        (["--capture", "c", "--batch-input", "b"], "give one of --capture"),
        (["--batch-input", "b", "--namespace", "n", "--endpoint", "e"], "give --endpoint (with --capture) or --batch"),
    ],
    ids=["neither", "both", "batch-without-its-dimension"],
)
def test_the_job_refuses_an_ambiguous_source_by_name(
    arguments: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        job_main(arguments)
    assert stop.value.code == 2 and problem in capsys.readouterr().err


def test_a_batch_input_that_is_not_a_folder_is_a_clear_error(tmp_path: Path) -> None:
    root = processing_root(tmp_path, SYNTHETIC)
    with pytest.raises(SystemExit, match="is not a directory: give the folder"):
        job_main(["--root", str(root), "--batch-input", str(tmp_path / "nowhere")])
