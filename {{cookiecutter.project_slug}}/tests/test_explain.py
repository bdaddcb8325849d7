"""SHAP explanations (ml/explain.py): shap's TreeExplainer on the candidate, in the evaluation report.

The oracle is the model itself: SHAP values are exact for trees and add up (local accuracy), so the
base value plus a row's values must equal what scikit-learn predicts for that row. A category's
value is the sum of its one-hot columns', which shap's own per-column values check.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml import explain, run_report, train
from ml.__main__ import main
from ml.schema import Schema, Task
from tests.conftest import write_config
from tests.data_factory import good_frame, project_schema, schema_frame, synthetic_schema, write_csv
from tests.model_factory import model_tarball

TASKS = [Task.BINARY, Task.MULTICLASS, Task.REGRESSION]
FOREST = {Task.REGRESSION: "sklearn.ensemble.RandomForestRegressor"}


def fitted(
    contract: Schema, estimator: str, frame: pd.DataFrame | None = None, **params: Any
) -> tuple[dict[str, Any], pd.DataFrame]:
    """A model as inference.py's model_fn hands it over, fitted by train.py's own pipeline, and test features."""
    frame = schema_frame(contract, 160, seed=4) if frame is None else frame
    schema = json.loads(contract.as_json())
    pipeline = train.build_pipeline(schema, train.build_estimator(estimator, params, 1))
    pipeline.fit(train.features_frame(frame, schema), train.labels(frame, schema))
    classes = [str(c) for c in getattr(pipeline.named_steps["model"], "classes_", [])]
    test = train.features_frame(schema_frame(contract, 40, seed=9), schema)
    return {"model": pipeline, "task": str(contract.task), "classes": classes, "schema": schema}, test


@pytest.mark.parametrize("task", TASKS, ids=str)
def test_shap_values_add_up_to_each_prediction_of_a_forest(task: Task) -> None:
    contract = synthetic_schema(task)
    estimator = FOREST.get(task, "sklearn.ensemble.RandomForestClassifier")
    loaded, test = fitted(contract, estimator, n_estimators=15, max_depth=4, random_state=0)
    report = explain.explain(loaded, test, examples=len(test))
    pipeline = loaded["model"]
    if task == Task.REGRESSION:
        expected = pipeline.predict(test)
    else:
        probabilities = pipeline.predict_proba(test)
        chosen = [1] * len(test) if task == Task.BINARY else probabilities.argmax(axis=1)
        expected = probabilities[np.arange(len(test)), chosen]
    assert [e["output"] for e in report["examples"]] == pytest.approx(list(expected), abs=1e-9)  # every row
    assert sorted(f["feature"] for f in report["features"]) == sorted(contract.names)  # each feature once
    means = [f["mean_abs"] for f in report["features"]]
    assert means == sorted(means, reverse=True) and means[0] > 0
    assert report["explains"].startswith("the predicted value" if task == Task.REGRESSION else "the probability")


def test_a_categorys_value_is_the_sum_of_its_one_hot_columns() -> None:
    """The oracle for which column is whose: scikit-learn's own names for the prepared columns."""
    import shap

    contract = synthetic_schema(Task.REGRESSION)
    loaded, test = fitted(contract, FOREST[Task.REGRESSION], n_estimators=10, max_depth=4, random_state=0)
    report = explain.explain(loaded, test)
    prepare, model = loaded["model"].named_steps["prepare"], loaded["model"].named_steps["model"]
    columns = shap.TreeExplainer(model).shap_values(prepare.transform(test))
    names = list(prepare.get_feature_names_out())
    for feature, prefix in (("colour", "categorical__colour_"), ("length", "numeric__length")):
        own = [i for i, name in enumerate(names) if name.startswith(prefix)]
        assert len(own) == (3 if feature == "colour" else 1)  # three colours, one-hot
        assert report["_summed"][:, report["_order"].index(feature)] == pytest.approx(columns[:, own].sum(axis=1))


def test_a_feature_missing_from_every_training_row_is_left_out_not_a_crash() -> None:
    """Its imputer drops the column, so the prepared matrix has one column fewer than the schema."""
    contract = synthetic_schema(Task.BINARY)
    frame = schema_frame(contract, 160, seed=4)
    frame["weight"], frame["grade"] = np.nan, np.nan  # both nullable: one a number, one a category
    loaded, test = fitted(contract, "sklearn.ensemble.RandomForestClassifier", frame=frame, n_estimators=10)
    report = explain.explain(loaded, test, examples=len(test))
    assert sorted(f["feature"] for f in report["features"]) == ["colour", "length"]
    expected = loaded["model"].predict_proba(test)[:, 1]
    assert [e["output"] for e in report["examples"]] == pytest.approx(list(expected), abs=1e-9)


