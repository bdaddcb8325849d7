"""Your data, your model: infer-schema, a schema change as a new lineage, bad settings, scoring a file.

Everything runs on synthetic data sets written here (tests/data_factory.py), through the same
commands the Makefile runs, so it holds whatever data the project itself holds.
"""

from __future__ import annotations

import csv
import json
import tomllib
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import tomli_w

from ml.__main__ import main
from ml.config import load_config
from ml.schema import Task
from ml.schema import load as load_schema
from ml.tasks import METRICS, SUGGESTED_GATE, SUGGESTED_QUALITY, suggested_slices
from tests.conftest import loosest, span, write_config
from tests.data_factory import schema_frame, synthetic_schema, write_csv

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("any-data")]

ESTIMATORS = {
    Task.BINARY: "sklearn.linear_model.LogisticRegression",
    Task.MULTICLASS: "sklearn.ensemble.RandomForestClassifier",
    Task.REGRESSION: "sklearn.linear_model.Ridge",
}
PARAMETERS: dict[Task, dict[str, Any]] = {
    Task.BINARY: {"max_iter": 500},
    Task.MULTICLASS: {"n_estimators": 20, "random_state": 0},
    Task.REGRESSION: {"alpha": 1.0},
}


def switch(directory: Path, task: Task, monkeypatch: pytest.MonkeyPatch, rows: int = 240) -> Path:
    """The README's steps for bringing data: the file, `make infer-schema`, then [data], [train], [gate]."""
    data = write_csv(schema_frame(synthetic_schema(task), rows, seed=5), directory, f"{task}.csv")
    config = write_config(directory, data={"schema": str(directory / "schema.toml")})
    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    assert main(["infer-schema", "--input", str(data), "--label", "target"]) == 0
    primary, thresholds = SUGGESTED_GATE[task]
    # The slices `make infer-schema` suggests for this data, in place of the project's own.
    contract = load_schema(directory / "schema.toml")
    suggested = tomllib.loads(suggested_slices(contract, pd.read_csv(data)))["gate"]
    # Thresholds any model learns on this data; the suggested ones are for real data sets.
    easy = {name: loosest(task, name) for name in thresholds}
    fairness = {**suggested["fairness"], "max_disparity": span(task, suggested["fairness"]["metrics"][0])}
    return configure(
        directory,
        data={"source": str(data), "schema": str(directory / "schema.toml")},
        train={"estimator": ESTIMATORS[task], "hyperparameters": PARAMETERS[task]},
        gate={"primary_metric": primary, "thresholds": easy, "max_regression": 1e9,
              "min_gain_over_simple": -span(task, primary), "slices": suggested["slices"], "fairness": fairness},
        monitor={"quality_metrics": list(SUGGESTED_QUALITY[task])},
    )  # fmt: skip


def configure(directory: Path, **sections: dict[str, Any]) -> Path:
    """mlops.toml with these keys replaced whole (hyperparameters and thresholds are the new task's, not merged)."""
    config = directory / "mlops.toml"
    raw = tomllib.loads(config.read_text())
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    config.write_text(tomli_w.dumps(raw))
    return config


