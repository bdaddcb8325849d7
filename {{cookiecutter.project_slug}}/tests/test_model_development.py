"""Model development a reviewer can trust: baselines, slices, fairness and feature importance.

ml/evaluate.py measures them inside the evaluation job (the SageMaker container has scikit-learn,
not fairlearn) and ml/gate.py judges them. Each measurement is checked here against the library
that defines it: scikit-learn's permutation_importance, fairlearn's MetricFrame, pandas' cut.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame
from sklearn import inspection, metrics

from ml import evaluate, gate, tasks
from ml.config import GateSection, MonitorSection
from ml.errors import ConfigError
from ml.schema import Schema, Task
from tests.conftest import MakeConfig
from tests.data_factory import good_frame, project_schema, schema_frame, synthetic_schema, write_csv
from tests.model_factory import model_tarball

TASKS = [Task.BINARY, Task.MULTICLASS, Task.REGRESSION]
TEST_ROWS = 90
# Cuts of the synthetic schema's columns: a number by bins, a category by values.
SLICES = {
    "length": {"column": "length", "bins": [3.0, 6.0], "values": []},
    "grade": {"column": "grade", "bins": [], "values": ["1", "2"]},  # nullable: a "missing" group too
}


def job_root(tmp_path: Path, contract: Schema, slices: dict[str, Any] | None = None) -> Path:
    """An evaluation job's input channels: candidate, training split, test set and judging.json."""
    root = tmp_path / "processing"
    (root / "input" / "model").mkdir(parents=True)
    model_tarball(tmp_path / "model", contract=contract, frame=schema_frame(contract, 200, seed=0)).rename(
        root / "input" / "model" / "model.tar.gz"
    )
    write_csv(schema_frame(contract, 200, seed=3), root / "input" / "train", "train.csv")
    write_csv(schema_frame(contract, TEST_ROWS, seed=7), root / "input" / "test", "test.csv")
    judging = root / "input" / "judging"
    judging.mkdir(parents=True)
    (judging / "judging.json").write_text(json.dumps({"primary_metric": "", "slices": slices or {}}))
    return root


def evaluated(root: Path) -> dict[str, Any]:
    assert evaluate.main(["--root", str(root)]) == 0
    report: dict[str, Any] = json.loads((root / "output" / "evaluation" / "evaluation.json").read_text())
    return report


def loaded(root: Path, scratch: Path) -> tuple[Any, Any, pd.DataFrame, np.ndarray[Any, Any]]:
    """The candidate as the job loads it, the test features and their truth."""
    module, model = evaluate.load_packaged_model(root / "input" / "model" / "model.tar.gz", scratch)
    frame = pd.read_csv(root / "input" / "test" / "test.csv")
    label = model["schema"]["label"]["name"]
    truth = evaluate._truth(frame, label, model["task"], list(model["classes"]))
    return module, model, frame, truth


# ---- what the evaluation job measures ----


@pytest.mark.parametrize("task", TASKS, ids=str)
def test_the_job_reports_baselines_slices_and_importance_for_every_task(tmp_path: Path, task: Task) -> None:
    report = evaluated(job_root(tmp_path, synthetic_schema(task), SLICES))
    names = {m.name for m in tasks.METRICS[task]}
    assert set(report["baselines"]) == {"trivial", "simple"}
    for part in report["baselines"].values():
        assert set(part["metrics"]) == names
    simple = report["baselines"]["simple"]["estimator"]
    assert ("LogisticRegression" if task.is_classification else "Ridge") in simple
    for name in SLICES:
        groups = report["slices"][name]["groups"]
        assert sum(g["rows"] for g in groups) == TEST_ROWS  # every row in exactly one group
        assert all(set(g["metrics"]) == names for g in groups if g["rows"])
    assert [g["group"] for g in report["slices"]["grade"]["groups"]] == ["1", "2", "other", "missing"]
    ranked = report["importance"]["features"]
    assert {f["feature"] for f in ranked} == set(synthetic_schema(task).names)
    assert [f["mean"] for f in ranked] == sorted((f["mean"] for f in ranked), reverse=True)


