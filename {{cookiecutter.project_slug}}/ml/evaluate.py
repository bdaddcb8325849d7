"""Evaluation entry point, run as a SageMaker processing job (or its local twin).

It scores the candidate and, when given, the champion on the same held-out test set,
loading each model through its own packaged inference.py exactly as the endpoint will.
Inputs and outputs follow the processing-job layout under --root:

  input/model/model.tar.gz      the candidate
  input/champion/model.tar.gz   optional: the current champion
  input/test/*.csv              the test set
  input/train/*.csv             optional: the training split, to fit the baselines on
  input/judging/judging.json    optional: {"primary_metric": m, "slices": {name: {"column": c,
                                "bins": [edges]} or {"column": c, "values": [...]}}} ([gate] in mlops.toml)
  output/evaluation/evaluation.json

Beside the metrics it reports what a reviewer asks next: how two baselines fitted on the same
training split score (a trivial one and a regularised linear one: is the model worth its
complexity?), the metrics on each slice of the test set that judging.json declares (where does it
fail? whom does it serve worse?), and each feature's permutation importance (what did it learn?).
The gate (ml/gate.py) judges these numbers; this job only measures them.

Only the container's libraries may be imported here (fairlearn is not one of them: per-group
metrics are computed with scikit-learn, and tests check them against fairlearn's MetricFrame).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import itertools
import json
import sys
import tarfile
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics

ROC_POINTS = 101  # enough for a smooth curve, small enough for the registry's metrics JSON
HERE = Path(__file__).resolve().parent
IMPORTANCE_REPEATS = 5  # shuffles per feature: scikit-learn's default for permutation_importance
IMPORTANCE_SEED = 0
LOWER_IS_BETTER = ("rmse", "mae")  # ml/tasks.py's error metrics; every other metric is a score


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", default="/opt/ml/processing")
    parser.add_argument("--label", default="", help="the label column (default: the candidate's schema's)")
    parser.add_argument("--reference-rows", type=int, default=25, help="test rows kept with their predictions")
    return parser.parse_args(argv)


def load_packaged_model(tarball: Path, workdir: Path) -> tuple[ModuleType, Any]:
    """Unpack model.tar.gz and load it through its own code/inference.py."""
    with tarfile.open(tarball) as archive:
        archive.extractall(workdir, filter="data")
    spec = importlib.util.spec_from_file_location(f"inference_{workdir.name}", workdir / "code" / "inference.py")
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"{tarball} has no code/inference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, module.model_fn(str(workdir))


def _truth(frame: pd.DataFrame, label: str, task: str, classes: list[Any]) -> np.ndarray[Any, Any]:
    if task == "regression":
        return frame[label].astype(float).to_numpy()
    by_text = {str(c): c for c in classes}
    return np.asarray([by_text.get(str(v), v) for v in frame[label]], dtype=object)


def task_metrics(
    task: str, truth: np.ndarray[Any, Any], prediction: dict[str, Any], undefined: float = 0.0, only: str = ""
) -> dict[str, float | None]:
    """ml/tasks.py's metrics of the task on these rows (only that one, if `only` names one).

    On the whole test set a ratio with nothing to divide by counts as `undefined` = 0 (no predicted
    positive: precision 0), which fails a threshold rather than passing it. A slice is measured with
    undefined = nan, and such a metric is None: one class only (no ROC AUC), no positive (no
    recall), one row (no r2). The gate reports it as not judged instead of passing or failing it.
    """
    calculators = _calculators(task, truth, prediction, undefined)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a slice without some class warns; its metric is still defined
        values = {name: calculate() for name, calculate in calculators.items() if not only or name == only}
    return {name: None if value is None or np.isnan(value) else float(value) for name, value in values.items()}


Calculator = Callable[[], "float | None"]


def _calculators(
    task: str, truth: np.ndarray[Any, Any], prediction: dict[str, Any], undefined: float
) -> dict[str, Calculator]:
    """Each metric of the task, computed only when called: importance needs one, 150 times."""
    if task == "regression":
        predicted = np.asarray(prediction["values"], dtype=float)
        return {
            "r2": lambda: metrics.r2_score(truth, predicted) if len(truth) > 1 else None,
            "rmse": lambda: np.sqrt(metrics.mean_squared_error(truth, predicted)),
            "mae": lambda: metrics.mean_absolute_error(truth, predicted),
        }
    names = [str(c) for c in prediction["classes"]]
    truth_text = truth.astype(str)
    predicted_text = np.asarray(prediction["labels"], dtype=object).astype(str)
    if task == "binary":
        actual = (truth_text == names[1]).astype(int)
        found = (predicted_text == names[1]).astype(int)
        scores = np.asarray(prediction["probabilities"], dtype=float).reshape(-1, 2)[:, 1]
        return {
            "roc_auc": lambda: metrics.roc_auc_score(actual, scores) if len(set(actual)) == 2 else None,
            "accuracy": lambda: metrics.accuracy_score(actual, found),
            "f1": lambda: metrics.f1_score(actual, found, zero_division=undefined),
            "precision": lambda: metrics.precision_score(actual, found, zero_division=undefined),
            "recall": lambda: metrics.recall_score(actual, found, zero_division=undefined),
        }
    macro: dict[str, Any] = {"labels": names, "average": "macro", "zero_division": undefined}
    return {
        "accuracy": lambda: metrics.accuracy_score(truth_text, predicted_text),
        "balanced_accuracy": lambda: metrics.balanced_accuracy_score(truth_text, predicted_text),
        "f1_macro": lambda: metrics.f1_score(truth_text, predicted_text, **macro),
        "precision_macro": lambda: metrics.precision_score(truth_text, predicted_text, **macro),
        "recall_macro": lambda: metrics.recall_score(truth_text, predicted_text, **macro),
    }


def _classification(truth: np.ndarray[Any, Any], prediction: dict[str, Any]) -> dict[str, Any]:
    classes = list(prediction["classes"])
    predicted = np.asarray(prediction["labels"], dtype=object)
    matrix = np.asarray(prediction["probabilities"], dtype=float)
    truth_text, predicted_text = truth.astype(str), predicted.astype(str)
    names = [str(c) for c in classes]
    report: dict[str, Any] = {
        "classes": classes,
        "metrics": task_metrics(prediction["task"], truth, prediction),
        "confusion_matrix": metrics.confusion_matrix(truth_text, predicted_text, labels=names).tolist(),
        "per_class": {
            name: {
                "precision": float(p),
                "recall": float(r),
                "f1": float(f),
                "support": int(n),
            }
            for name, p, r, f, n in zip(
                names,
                *metrics.precision_recall_fscore_support(truth_text, predicted_text, labels=names, zero_division=0),
                strict=True,
            )
        },
    }
    if prediction["task"] == "binary":
        fpr, tpr, _ = metrics.roc_curve((truth_text == names[1]).astype(int), matrix[:, 1])
        grid = np.linspace(0.0, 1.0, ROC_POINTS)
        report["positive_class"] = classes[1]
        # Resampled on a fixed grid; the curve starts at (0, 0) like every ROC curve.
        report["roc_curve"] = {"fpr": [0.0, *grid.tolist()], "tpr": [0.0, *np.interp(grid, fpr, tpr).tolist()]}
    return report


RESIDUAL_POINTS = 500  # (actual, predicted) pairs kept for the residual plot


def _regression(truth: np.ndarray[Any, Any], prediction: dict[str, Any]) -> dict[str, Any]:
    predicted = np.asarray(prediction["values"], dtype=float)
    keep = np.linspace(0, len(truth) - 1, min(len(truth), RESIDUAL_POINTS)).astype(int)
    return {
        "metrics": task_metrics("regression", truth, prediction),
        "residuals": {"actual": truth[keep].tolist(), "predicted": predicted[keep].tolist()},
    }


def predicted(
    module: ModuleType, model: Any, frame: pd.DataFrame, label: str
) -> tuple[np.ndarray[Any, Any], dict[str, Any]]:
    """The frame's truth and the model's answers for it, through its own predict_fn."""
    return _truth(frame, label, model["task"], list(model["classes"])), module.predict_fn(
        frame.drop(columns=[label]), model
    )


def score(module: ModuleType, model: Any, frame: pd.DataFrame, label: str) -> dict[str, Any]:
    """The task's metrics (ml/tasks.py lists them) and what its plots need, on this frame."""
    return scored(model["task"], *predicted(module, model, frame, label))


