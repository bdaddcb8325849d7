"""`make staleness`: train on older windows, score on newer ones, and see the decay the data has.

Data whose label follows one feature early and another late must show a model losing quality
with age; data that does not change must not. The windows follow [staleness].order_by, not the
file's order, and every setting the data cannot meet is refused before a job starts.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tomli_w

from ml import staleness
from ml.__main__ import main
from ml.config import load_config
from ml.context import make_context
from ml.errors import ConfigError, DataValidationError
from ml.schema import Feature, Kind, Schema, Task, to_toml
from ml.steps import staleness as staleness_step
from tests.aws_fixtures import Account
from tests.botocore_limits import refusals
from tests.conftest import quiet_console, write_config

CONTRACT = Schema(
    "target",
    Task.BINARY,
    (
        Feature("length", Kind.NUMERIC, minimum=-10.0, maximum=10.0),
        Feature("width", Kind.NUMERIC, minimum=-10.0, maximum=10.0),
    ),
    ("no", "yes"),
)


def changing(rows: int = 600, drift: bool = True, seed: int = 0) -> pd.DataFrame:
    """Rows in time order. With drift, the label follows length at first and width at the end."""
    rng = np.random.default_rng(seed)
    share = np.linspace(0.0, 1.0, rows) if drift else np.zeros(rows)
    length, width = rng.normal(0, 1, rows), rng.normal(0, 1, rows)
    signal = (1 - share) * length + share * width + rng.normal(0, 0.2, rows)
    days = pd.date_range("2024-01-01", periods=rows, freq="6h")
    return pd.DataFrame({
        "recorded": days.strftime("%Y-%m-%dT%H:%M:%S"),
        "length": length,
        "width": width,
        "target": np.where(signal > 0, "yes", "no"),
    })  # fmt: skip


def project(directory: Path, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, **staleness: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "data.csv"
    frame.to_csv(data, index=False)
    (directory / "schema.toml").write_text(to_toml(CONTRACT, "data.csv"))
    config = write_config(
        directory,
        data={"source": str(data), "schema": str(directory / "schema.toml")},
        gate={"primary_metric": "roc_auc", "thresholds": {"roc_auc": 0.5}, "slices": {}, "fairness": {"groups": []}},
        staleness={"order_by": "recorded", "windows": 5, "min_rows": 30, **staleness},
    )
    raw = tomllib.loads(config.read_text())  # the linear model's parameters replace the forest's, not merged
    raw["train"] = {**raw["train"], "estimator": "sklearn.linear_model.LogisticRegression",
                    "hyperparameters": {"max_iter": 500}}  # fmt: skip
    config.write_text(tomli_w.dumps(raw))
    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    return config


def reported(state_dir: Path) -> dict[str, Any]:
    (path,) = (state_dir / "staleness").glob("*/staleness.json")
    report: dict[str, Any] = json.loads(path.read_text())
    return report


def test_a_model_decays_with_age_on_data_whose_label_drifts(
    tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(tmp_path / "p", changing(), monkeypatch)
    assert main(["staleness"]) == 0
    report = reported(state_dir)
    losses = [age["loss"] for age in report["by_age"]]
    assert [age["age"] for age in report["by_age"]] == [1, 2, 3, 4]
    assert losses[0] == 0.0 and losses == sorted(losses)  # the older, the worse
    assert losses[-1] > 0.3  # four windows on, the label follows the other feature
    assert report["by_age"][0]["mean"] > 0.85
    assert [w["rows"] for w in report["windows"]] == [120] * 5
    assert report["windows"][0]["first"] == "2024-01-01T00:00:00" and report["order_by"] == "recorded"


def test_a_model_does_not_decay_on_data_that_does_not_change(
    tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(tmp_path / "p", changing(drift=False), monkeypatch)
    assert main(["staleness"]) == 0
    assert all(abs(age["loss"]) < 0.03 for age in reported(state_dir)["by_age"])


@pytest.mark.parametrize("kind", ["times", "numbers"])
def test_the_windows_follow_order_by_not_the_files_order(
    tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Shuffled in the file, the rows are put back in time order: the decay is still found. In the
    file's order (order_by empty) the same rows show none, which is what shuffled time looks like."""
    ordered = changing()
    if kind == "numbers":  # seconds since the epoch, say
        ordered["recorded"] = pd.to_datetime(ordered["recorded"]).astype("int64") // 10**9
    shuffled = ordered.sample(frac=1.0, random_state=3).reset_index(drop=True)
    project(tmp_path / "p", shuffled, monkeypatch)
    assert main(["staleness"]) == 0
    assert reported(state_dir)["by_age"][-1]["loss"] > 0.3
    for path in (state_dir / "staleness").glob("*/staleness.json"):
        path.unlink()
    project(tmp_path / "p", shuffled, monkeypatch, order_by="")
    assert main(["staleness"]) == 0
    assert abs(reported(state_dir)["by_age"][-1]["loss"]) < 0.1
    assert reported(state_dir)["windows"][0]["first"] == "row 1"