def test_the_trivial_baseline_is_scikit_learns_prior_and_reads_no_feature(tmp_path: Path) -> None:
    report = evaluated(job_root(tmp_path, synthetic_schema(Task.BINARY)))
    train = pd.read_csv(tmp_path / "processing" / "input" / "train" / "train.csv")
    test = pd.read_csv(tmp_path / "processing" / "input" / "test" / "test.csv")
    trivial = report["baselines"]["trivial"]["metrics"]
    assert trivial["roc_auc"] == 0.5  # one score for every row
    majority = train["target"].value_counts().idxmax()
    assert trivial["accuracy"] == pytest.approx(float((test["target"] == majority).mean()))


def test_slice_groups_are_pandas_cut_by_the_bins_with_missing_apart(tmp_path: Path) -> None:
    contract = synthetic_schema(Task.BINARY)
    report = evaluated(job_root(tmp_path, contract, SLICES))
    test = pd.read_csv(tmp_path / "processing" / "input" / "test" / "test.csv")
    # right=False: a row on an edge belongs to the group above it, as in numpy.digitize.
    cut = pd.cut(test["length"], [-np.inf, 3.0, 6.0, np.inf], right=False)
    expected = [int(n) for n in cut.value_counts(sort=False)]
    groups = report["slices"]["length"]["groups"]
    assert [g["group"] for g in groups][:3] == ["< 3", "3 to 6", ">= 6"]
    assert [g["rows"] for g in groups][:3] == expected
    assert sum(expected) + (groups[3]["rows"] if len(groups) > 3 else 0) == TEST_ROWS


