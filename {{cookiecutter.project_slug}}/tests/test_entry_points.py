"""train.py, inference.py and evaluate.py as the SageMaker containers call them."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from ml import evaluate, inference, schema, train
from tests.data_factory import good_frame, write_csv


@pytest.fixture
def trained_model_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    channel = tmp_path / "input" / "data" / "train"
    channel.mkdir(parents=True)
    write_csv(good_frame(), channel, "train.csv")
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "model"))
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(channel))
    monkeypatch.setenv("SM_OUTPUT_DIR", str(tmp_path / "output"))
    assert train.main(["--n_estimators", "10", "--max_depth", "3"]) == 0
    return tmp_path / "model"


def test_train_reads_the_sm_variables_and_writes_a_servable_model_dir(trained_model_dir: Path) -> None:
    assert (trained_model_dir / "model.joblib").is_file()
    assert (trained_model_dir / "code" / "inference.py").read_text() == Path(inference.__file__).read_text()
    statistics = json.loads((trained_model_dir / "baseline" / "statistics.json").read_text())
    constraints = json.loads((trained_model_dir / "baseline" / "constraints.json").read_text())
    assert [f["name"] for f in statistics["features"]] == list(schema.FEATURES)
    assert statistics["dataset"]["item_count"] == 120
    buckets = statistics["features"][0]["numerical_statistics"]["distribution"]["kll"]["buckets"]
    assert sum(b["count"] for b in buckets) == 120
    assert constraints["monitoring_config"]["distribution_constraints"]["perform_comparison"] == "Enabled"
    assert all(f["completeness"] == 1.0 for f in constraints["features"])
    metadata = json.loads((trained_model_dir / "metadata.json").read_text())
    assert metadata["features"] == list(schema.FEATURES)
    assert metadata["label"] == schema.LABEL


def test_hyperparameters_arrive_as_cli_arguments(tmp_path: Path) -> None:
    args = train.parse_args(["--n_estimators", "7", "--max_depth", "0", "--model-dir", str(tmp_path)])
    assert (args.n_estimators, args.max_depth, args.model_dir) == (7, 0, str(tmp_path))


def test_training_failure_writes_the_failure_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(tmp_path / "empty"))
    monkeypatch.setenv("SM_OUTPUT_DIR", str(tmp_path / "output"))
    assert train.main([]) == 1
    assert "no CSV files in the train channel" in (tmp_path / "output" / "failure").read_text()


def test_inference_handlers_speak_csv_and_json(trained_model_dir: Path) -> None:
    model = inference.model_fn(str(trained_model_dir))
    rows = good_frame().head(3)[list(schema.FEATURES)]
    from_csv = inference.predict_fn(inference.input_fn(rows.to_csv(header=False, index=False), "text/csv"), model)
    by_name = json.dumps({"instances": rows.to_dict(orient="records")})
    from_json = inference.predict_fn(inference.input_fn(by_name.encode(), "application/json"), model)
    assert from_csv == from_json
    body, mime = inference.output_fn(from_csv, "application/json")
    assert mime == "application/json"
    assert len(json.loads(body)["predictions"]) == 3
    csv_body, csv_mime = inference.output_fn(from_csv, "text/csv")
    assert csv_mime == "text/csv"
    assert len(csv_body.splitlines()) == 3


def test_inference_rejects_malformed_requests(trained_model_dir: Path) -> None:
    model = inference.model_fn(str(trained_model_dir))
    with pytest.raises(ValueError, match="needs 30 feature values, got 2"):
        inference.predict_fn(inference.input_fn("1,2\n", "text/csv"), model)
    with pytest.raises(ValueError, match="lack feature"):
        inference.predict_fn(inference.input_fn('[{"mean_radius": 1}]', "application/json"), model)
    with pytest.raises(inference.UnsupportedFormatError):
        inference.input_fn(b"x", "application/x-npy")
    with pytest.raises(inference.UnsupportedFormatError):
        inference.output_fn({"labels": [1], "probabilities": [0.9]}, "text/html")
    with pytest.raises(ValueError, match="empty"):
        inference.input_fn(b"  ", "text/csv")


def test_evaluate_scores_candidate_and_champion_through_their_own_inference_code(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "processing"
    for channel in ("model", "champion"):
        (root / "input" / channel).mkdir(parents=True)
        with tarfile.open(root / "input" / channel / "model.tar.gz", "w:gz") as archive:
            for item in trained_model_dir.iterdir():
                archive.add(item, arcname=item.name)
    (root / "input" / "test").mkdir()
    write_csv(good_frame(), root / "input" / "test", "test.csv")
    assert evaluate.main(["--root", str(root)]) == 0
    report = json.loads((root / "output" / "evaluation" / "evaluation.json").read_text())
    assert report["candidate"]["metrics"] == report["champion"]["metrics"]
    assert report["candidate"]["rows"] == 120
    curve = report["candidate"]["roc_curve"]
    assert (curve["fpr"][0], curve["tpr"][0]) == (0.0, 0.0)
    assert np.isclose(curve["tpr"][-1], 1.0)
    assert sum(map(sum, report["candidate"]["confusion_matrix"])) == 120