@pytest.fixture
def project(tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return tmp_path


def last_summary(state: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((state / "summary.json").read_text())
    return summary


@pytest.mark.parametrize("task", [Task.BINARY, Task.MULTICLASS, Task.REGRESSION], ids=str)
def test_infer_schema_writes_what_the_data_holds(project: Path, monkeypatch: pytest.MonkeyPatch, task: Task) -> None:
    switch(project, task, monkeypatch)
    written = load_schema(project / "schema.toml")
    assert written.task is task and written.label == "target"
    assert written.classes == synthetic_schema(task).classes
    kinds = {f.name: (f.kind.value, f.nullable) for f in written.features}
    # grade's categories are digits, which the CSV cannot tell from numbers: inferred numeric, for review.
    assert kinds == {"length": ("numeric", False), "weight": ("numeric", True), "colour": ("categorical", False),
                     "grade": ("numeric", True)}  # fmt: skip
    assert written.feature("colour").categories == ("blue, dark", "green", "red")
    assert "# The data contract" in (project / "schema.toml").read_text()


@pytest.mark.parametrize(
    ("label", "task", "message"),
    [
        ("nothing", None, "LABEL='nothing' is not a column"),
        ("colour", "regression", "TASK=regression needs a numeric label"),
        ("colour", "binary", "TASK=binary needs exactly two label values"),
        ("target", "clustering", "TASK='clustering' is not a task"),
    ],
)
def test_infer_schema_refuses_a_label_or_task_that_does_not_fit(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], label: str,
    task: str | None, message: str,
) -> None:  # fmt: skip
    data = write_csv(schema_frame(synthetic_schema(Task.MULTICLASS)), project, "data.csv")
    monkeypatch.setenv("MLOPS_CONFIG", str(write_config(project, data={"schema": str(project / "schema.toml")})))
    arguments = ["infer-schema", "--input", str(data), "--label", label, *(["--task", task] if task else [])]
    assert main(arguments) == 1
    assert message in " ".join(capsys.readouterr().out.split())
    assert not (project / "schema.toml").exists()


def test_a_schema_change_is_a_new_lineage_not_a_crash(
    project: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The finding: after switching data, evaluation crashed re-scoring the old champion on the new schema.
    switch(project / "first", Task.BINARY, monkeypatch)
    try:
        assert main(["pipeline"]) == 0
        switch(project / "second", Task.MULTICLASS, monkeypatch)
        assert main(["pipeline"]) == 0
        summary = last_summary(state_dir)
        assert summary["model"]["version"] == 2 and summary["model"]["approval"] == "Approved"
        assert set(summary["metrics"]) == {m.name for m in METRICS[Task.MULTICLASS]}
        evaluate = next(step for step in summary["steps"] if step["name"] == "evaluate")
        assert evaluate["status"] == "ok"
        assert "new lineage" in capsys.readouterr().out
        # Same schema again, another model: compared with the new champion (v2), not the old one.
        configure(project / "second", train={"hyperparameters": {"n_estimators": 25, "random_state": 1}})
        for step in ("data", "train", "evaluate"):
            assert main([step]) == 0, step
        assert "vs champion v2" in capsys.readouterr().out
    finally:
        main(["stop"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train": {"estimator": "sklearn.ensemble.RandomForrest"}}, "has no class 'RandomForrest'"),
        ({"train": {"estimator": "sklearn.nosuchmodule.Model"}}, "does not import"),
        ({"train": {"hyperparameters": {"max_iter": 500, "n_estimators": 3}}}, "names n_estimators, which LogisticRegression does not take"),
        ({"train": {"hyperparameters": {"max_iter": -4}}}, "are not valid for LogisticRegression"),
        ({"train": {"estimator": "sklearn.linear_model.Ridge", "hyperparameters": {}}}, "is not a classifier"),
        ({"gate": {"primary_metric": "r2", "thresholds": {"r2": 0.1}}}, "which a binary model is not scored by"),
        ({"monitor": {"quality_metrics": ["rmse"]}}, "cannot compute for a binary model"),
        ({"train": {"hyperparameters": {"label": "x"}}}, "which train.py sets itself"),
    ],
    ids=["estimator-class", "estimator-module", "unknown-parameter", "bad-value", "wrong-kind", "gate-metric",
         "quality-metric", "reserved-name"],
)  # fmt: skip
def test_bad_settings_fail_before_training_with_the_key_and_the_fix(
    project: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    change: dict[str, Any], message: str,
) -> None:  # fmt: skip
    switch(project, Task.BINARY, monkeypatch)
    configure(project, **change)
    assert main(["pipeline"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert message in out and "[" in out
    assert not (state_dir / "jobs").exists(), "a training job started"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text.replace('name = "target"', 'name = "outcome"', 1), "missing column(s): outcome"),
        (lambda text: text.replace('"green",', "", 1), "not among the schema's categories"),
        (lambda text: text.replace('task = "binary"', 'task = "regression"', 1), "a regression label has no classes"),
        (lambda text: text.replace("\n[label]\n", "\n[labels]\n", 1), "[label].name is missing"),
    ],
    ids=["label-not-in-data", "data-outside-schema", "task-does-not-fit", "no-label"],
)
def test_a_schema_that_does_not_match_the_data_fails_at_data_load(
    project: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    edit: Any, message: str,
) -> None:  # fmt: skip
    switch(project, Task.BINARY, monkeypatch)
    schema_file = project / "schema.toml"
    schema_file.write_text(edit(schema_file.read_text()))
    assert main(["pipeline"]) == 1
    assert message in " ".join(capsys.readouterr().out.split())
    assert not (state_dir / "jobs").exists()


def test_predict_scores_a_file_against_the_running_endpoint(
    project: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    switch(project, Task.MULTICLASS, monkeypatch)
    rows = schema_frame(synthetic_schema(Task.MULTICLASS), 30, seed=9).drop(columns=["target"])
    rows["customer_id"] = range(30)  # columns beyond the schema's travel along untouched
    inputs = write_csv(rows, project, "rows.csv")
    try:
        assert main(["pipeline"]) == 0
        assert main(["predict", "--input", str(inputs), "--output", str(project / "scored.csv")]) == 0
    finally:
        main(["stop"])
    with (project / "scored.csv").open(newline="") as handle:
        scored = list(csv.DictReader(handle))
    assert len(scored) == 30 and [row["customer_id"] for row in scored] == [str(i) for i in range(30)]
    assert {row["predicted_label"] for row in scored} <= {"a", "b", "c"}
    assert all(0 <= float(row["predicted_probability"]) <= 1 for row in scored)


def test_predict_names_what_is_missing(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    switch(project, Task.REGRESSION, monkeypatch)
    inputs = write_csv(schema_frame(synthetic_schema(Task.REGRESSION), 5).drop(columns=["colour"]), project, "rows.csv")
    assert main(["predict", "--input", str(inputs)]) == 1
    assert "lacks the feature column(s) colour" in capsys.readouterr().out


def test_requirements_beside_train_py_ship_with_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ml/requirements.txt goes into the model's code/ (the container pip-installs it there)."""
    from ml import train
    from tests.model_factory import model_tarball

    copy = tmp_path / "ml"
    copy.mkdir()
    (copy / "inference.py").write_text(Path(train.__file__).with_name("inference.py").read_text())
    (copy / "requirements.txt").write_text("lightgbm==4.5.0\n")
    monkeypatch.setattr(train, "HERE", copy)
    import tarfile

    with tarfile.open(model_tarball(tmp_path / "model")) as archive:
        assert archive.extractfile("code/requirements.txt").read() == b"lightgbm==4.5.0\n"  # type: ignore[union-attr]


def test_the_example_config_fits_the_example_schema() -> None:
    from ml import tasks
    from ml.schema import for_config

    config = load_config()
    tasks.check_config(for_config(config), config.gate, config.monitor, config.path)