def scored(task: str, truth: np.ndarray[Any, Any], prediction: dict[str, Any]) -> dict[str, Any]:
    report = _regression(truth, prediction) if task == "regression" else _classification(truth, prediction)
    return {"task": task, **report, "rows": len(truth)}


@functools.cache
def _sibling(name: str) -> ModuleType:
    """train.py, which ships beside this file: the baselines share its data preparation."""
    spec = importlib.util.spec_from_file_location(f"evaluate_{name}", HERE / f"{name}.py")
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no {name}.py beside {__file__}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


def baseline_estimators(task: str) -> dict[str, Any]:
    """The two models a candidate is measured against: one that reads no feature, one linear model.

    Both go through train.py's own preparation (imputation, one-hot encoding); the linear one also
    standardises, as regularised linear models need. Their defaults are deliberate: a baseline
    that needs tuning is not a baseline.
    """
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if task == "regression":
        return {"trivial": DummyRegressor(strategy="mean"), "simple": make_pipeline(StandardScaler(), Ridge(alpha=1.0))}
    return {
        "trivial": DummyClassifier(strategy="prior"),
        "simple": make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000)),
    }


def fitted_prediction(estimator: Any, features: pd.DataFrame, task: str, classes: list[Any]) -> dict[str, Any]:
    """A fitted scikit-learn model's answers in inference.py's shape, classes in the candidate's order."""
    if task == "regression":
        return {"task": task, "values": [float(v) for v in estimator.predict(features)]}
    known = [str(c) for c in estimator.classes_]
    matrix = np.zeros((len(features), len(classes)))
    for column, probabilities in zip(known, np.asarray(estimator.predict_proba(features)).T, strict=True):
        matrix[:, [str(c) for c in classes].index(column)] = probabilities
    if task == "binary":
        labels = [classes[1] if p >= 0.5 else classes[0] for p in matrix[:, 1]]
    else:
        labels = [classes[int(i)] for i in matrix.argmax(axis=1)]
    return {"task": task, "classes": classes, "labels": labels, "probabilities": matrix.tolist()}