class Served:
    """The packaged model as scikit-learn's permutation_importance takes an estimator (it asks for fit)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def fit(self, *_: Any) -> Served:
        return self


@pytest.mark.parametrize("task", TASKS, ids=str)
def test_permutation_importance_is_scikit_learns(tmp_path: Path, task: Task) -> None:
    """The same shuffles and scores as sklearn.inspection.permutation_importance, in one predict call."""
    root = job_root(tmp_path, synthetic_schema(task))
    module, model, frame, truth = loaded(root, tmp_path / "unpacked")
    features = frame.drop(columns=["target"])
    primary = {Task.BINARY: "roc_auc", Task.MULTICLASS: "accuracy", Task.REGRESSION: "rmse"}[task]

    def scorer(candidate: Served, rows: pd.DataFrame, actual: Any) -> float:
        answer = module.predict_fn(rows, candidate.model)
        if task is Task.BINARY:
            return float(metrics.roc_auc_score(actual == "yes", np.asarray(answer["probabilities"])[:, 1]))
        if task is Task.MULTICLASS:
            return float(metrics.accuracy_score(actual.astype(str), np.asarray(answer["labels"]).astype(str)))
        return -float(np.sqrt(metrics.mean_squared_error(actual, answer["values"])))  # a score: higher is better

    theirs = inspection.permutation_importance(
        Served(model), features, truth, scoring=scorer, n_repeats=evaluate.IMPORTANCE_REPEATS,
        random_state=evaluate.IMPORTANCE_SEED,
    )  # fmt: skip
    ours = evaluate.permutation_importance(module, model, features, truth, primary)
    by_feature = {item["feature"]: item for item in ours["features"]}
    for index, column in enumerate(features.columns):
        assert by_feature[column]["mean"] == pytest.approx(theirs.importances_mean[index], abs=1e-12)
        assert by_feature[column]["std"] == pytest.approx(theirs.importances_std[index], abs=1e-12)
    noise = {
        c for i, c in enumerate(features.columns) if theirs.importances_mean[i] - 2 * theirs.importances_std[i] <= 0
    }
    assert set(ours["no_contribution"]) == noise


def test_group_metrics_and_disparity_are_fairlearns_metric_frame(tmp_path: Path) -> None:
    contract = synthetic_schema(Task.BINARY)
    root = job_root(tmp_path, contract, SLICES)
    report = evaluated(root)
    module, model, frame, truth = loaded(root, tmp_path / "unpacked")
    predicted = np.asarray(module.predict_fn(frame.drop(columns=["target"]), model)["labels"])
    grade = frame["grade"].map(lambda value: str(int(value)), na_action="ignore")  # 1.0 in the CSV is grade "1"
    sensitive = grade.where(grade.isin(["1", "2"]) | grade.isna(), "other").fillna("missing")
    frame_metrics = MetricFrame(
        metrics={"recall": metrics.recall_score, "accuracy": metrics.accuracy_score},
        y_true=(truth == "yes").astype(int), y_pred=(predicted == "yes").astype(int), sensitive_features=sensitive,
    )  # fmt: skip
    groups = {g["group"]: g for g in report["slices"]["grade"]["groups"]}
    for group, row in frame_metrics.by_group.iterrows():
        assert groups[str(group)]["metrics"]["recall"] == pytest.approx(row["recall"])
        assert groups[str(group)]["metrics"]["accuracy"] == pytest.approx(row["accuracy"])
    section = gate_section(
        {"grade": {"column": "grade", "values": ["1", "2"], "min_rows": 1}},
        fairness={"groups": ["grade"], "metrics": ["recall", "accuracy"], "max_disparity": 0.1},
    )
    checks = {c.name: c for c in gate.fairness_checks(report["slices"], section)}
    difference = frame_metrics.difference(method="between_groups")
    assert len(frame_metrics.by_group) == 4  # 1, 2, other and missing
    assert checks["recall disparity across grade"].value == pytest.approx(difference["recall"])
    assert checks["accuracy disparity across grade"].value == pytest.approx(difference["accuracy"])


def test_a_metric_a_slice_cannot_define_is_none_not_zero(tmp_path: Path) -> None:
    """A group without positives has no recall and one class has no ROC AUC: None, never 0 or a pass."""
    truth = np.asarray(["no"] * 6, dtype=object)
    prediction = {"task": "binary", "classes": ["no", "yes"], "labels": ["no"] * 6, "probabilities": [[0.9, 0.1]] * 6}
    measured = evaluate.task_metrics("binary", truth, prediction, undefined=np.nan)
    assert measured["roc_auc"] is None and measured["recall"] is None and measured["precision"] is None
    assert measured["accuracy"] == 1.0
    # On the whole test set such a ratio counts as 0, which fails a threshold instead of passing it.
    assert evaluate.task_metrics("binary", truth, prediction)["precision"] == 0.0


def test_a_slice_group_of_one_class_has_no_macro_average_over_classes_it_lacks() -> None:
    """Classes absent from a group are left out of its macro averages, not counted as 0 recall."""
    frame = pd.DataFrame({"size": [1.0, 1.0, 1.0, 5.0, 5.0, 5.0]})
    truth = np.asarray(["a", "a", "a", "b", "c", "c"], dtype=object)
    prediction = {"task": "multiclass", "classes": ["a", "b", "c"], "labels": ["a", "a", "a", "b", "c", "b"],
                  "probabilities": [[1.0, 0.0, 0.0]] * 6}  # fmt: skip
    report = evaluate.slices(frame, truth, prediction, {"size": {"column": "size", "bins": [3.0]}})
    small, large = report["size"]["groups"]
    assert small["metrics"]["recall_macro"] == 1.0  # only "a", all found
    assert small["metrics"]["precision_macro"] == 1.0
    assert large["metrics"]["recall_macro"] == pytest.approx((1.0 + 0.5) / 2)  # b found, c half found
    binary = {"task": "binary", "classes": ["no", "yes"], "labels": ["no"] * 6, "probabilities": [[0.8, 0.2]] * 6}
    negatives = np.asarray(["no", "no", "no", "yes", "no", "yes"], dtype=object)
    small, large = evaluate.slices(frame, negatives, binary, {"size": {"column": "size", "bins": [3.0]}})["size"][
        "groups"
    ]
    assert small["metrics"]["roc_auc"] is None and small["metrics"]["recall"] is None
    assert large["metrics"]["recall"] == 0.0 and large["metrics"]["roc_auc"] == 0.5


# ---- reproducibility ----


@pytest.mark.parametrize("task", [None, *TASKS], ids=["project", *map(str, TASKS)])
def test_training_twice_from_the_same_inputs_predicts_identically(tmp_path: Path, task: Task | None) -> None:
    """Same data, code and parameters, same model: the fingerprint's promise (ml/lineage.py)."""
    contract = project_schema() if task is None else synthetic_schema(task)
    frame = None if task is None else schema_frame(contract, 200, seed=0)
    rows = (good_frame(60) if task is None else schema_frame(contract, 60, seed=9)).drop(columns=[contract.label])
    answers = []
    for run in ("first", "second"):
        tarball = model_tarball(tmp_path / run, contract=contract, frame=frame)
        module, model = evaluate.load_packaged_model(tarball, tmp_path / f"{run}-unpacked")
        answers.append(module.predict_fn(rows, model))
    assert answers[0] == answers[1]  # every label and probability, bit for bit


