"""train.py, inference.py and evaluate.py as the SageMaker containers call them, for every task.

The project's own model is tested on its data and schema; the three tasks (binary, multiclass,
regression) are tested on synthetic data with numbers, categories and gaps, whatever the
project's data is.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml import estimator, evaluate, inference, tasks, train
from ml.config import load_config
from ml.schema import Schema, Task
from tests.data_factory import (
    csv_line,
    good_frame,
    project_schema,
    schema_frame,
    synthetic_schema,
    write_csv,
    write_schema,
)
from tests.model_factory import model_tarball

PROJECT = project_schema()


@pytest.fixture
def trained_model_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project's own estimator, trained by train.main() from the SM_* variables."""
    channel = tmp_path / "input" / "data" / "train"
    write_csv(good_frame(), channel, "train.csv")
    schema_channel = tmp_path / "input" / "data" / "schema"
    write_schema(PROJECT, schema_channel)
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "model"))
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(channel))
    monkeypatch.setenv("SM_CHANNEL_SCHEMA", str(schema_channel))
    monkeypatch.setenv("SM_OUTPUT_DIR", str(tmp_path / "output"))
    config = load_config()
    arguments = ["--estimator", config.train.estimator]
    for name, value in config.train.hyperparameters.items():
        arguments += [f"--{name}", str(value).lower() if isinstance(value, bool) else str(value)]
    assert train.main(arguments) == 0
    return tmp_path / "model"


def test_train_reads_the_sm_variables_and_writes_a_servable_model_dir(trained_model_dir: Path) -> None:
    assert (trained_model_dir / "model.joblib").is_file()
    assert (trained_model_dir / "code" / "inference.py").read_text() == Path(inference.__file__).read_text()
    statistics = json.loads((trained_model_dir / "baseline" / "statistics.json").read_text())
    constraints = json.loads((trained_model_dir / "baseline" / "constraints.json").read_text())
    assert [f["name"] for f in statistics["features"]] == PROJECT.names
    assert statistics["dataset"]["item_count"] == len(good_frame())
    assert constraints["monitoring_config"]["distribution_constraints"]["perform_comparison"] == "Enabled"
    assert [f["completeness"] for f in constraints["features"]] == [
        0.0 if f.nullable else 1.0 for f in PROJECT.features
    ]
    metadata = json.loads((trained_model_dir / "metadata.json").read_text())
    assert metadata["features"] == PROJECT.names
    assert metadata["label"] == PROJECT.label
    assert metadata["task"] == PROJECT.task
    assert metadata["estimator"] == load_config().train.estimator


def test_hyperparameters_arrive_as_cli_arguments_and_pass_through(tmp_path: Path) -> None:
    args, params = train.parse_args(
        ["--n_estimators", "7", "--max_depth", "none", "--criterion=entropy", "--bootstrap", "false",
         "--model-dir", str(tmp_path)]
    )  # fmt: skip
    assert args.model_dir == str(tmp_path)
    assert params == {"n_estimators": 7, "max_depth": None, "criterion": "entropy", "bootstrap": False}


@pytest.mark.parametrize("text", ["7", "0.25", "true", "False", "none", "sqrt", "1e-3", "-2"])
def test_train_py_and_the_orchestrator_read_hyperparameters_alike(text: str) -> None:
    assert train.parse_value(text) == estimator.parse_value(text)


def test_training_failure_writes_the_failure_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_schema(PROJECT, tmp_path / "schema")
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(tmp_path / "empty"))
    monkeypatch.setenv("SM_CHANNEL_SCHEMA", str(tmp_path / "schema"))
    monkeypatch.setenv("SM_OUTPUT_DIR", str(tmp_path / "output"))
    assert train.main([]) == 1
    assert "no CSV files in the train channel" in (tmp_path / "output" / "failure").read_text()


def test_inference_handlers_speak_csv_and_json(trained_model_dir: Path) -> None:
    model = inference.model_fn(str(trained_model_dir))
    rows = good_frame().head(3)
    body = "\n".join(csv_line(row, PROJECT.names) for _, row in rows.iterrows()) + "\n"
    from_csv = inference.predict_fn(inference.input_fn(body, "text/csv"), model)
    records = rows[PROJECT.names].astype(object).where(rows[PROJECT.names].notna(), None).to_dict(orient="records")
    from_json = inference.predict_fn(
        inference.input_fn(json.dumps({"instances": records}).encode(), "application/json"), model
    )
    assert from_csv == from_json
    answer, mime = inference.output_fn(from_csv, "application/json")
    assert mime == "application/json"
    assert len(json.loads(answer)["predictions"]) == 3
    csv_body, csv_mime = inference.output_fn(from_csv, "text/csv")
    assert csv_mime == "text/csv"
    assert len(csv_body.splitlines()) == 3


def test_inference_rejects_malformed_requests(trained_model_dir: Path) -> None:
    model = inference.model_fn(str(trained_model_dir))
    width = len(PROJECT.names)
    with pytest.raises(ValueError, match=f"needs {width} feature values, got {width + 1}"):
        inference.predict_fn(inference.input_fn(",".join(["1"] * (width + 1)) + "\n", "text/csv"), model)
    with pytest.raises(ValueError, match="lack feature"):
        inference.predict_fn(inference.input_fn(json.dumps([{PROJECT.names[0]: 1}]), "application/json"), model)
    with pytest.raises(inference.UnsupportedFormatError):
        inference.input_fn(b"x", "application/x-npy")
    with pytest.raises(inference.UnsupportedFormatError):
        inference.output_fn({"task": "regression", "values": [1.0]}, "text/html")
    with pytest.raises(ValueError, match="empty"):
        inference.input_fn(b"  ", "text/csv")
    with pytest.raises(ValueError, match="different numbers of values"):
        inference.input_fn(b"1,2\n1\n", "text/csv")