def baselines(train_frame: pd.DataFrame, test_frame: pd.DataFrame, model: Any, label: str) -> dict[str, Any]:
    """The trivial and the simple baseline, fitted on the training split, scored on the test set."""
    training = _sibling("train")
    schema, task, classes = model["schema"], model["task"], list(model["classes"])
    truth = _truth(test_frame, label, task, classes)
    test_features = training.features_frame(test_frame, schema)
    report = {}
    for role, estimator in baseline_estimators(task).items():
        pipeline = training.build_pipeline(schema, estimator)
        pipeline.fit(training.features_frame(train_frame, schema), training.labels(train_frame, schema))
        prediction = fitted_prediction(pipeline, test_features, task, classes)
        report[role] = {
            "estimator": describe(estimator),
            "metrics": task_metrics(task, truth, prediction),
        }
    return report


def describe(estimator: Any) -> str:
    """The model as a reviewer reads it: its steps and their non-default parameters."""
    steps = getattr(estimator, "steps", [(None, estimator)])
    return " + ".join(repr(step) for _, step in steps)


def slice_groups(column: pd.Series[Any], spec: dict[str, Any]) -> tuple[list[str], np.ndarray[Any, Any]]:
    """Each row's group in a slice, and the groups in order: bins low to high, or values then "other".

    Edges [a, b] give "< a", "a to b" (a <= x < b) and ">= b", like numpy.digitize; a missing
    value is a group of its own, "missing", so rows the model imputes are judged too.
    """
    if spec.get("bins"):
        edges = [float(e) for e in spec["bins"]]
        names = [f"< {edges[0]:g}"]
        names += [f"{low:g} to {high:g}" for low, high in itertools.pairwise(edges)]
        names.append(f">= {edges[-1]:g}")
        numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
        index = np.searchsorted(np.asarray(edges), numbers, side="right")
        groups = np.asarray([names[i] for i in index], dtype=object)
    else:
        training = _sibling("train")
        names = [training.category_text(v) for v in spec["values"]] + ["other"]
        text = column.map(training.category_text, na_action="ignore")
        groups = np.asarray([v if v in names[:-1] else "other" for v in text.fillna("other")], dtype=object)
    missing = column.isna().to_numpy()
    groups[missing] = "missing"
    return [*names, *(["missing"] if missing.any() else [])], groups