# ---- what the gate decides ----

CANDIDATE = {"roc_auc": 0.97, "accuracy": 0.93, "f1": 0.9, "precision": 0.9, "recall": 0.9}


def gate_section(slices: dict[str, Any] | None = None, **changes: Any) -> GateSection:
    raw = {
        "primary_metric": "roc_auc",
        "thresholds": {"roc_auc": 0.9},
        "slices": slices or {},
        "fairness": {"metrics": ["recall", "accuracy"], "max_disparity": 0.1},
        **changes,
    }
    return GateSection.model_validate(raw)


def group(name: str, rows: int, **values: float | None) -> dict[str, Any]:
    return {"group": name, "rows": rows, "metrics": values}


def report_with(simple: float = 0.9, groups: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "baselines": {"simple": {"metrics": {**CANDIDATE, "roc_auc": simple}}, "trivial": {"metrics": {}}},
        "slices": {"size": {"column": "x", "groups": groups or []}},
    }


def test_a_candidate_that_does_not_beat_the_simple_model_by_the_margin_fails() -> None:
    strict = gate_section(min_gain_over_simple=0.02)
    decision = gate.decide(CANDIDATE, None, strict, report=report_with(simple=0.96))
    assert not decision.passed
    assert decision.failures == ["roc_auc vs simple baseline = 0.9700, needs >= 0.9800"]
    assert gate.decide(CANDIDATE, None, strict, report=report_with(simple=0.95)).passed
    # A negative margin lets it trail the simple model by as much, and no more.
    trailing = gate_section(min_gain_over_simple=-0.02)
    assert gate.decide(CANDIDATE, None, trailing, report=report_with(simple=0.99)).passed
    assert not gate.decide(CANDIDATE, None, trailing, report=report_with(simple=0.995)).passed


def test_every_judged_group_meets_its_slice_thresholds_and_small_ones_are_reported() -> None:
    slices = {"size": {"column": "x", "bins": [1.0], "min_rows": 30, "thresholds": {"accuracy": 0.9}}}
    groups = [group("< 1", 40, accuracy=0.95), group(">= 1", 35, accuracy=0.85), group("missing", 4, accuracy=0.0)]
    decision = gate.decide(CANDIDATE, None, gate_section(slices), report=report_with(groups=groups))
    assert not decision.passed
    assert decision.failures == ["accuracy on size = >= 1 = 0.8500, needs >= 0.9000"]
    assert decision.not_judged == ["accuracy on size = missing: not judged, 4 test rows, fewer than min_rows = 30"]


def test_a_metric_undefined_on_a_group_is_not_judged_rather_than_passed() -> None:
    slices = {"size": {"column": "x", "bins": [1.0], "min_rows": 1, "thresholds": {"roc_auc": 0.9}}}
    groups = [group("< 1", 40, roc_auc=None), group(">= 1", 35, roc_auc=0.95)]
    decision = gate.decide(CANDIDATE, None, gate_section(slices), report=report_with(groups=groups))
    assert decision.passed
    assert decision.not_judged == [
        "roc_auc on size = < 1: not judged, roc_auc is undefined on its 40 rows (one class only?)"
    ]


def test_a_disparity_between_groups_above_the_limit_fails() -> None:
    slices = {"size": {"column": "x", "bins": [1.0], "min_rows": 30}}
    groups = [group("< 1", 40, recall=0.95, accuracy=0.9), group(">= 1", 35, recall=0.8, accuracy=0.88),
              group("missing", 3, recall=0.0, accuracy=0.0)]  # fmt: skip
    section = gate_section(
        slices, fairness={"groups": ["size"], "metrics": ["recall", "accuracy"], "max_disparity": 0.1}
    )
    decision = gate.decide(CANDIDATE, None, section, report=report_with(groups=groups))
    assert not decision.passed
    # The 3-row group is too small to be judged, so it does not make the disparity 0.95.
    assert decision.failures == ["recall disparity across size = 0.1500, needs <= 0.1000"]
    one_group = [groups[0], group(">= 1", 5, recall=0.1, accuracy=0.1)]
    alone = gate.decide(CANDIDATE, None, section, report=report_with(groups=one_group))
    assert alone.passed
    assert "recall disparity across size: not judged, fewer than two groups with 30 rows or more" in alone.not_judged