def test_a_log_link_regressor_is_explained_on_its_log_scale() -> None:
    contract = synthetic_schema(Task.REGRESSION)
    frame = schema_frame(contract, 160, seed=4)
    frame["target"] = frame["target"].abs() + 1.0  # a Poisson loss needs counts or rates, not negatives
    loaded, test = fitted(contract, "sklearn.ensemble.HistGradientBoostingRegressor", frame=frame,
                          loss="poisson", max_iter=20)  # fmt: skip
    report = explain.explain(loaded, test, examples=len(test))
    assert report["explains"].startswith("the raw output (the log of the predicted value")
    logs = np.log(loaded["model"].predict(test))
    assert [e["output"] for e in report["examples"]] == pytest.approx(list(logs), abs=1e-6)


def test_boosted_trees_are_explained_in_their_log_odds() -> None:
    """A boosted model's trees add log-odds, not probabilities: the report says which it explains."""
    contract = synthetic_schema(Task.BINARY)
    loaded, test = fitted(contract, "sklearn.ensemble.GradientBoostingClassifier", n_estimators=20, random_state=0)
    report = explain.explain(loaded, test)
    assert report["explains"] == "the raw output (log-odds) of the positive class"
    margins = loaded["model"].decision_function(test)[: explain.EXAMPLES]
    assert [e["output"] for e in report["examples"]] == pytest.approx(list(margins), abs=1e-6)


def test_a_model_the_tree_explainer_cannot_read_is_skipped_with_the_reason() -> None:
    loaded, test = fitted(synthetic_schema(Task.BINARY), "sklearn.linear_model.LogisticRegression", max_iter=500)
    report = explain.explain(loaded, test)
    assert report["skipped"].startswith("SHAP's TreeExplainer cannot explain this LogisticRegression")
    assert report["skipped"].endswith("permutation importance covers every model")


def test_an_explanation_that_fails_leaves_its_reason_and_never_fails_the_run(tmp_path: Path) -> None:
    """A fault inside the explanation (here, test rows that lack a feature) is reported, with exit 0:
    the run it explains has registered and deployed by the time it is waited for."""
    tarball = model_tarball(tmp_path / "model")
    rows = good_frame(20).drop(columns=[project_schema().names[0]])
    test = write_csv(rows, tmp_path / "test", "test.csv")
    assert explain.main([str(tarball), str(test), str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report" / explain.RESULT).read_text())
    assert report["skipped"].startswith("SHAP failed (KeyError: ") and "explain.log" in report["skipped"]
    assert "SHAP failed (KeyError" in run_report._shap(tmp_path / "report")


@pytest.mark.e2e
def test_the_pipeline_explains_its_candidate_in_the_run_report(
    tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_EXPLAIN", "on")
    monkeypatch.setenv("MLOPS_CONFIG", str(write_config(tmp_path)))
    try:
        assert main(["pipeline"]) == 0
    finally:
        main(["stop"])
    summary = json.loads((state_dir / "summary.json").read_text())
    report_dir = Path(summary["paths"]["report"])
    shap_report = json.loads((report_dir / explain.RESULT).read_text())
    assert shap_report["rows"] == json.loads((state_dir / "steps" / "local" / "data.json").read_text())["test_rows"]
    assert len(shap_report["examples"]) == explain.EXAMPLES and (report_dir / explain.PLOT).stat().st_size > 10_000
    assert not (report_dir / explain.INPUTS).exists()  # the copied model and rows are gone
    html = run_report.path_for(state_dir, summary["run_id"]).read_text()
    assert "SHAP (shap.TreeExplainer): what decided the first 3 test predictions" in html
    assert "<img alt='shap_summary.png' src='data:image/png;base64," in html


def test_the_report_says_why_there_is_no_shap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_EXPLAIN", "off")
    assert "switched off (MLOPS_EXPLAIN=off)" in run_report._shap(tmp_path)
    monkeypatch.setenv("MLOPS_EXPLAIN", "on")
    monkeypatch.setattr(explain, "installed", lambda: False)  # a local install, without the explain group
    assert "`make install-explain` adds it" in run_report._shap(tmp_path)