def _rows(prediction: dict[str, Any], selector: Any) -> dict[str, Any]:
    """The prediction's answers for some rows (a boolean mask or a slice), as arrays."""
    kept = dict(prediction)
    for key in ("values", "labels", "probabilities"):
        if key in prediction:
            kept[key] = np.asarray(prediction[key], dtype=object if key == "labels" else float)[selector]
    return kept


def slices(
    frame: pd.DataFrame, truth: np.ndarray[Any, Any], prediction: dict[str, Any], specs: dict[str, Any]
) -> dict[str, Any]:
    """Every metric per group of every slice, with the group's row count (the gate judges them)."""
    report = {}
    for name, spec in specs.items():
        names, groups = slice_groups(frame[spec["column"]], spec)
        masks = {group: groups == group for group in names}
        report[name] = {
            "column": spec["column"],
            "groups": [
                {
                    "group": group,
                    "rows": int(mask.sum()),
                    "metrics": task_metrics(prediction["task"], truth[mask], _rows(prediction, mask), np.nan)
                    if mask.any()
                    else {},
                }
                for group, mask in masks.items()
            ],
        }
    return report


def permutation_importance(
    module: ModuleType,
    model: Any,
    features: pd.DataFrame,
    truth: np.ndarray[Any, Any],
    metric: str,
    unshuffled: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """How much the metric drops when one feature's values are shuffled: what the model relies on.

    The shuffles are scikit-learn's permutation_importance's exactly (tests compare the two), but
    every shuffled copy is scored in one call of the model's own predict_fn instead of one call per
    feature and repeat: a forest's per-call overhead made that the slowest part of evaluation.
    unshuffled: the model's answers for the features as they are, when the caller has them already.
    """
    task = model["task"]
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    reference = unshuffled if unshuffled is not None else module.predict_fn(features, model)
    reference_score = sign * _metric(task, truth, reference, metric)
    seed = np.random.RandomState(IMPORTANCE_SEED).randint(np.iinfo(np.int32).max + 1)
    copies = []
    for column in features.columns:
        shuffler = np.random.RandomState(seed)
        order = np.arange(len(features))
        values = features[column].to_numpy()
        for _ in range(IMPORTANCE_REPEATS):
            shuffler.shuffle(order)
            values = values[order]  # each repeat shuffles the last one's column again, as scikit-learn does
            copy = features.copy()
            copy[column] = values
            copies.append(copy)
    stacked = _rows(module.predict_fn(pd.concat(copies, ignore_index=True), model), slice(None))
    rows = len(features)
    drops = np.asarray(
        [
            reference_score - sign * _metric(task, truth, _rows(stacked, slice(i * rows, (i + 1) * rows)), metric)
            for i in range(len(copies))
        ]
    ).reshape(len(features.columns), IMPORTANCE_REPEATS)
    means = {str(column): float(drop.mean()) for column, drop in zip(features.columns, drops, strict=True)}
    spread = {str(column): float(drop.std()) for column, drop in zip(features.columns, drops, strict=True)}
    ranked = [
        {"feature": name, "mean": means[name], "std": spread[name]}
        for name in sorted(means, key=means.__getitem__, reverse=True)
    ]
    return {
        "metric": metric,
        "repeats": IMPORTANCE_REPEATS,
        "seed": IMPORTANCE_SEED,
        "features": ranked,
        # No drop beyond the shuffles' noise (scikit-learn's guide reads mean - 2 std > 0 as real):
        # the model does not use these, or a correlated feature stands in for each of them.
        "no_contribution": [name for name in means if means[name] - 2 * spread[name] <= 0.0],
    }


def _metric(task: str, truth: np.ndarray[Any, Any], prediction: dict[str, Any], name: str) -> float:
    value = task_metrics(task, truth, prediction, only=name)[name]
    if value is None:
        raise ValueError(f"{name} is undefined on this test set (one class only?): choose another primary metric")
    return value


def reference(module: ModuleType, model: Any, text: pd.DataFrame, label: str, rows: int) -> dict[str, Any]:
    """Test rows, as the CSV holds them, and the model's offline answers for them.

    The smoke test sends these rows to the deployed model and fails on any difference beyond
    floating-point noise (training/serving skew). The offline answers come from the same text the
    endpoint receives, so only a real difference in model, code or libraries shows.
    """
    sample = text.drop(columns=[label]).head(rows)
    return {
        "features": list(sample.columns),
        "rows": sample.to_numpy(dtype=object).tolist(),
        "answers": module.answers(module.predict_fn(sample, model)),
    }


def evaluate(
    root: Path,
    label: str,
    reference_rows: int = 25,
    primary_metric: str = "",
    slice_specs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    frame = _read_channel(root, "test")
    text = _read_channel(root, "test", as_text=True)
    report: dict[str, Any] = {"candidate": None, "champion": None}
    with tempfile.TemporaryDirectory() as scratch:
        for role in ("candidate", "champion"):
            channel = "model" if role == "candidate" else "champion"
            tarball = root / "input" / channel / "model.tar.gz"
            if tarball.exists():
                module, model = load_packaged_model(tarball, Path(scratch) / role)
                label = label or model["schema"]["label"]["name"]
                truth, prediction = predicted(module, model, frame, label)
                report[role] = scored(model["task"], truth, prediction)
                if role == "candidate":
                    report["reference"] = reference(module, model, text, label, reference_rows)
                    judged = Judged(module, model, frame, label, truth, prediction)
                    report.update(judged_parts(root, judged, primary_metric, slice_specs or {}))
    if report["candidate"] is None:
        raise FileNotFoundError(f"no candidate model at {root / 'input' / 'model'}")
    return report


@dataclass(frozen=True)
class Judged:
    """The candidate on the test set, predicted once for its metrics, its slices and its importance."""

    module: ModuleType
    model: Any
    frame: pd.DataFrame
    label: str
    truth: np.ndarray[Any, Any]
    prediction: dict[str, Any]


def judged_parts(root: Path, judged: Judged, primary_metric: str, slice_specs: dict[str, Any]) -> dict[str, Any]:
    """The candidate's baselines, slices and feature importance on the test set."""
    module, model, frame, label, truth, prediction = (
        judged.module, judged.model, judged.frame, judged.label, judged.truth, judged.prediction
    )  # fmt: skip
    task = model["task"]
    features = frame.drop(columns=[label])
    unknown = sorted({spec["column"] for spec in slice_specs.values()} - set(features.columns))
    if unknown:
        raise ValueError(f"judging.json slices column(s) {', '.join(unknown)}, which the test set does not have")
    clock = time.perf_counter()
    parts: dict[str, Any] = {"slices": slices(frame, truth, prediction, slice_specs)}
    seconds = {"slices": time.perf_counter() - clock}
    clock = time.perf_counter()
    metric = primary_metric or next(iter(task_metrics(task, truth, prediction)))
    parts["importance"] = permutation_importance(module, model, features, truth, metric, prediction)
    seconds["importance"] = time.perf_counter() - clock
    if (root / "input" / "train").is_dir():
        clock = time.perf_counter()
        parts["baselines"] = baselines(_read_channel(root, "train"), frame, model, label)
        seconds["baselines"] = time.perf_counter() - clock
    # What each part adds to the job (make bench reports them).
    parts["seconds"] = {name: round(value, 3) for name, value in seconds.items()}
    return parts


def _read_channel(root: Path, channel: str, as_text: bool = False) -> pd.DataFrame:
    files = sorted((root / "input" / channel).glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no {channel} CSV under {root / 'input' / channel}")
    options: dict[str, Any] = {"dtype": str, "keep_default_na": False} if as_text else {}
    frame: pd.DataFrame = pd.concat([pd.read_csv(path, **options) for path in files], ignore_index=True)
    return frame


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(args.root)
    judging = root / "input" / "judging" / "judging.json"
    settings = json.loads(judging.read_text()) if judging.is_file() else {}
    report = evaluate(root, args.label, args.reference_rows, settings.get("primary_metric", ""), settings.get("slices"))
    output = root / "output" / "evaluation"
    output.mkdir(parents=True, exist_ok=True)
    (output / "evaluation.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({role: report[role] and report[role]["metrics"] for role in ("candidate", "champion")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