# ---- bad settings fail when the config is checked, before any training ----


@pytest.mark.parametrize(
    ("gate_changes", "named"),
    [
        ({"slices": {"probe": {"column": "x", "bins": [15.0, 12.0]}}}, "bins must be ascending"),
        ({"slices": {"probe": {"column": "x", "bins": [1.0], "values": ["a"]}}}, "exactly one of bins"),
        ({"slices": {"probe": {"column": "x"}}}, "exactly one of bins"),
        ({"slices": {"bad name!": {"column": "x", "bins": [1.0]}}}, "gate.slices.bad name!"),
        ({"fairness": {"groups": ["nowhere"], "metrics": ["recall"]}}, "[gate.fairness].groups names nowhere"),
        ({"fairness": {"max_disparity": -0.1}}, "gate.fairness.max_disparity"),
    ],
)  # fmt: skip
def test_a_malformed_slice_or_fairness_setting_names_its_key(
    make_config: MakeConfig, gate_changes: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError) as error:
        make_config(gate=gate_changes)
    assert named in str(error.value) and "mlops.toml" in str(error.value)


@pytest.mark.parametrize(
    ("gate_changes", "named"),
    [
        ({"slices": {"s": {"column": "no such column", "bins": [1.0]}}}, "[gate.slices.s].column = 'no such column'"),
        ({"slices": {"s": {"column": "colour", "bins": [1.0]}}}, "cuts 'colour' by bins, but it is categorical"),
        ({"slices": {"s": {"column": "colour", "values": ["purple"]}}}, "lists purple, which 'colour' never takes"),
        ({"slices": {"s": {"column": "length", "bins": [1.0], "thresholds": {"accuracy": 1.5}}}},
         "[gate.slices.s].thresholds.accuracy = 1.5"),
        ({"slices": {"s": {"column": "length", "bins": [1.0], "thresholds": {"r2": 0.5}}}},
         "[gate.slices.s].thresholds in"),
        ({"thresholds": {"accuracy": -0.2}}, "[gate.thresholds].accuracy = -0.2"),
        ({"slices": {"s": {"column": "length", "bins": [1.0]}},
          "fairness": {"groups": ["s"], "metrics": ["recall"], "max_disparity": 1.5}}, "max_disparity = 1.5"),
        ({"slices": {"s": {"column": "length", "bins": [1.0]}},
          "fairness": {"groups": ["s"], "metrics": ["rmse"]}}, "[gate.fairness].metrics in"),
        ({"min_gain_over_simple": 2.0}, "[gate].min_gain_over_simple = 2.0"),
    ],
)  # fmt: skip
def test_a_slice_setting_the_data_cannot_meet_is_refused_with_the_fix(gate_changes: dict[str, Any], named: str) -> None:
    section = gate_section(**gate_changes)
    with pytest.raises(ConfigError) as error:
        tasks.check_config(synthetic_schema(Task.BINARY), section, MonitorSection(), "mlops.toml")
    assert named in str(error.value)


def test_the_suggested_slices_fit_the_data_they_were_suggested_for() -> None:
    """What `make infer-schema` prints for new data passes the same checks."""
    for task in TASKS:
        contract = synthetic_schema(task)
        suggested = tomllib.loads(tasks.suggested_slices(contract, schema_frame(contract, 120, seed=1)))["gate"]
        primary, thresholds = tasks.SUGGESTED_GATE[task]
        section = GateSection.model_validate({"primary_metric": primary, "thresholds": thresholds, **suggested})
        tasks.check_config(contract, section, MonitorSection(quality_metrics=tasks.SUGGESTED_QUALITY[task]), "x")
        assert list(section.slices) == list(section.fairness.groups) == ["length"]


def test_the_projects_own_slices_fit_its_schema(make_config: MakeConfig) -> None:
    config = make_config()
    tasks.check_config(project_schema(), config.gate, config.monitor, config.path)