# ---- every task, on synthetic data with numbers, categories and gaps ----

TASKS = [Task.BINARY, Task.MULTICLASS, Task.REGRESSION]


def packed(tmp_path: Path, contract: Schema, seed: int = 0) -> Path:
    return model_tarball(
        tmp_path / f"model-{seed}", contract=contract, frame=schema_frame(contract, 150, seed), seed=seed
    )


def evaluation_of(tmp_path: Path, contract: Schema, champion: bool = True) -> dict[str, Any]:
    root = tmp_path / "processing"
    (root / "input" / "model").mkdir(parents=True)
    packed(tmp_path, contract).rename(root / "input" / "model" / "model.tar.gz")
    if champion:
        (root / "input" / "champion").mkdir(parents=True)
        packed(tmp_path, contract, seed=1).rename(root / "input" / "champion" / "model.tar.gz")
    write_csv(schema_frame(contract, 80, seed=7), root / "input" / "test", "test.csv")
    assert evaluate.main(["--root", str(root)]) == 0
    report: dict[str, Any] = json.loads((root / "output" / "evaluation" / "evaluation.json").read_text())
    return report


@pytest.mark.parametrize("task", TASKS, ids=str)
def test_evaluation_computes_exactly_the_tasks_metrics(tmp_path: Path, task: Task) -> None:
    report = evaluation_of(tmp_path, synthetic_schema(task))
    for role in ("candidate", "champion"):
        assert set(report[role]["metrics"]) == {m.name for m in tasks.METRICS[task]}
        assert report[role]["rows"] == 80
    if task is Task.BINARY:
        curve = report["candidate"]["roc_curve"]
        assert (curve["fpr"][0], curve["tpr"][0]) == (0.0, 0.0)
        assert np.isclose(curve["tpr"][-1], 1.0)
    if task.is_classification:
        size = len(synthetic_schema(task).classes)
        assert np.array(report["candidate"]["confusion_matrix"]).shape == (size, size)
        assert sum(map(sum, report["candidate"]["confusion_matrix"])) == 80
        assert set(report["candidate"]["per_class"]) == {str(c) for c in synthetic_schema(task).classes}
    else:
        assert len(report["candidate"]["residuals"]["actual"]) == 80


@pytest.mark.parametrize("task", TASKS, ids=str)
def test_serving_answers_follow_the_task_and_accept_categories_and_gaps(tmp_path: Path, task: Task) -> None:
    contract = synthetic_schema(task)
    directory = tmp_path / "unpacked"
    with tarfile.open(packed(tmp_path, contract)) as archive:
        archive.extractall(directory, filter="data")
    model = inference.model_fn(str(directory))
    # A category the model never saw is ignored, a gap in a nullable feature imputed.
    body = '3.5,,"blue, dark",\n9.0,1.5,purple,2\n'
    rows = json.loads(
        inference.output_fn(inference.predict_fn(inference.input_fn(body, "text/csv"), model), "application/json")[0]
    )
    answers = rows["predictions"]
    assert len(answers) == 2
    if task is Task.REGRESSION:
        assert all(set(a) == {"value"} and np.isfinite(a["value"]) for a in answers)
    elif task is Task.BINARY:
        assert all(a["label"] in contract.classes and 0 <= a["probability"] <= 1 for a in answers)
    else:
        for answer in answers:
            assert set(answer["probabilities"]) == {str(c) for c in contract.classes}
            assert np.isclose(sum(answer["probabilities"].values()), 1.0, atol=1e-5)
            assert answer["probability"] == max(answer["probabilities"].values())
    with pytest.raises(ValueError, match=r"'length'.*never missing"):
        inference.predict_fn(inference.input_fn(",1.0,red,1\n", "text/csv"), model)
    with pytest.raises(ValueError, match="'length'"):
        inference.predict_fn(inference.input_fn("tall,1.0,red,1\n", "text/csv"), model)


def test_reference_rows_are_the_csv_text_the_endpoint_receives(tmp_path: Path) -> None:
    report = evaluation_of(tmp_path, synthetic_schema(Task.MULTICLASS), champion=False)
    reference = report["reference"]
    assert reference["features"] == synthetic_schema().names
    assert all(isinstance(value, str) for row in reference["rows"] for value in row)
    assert any(row[1] == "" for row in reference["rows"])  # gaps travel as empty fields
    assert len(reference["answers"]) == len(reference["rows"])


def test_the_pipeline_imputes_and_encodes(tmp_path: Path) -> None:
    contract = synthetic_schema(Task.BINARY)
    data = schema_frame(contract, 60)
    model = train.build_pipeline(
        contract.as_dict(), train.build_estimator("sklearn.linear_model.LogisticRegression", {}, 1)
    )
    model.fit(train.features_frame(data, contract.as_dict()), data["target"])
    steps = {name for name, _, _ in model.named_steps["prepare"].transformers_}
    assert {"numeric", "categorical"} <= steps
    assert pd.notna(model.predict_proba(train.features_frame(data.head(5), contract.as_dict()))).all()
