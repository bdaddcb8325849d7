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
from tests.data_factory import schema_frame, synthetic_schema

TASKS = [Task.BINARY, Task.MULTICLASS, Task.REGRESSION]
FOREST = {Task.REGRESSION: "sklearn.ensemble.RandomForestRegressor"}


def fitted(contract: Schema, estimator: str, rows: int = 160, **params: Any) -> tuple[dict[str, Any], pd.DataFrame]:
    """A model as inference.py's model_fn hands it over, fitted by train.py's own pipeline, and test features."""
    frame = schema_frame(contract, rows, seed=4)
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
    report = explain.explain(loaded, test)
    pipeline = loaded["model"]
    if task == Task.REGRESSION:
        expected = pipeline.predict(test)
    else:
        probabilities = pipeline.predict_proba(test)
        chosen = [1] * len(test) if task == Task.BINARY else probabilities.argmax(axis=1)
        expected = probabilities[np.arange(len(test)), chosen]
    assert [e["output"] for e in report["examples"]] == pytest.approx(list(expected[: explain.EXAMPLES]), abs=1e-9)
    summed = report["_summed"]
    assert (np.array([e["base_value"] for e in report["examples"]]) + summed[: explain.EXAMPLES].sum(axis=1)) == (
        pytest.approx(expected[: explain.EXAMPLES], abs=1e-9)
    )
    assert sorted(f["feature"] for f in report["features"]) == sorted(contract.names)  # each feature once
    means = [f["mean_abs"] for f in report["features"]]
    assert means == sorted(means, reverse=True) and means[0] > 0
    assert report["explains"].startswith("the predicted value" if task == Task.REGRESSION else "the probability")


def test_a_categorys_value_is_the_sum_of_its_one_hot_columns() -> None:
    import shap

    contract = synthetic_schema(Task.REGRESSION)
    loaded, test = fitted(contract, FOREST[Task.REGRESSION], n_estimators=10, max_depth=4, random_state=0)
    report = explain.explain(loaded, test)
    prepare, model = loaded["model"].named_steps["prepare"], loaded["model"].named_steps["model"]
    columns = shap.TreeExplainer(model).shap_values(prepare.transform(test))
    owners = explain.owners(prepare)
    for name in ("colour", "length"):
        own = [i for i, owner in enumerate(owners) if owner == name]
        assert len(own) == (3 if name == "colour" else 1)  # three colours, one-hot
        assert report["_summed"][:, report["_order"].index(name)] == pytest.approx(columns[:, own].sum(axis=1))


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
    assert report["skipped"].startswith("SHAP's TreeExplainer explains tree ensembles only, not LogisticRegression")


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
    assert shap_report["rows"] == round(summary["data"]["rows"] * 0.25)  # every test row ([data].test_fraction)
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