def test_scores_are_paired_on_the_window_they_score() -> None:
    """A window every model finds hard does not pass for decay: age k is compared with age 1 on the
    same scored windows. Undefined scores (one class, for roc_auc) are counted, not averaged."""
    hard_last: list[list[float | None]] = [
        [None, 0.9, 0.9, 0.5],
        [None, None, 0.9, 0.5],
        [None, None, None, 0.5],
        [None] * 4,
    ]
    ages = staleness.by_age(hard_last, lower_is_better=False)
    assert [a["loss"] for a in ages] == [0.0, 0.0, 0.0]  # every model is as bad on the last window
    assert ages[2]["mean"] == 0.5 and ages[0]["mean"] == pytest.approx(2.3 / 3)
    errors = staleness.by_age([[None, 1.0, 3.0], [None, None, 2.0], [None] * 3], lower_is_better=True)
    assert errors[1]["loss"] == pytest.approx(1.0)  # rmse 3.0 against 2.0: worse by 1
    undefined = staleness.by_age([[None, None, 0.8], [None, None, 0.9], [None] * 3], lower_is_better=False)
    assert undefined[0] == {"age": 1, "mean": 0.9, "loss": 0.0, "pairs": 2, "undefined": 1}


@pytest.mark.parametrize(
    ("frame_change", "settings", "error", "message"),
    [
        (None, {"order_by": "when"}, ConfigError,
         r"\[staleness\].order_by = 'when' in .* is not a column of .*data.csv \(it has recorded, length, width"),
        (None, {"windows": 12}, ConfigError,
         r"\[staleness\].windows = 12 in .* cuts 600 rows into windows of 50, fewer than min_rows = 60: set "
         r"windows to at most 10"),
        ("blank", {}, DataValidationError, r"column 'recorded' of .* is empty on 1 row\(s\), the first at data row 8"),
        ("text", {}, DataValidationError, r"holds 'yesterday', which is neither a number nor an ISO 8601 time"),
        ("one-class", {}, DataValidationError, r"staleness window 1 \(rows 1 to 120, in time order\) holds one class"),
        ("stray-text", {}, DataValidationError, r"holds '\?', which is neither a number nor an ISO 8601 time"),
        ("day-first", {}, DataValidationError, r"holds '01/01/2024', which is neither a number nor an ISO 8601 time"),
    ],
    ids=["no-such-column", "windows-too-small", "missing-time", "not-a-time", "one-class-window", "stray-text",
         "day-first-dates"],
)  # fmt: skip
def test_a_setting_the_data_cannot_meet_is_refused_before_any_job(
    tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch, frame_change: str | None,
    settings: dict[str, Any], error: type[Exception], message: str,
) -> None:  # fmt: skip
    frame = changing()
    if frame_change == "blank":
        frame.loc[7, "recorded"] = None
    elif frame_change == "text":
        frame.loc[7, "recorded"] = "yesterday"
    elif frame_change == "one-class":
        frame.loc[:119, "target"] = "no"
    elif frame_change == "stray-text":  # a column of numbers, one of them "?"
        frame["recorded"] = [str(i) for i in range(len(frame))]
        frame.loc[7, "recorded"] = "?"
    elif frame_change == "day-first":  # 01/02/2024 would pass for 2 January, 13/01/2024 cannot
        frame["recorded"] = pd.to_datetime(frame["recorded"]).dt.strftime("%d/%m/%Y")
    min_rows = 60 if "windows" in settings else 30
    project(tmp_path / "p", frame, monkeypatch, min_rows=min_rows, **settings)
    ctx = make_context(load_config(), quiet_console())
    with pytest.raises(error, match=message):
        staleness_step.run(ctx)
    assert not (state_dir / "jobs").exists() or not any((state_dir / "jobs").iterdir())  # no job started
    assert not (state_dir / "staleness").exists()


@pytest.mark.parametrize(("windows", "message"), [(2, "greater than or equal to 3"), (51, "less than or equal to 50")])
def test_too_few_or_too_many_windows_are_refused_at_config_load(make_config: Any, windows: int, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"staleness.windows: .*{message}"):
        make_config(staleness={"windows": windows})


def test_in_aws_the_experiment_runs_as_a_processing_job_with_kms(
    aws: Account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same job in the scikit-learn container (the emulator runs the real ml/staleness.py when
    SageMaker is asked to), its request within every limit botocore's model sets."""
    project(tmp_path / "p", changing(), monkeypatch)
    assert main(["staleness"]) == 0
    (request,) = aws.emulator.requests["processing"]
    assert refusals("sagemaker", "CreateProcessingJob", request) == []
    assert request["AppSpecification"]["ContainerEntrypoint"][-1].endswith("/input/code/staleness.py")
    assert {i["InputName"] for i in request["ProcessingInputs"]} == {"staleness", "schema", "settings", "code"}
    key = aws.outputs["kms_key_arn"]
    assert request["ProcessingOutputConfig"]["KmsKeyId"] == key
    assert request["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == key
    assert request["RoleArn"] == aws.outputs["execution_role_arn"]
    assert reported(load_config().state_dir)["by_age"][-1]["loss"] > 0.3
