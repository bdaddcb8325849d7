"""SageMaker script-mode training entry point.

Runs unchanged in the prebuilt SageMaker scikit-learn container and in the local job
runner: both set SM_MODEL_DIR, SM_CHANNEL_TRAIN, SM_CHANNEL_SCHEMA and SM_OUTPUT_DIR and pass
hyperparameters as --name value arguments. Outside either, the defaults below let it run from
a shell. Only the container's libraries may be imported here (scikit-learn, pandas, numpy,
joblib), plus what ml/requirements.txt adds (the container pip-installs it before training).

The model is a scikit-learn Pipeline built from the schema the data step hands over
(schema.json in the schema channel): missing numbers imputed by the median, categories imputed
by the most frequent value and one-hot encoded (unseen ones ignored), then the estimator that
--estimator names, with every other --name value passed to it as a parameter.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

HERE = Path(__file__).resolve().parent
DEFAULT_ESTIMATOR = "sklearn.ensemble.RandomForestClassifier"


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, dict[str, Any]]:
    """The container's arguments, and every other --name value as the estimator's parameters."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--estimator", default=DEFAULT_ESTIMATOR, help="the estimator class, by import path")
    # SageMaker sets SM_NUM_CPUS to the instance's cores, the local runner to this machine's. An estimator
    # with a fixed random_state is the same model however many jobs fit it, so this is not a parameter
    # of the model (nor of its fingerprint), only of how fast it trains; used if the estimator takes n_jobs.
    parser.add_argument("--n_jobs", type=int, default=int(os.environ.get("SM_NUM_CPUS", "1")))
    parser.add_argument("--label", default="", help="the label column (default: the schema's)")
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "model"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN", "data/train"))
    parser.add_argument("--schema", default=os.environ.get("SM_CHANNEL_SCHEMA", "data/schema"))
    parser.add_argument("--output-dir", default=os.environ.get("SM_OUTPUT_DIR", "output"))
    args, rest = parser.parse_known_args(argv)
    return args, hyperparameters(rest)


def parse_value(text: str) -> Any:
    """A hyperparameter from its text (SageMaker passes strings): a number, a boolean, None or text."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def hyperparameters(arguments: list[str]) -> dict[str, Any]:
    """--name value pairs (or --name=value) as a dict, values parsed."""
    params: dict[str, Any] = {}
    items = iter(arguments)
    for item in items:
        if not item.startswith("--"):
            raise ValueError(f"unexpected argument {item!r}: hyperparameters come as --name value")
        name, equals, value = item[2:].partition("=")
        if not equals:
            following = next(items, None)
            if following is None:
                raise ValueError(f"hyperparameter --{name} has no value")
            value = following
        params[name.replace("-", "_")] = parse_value(value)
    return params


def load_schema(channel: Path) -> dict[str, Any]:
    path = channel / "schema.json" if channel.is_dir() else channel
    if not path.is_file():
        raise FileNotFoundError(f"no schema.json in the schema channel {channel}")
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def load_training_data(channel: Path) -> pd.DataFrame:
    files = sorted(channel.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no CSV files in the train channel {channel}")
    return pd.concat([pd.read_csv(path) for path in files], ignore_index=True)


def features_frame(frame: pd.DataFrame, schema: dict[str, Any]) -> pd.DataFrame:
    """The schema's feature columns in its order, numbers as floats and categories as text (missing stays missing)."""
    columns = {}
    for feature in schema["features"]:
        values = frame[feature["name"]]
        if feature["kind"] == "numeric":
            columns[feature["name"]] = pd.to_numeric(values, errors="raise").astype(float)
        else:
            columns[feature["name"]] = values.map(category_text, na_action="ignore").astype(object)
    return pd.DataFrame(columns, index=frame.index)


def category_text(value: Any) -> str:
    """A category as text, the same way everywhere: 3.0 (an integer column pandas widened) reads as 3."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def build_estimator(path: str, params: dict[str, Any], n_jobs: int) -> Any:
    module_name, _, class_name = path.rpartition(".")
    estimator_class = getattr(importlib.import_module(module_name), class_name)
    estimator = estimator_class(**params)
    if "n_jobs" in estimator.get_params(deep=False) and "n_jobs" not in params:
        estimator.set_params(n_jobs=n_jobs)
    return estimator


def build_pipeline(schema: dict[str, Any], estimator: Any) -> Pipeline:
    numeric = [f["name"] for f in schema["features"] if f["kind"] == "numeric"]
    categorical = [f["name"] for f in schema["features"] if f["kind"] == "categorical"]
    steps: list[tuple[str, Any, list[str]]] = []
    if numeric:
        steps.append(("numeric", SimpleImputer(strategy="median"), numeric))
    if categorical:
        encode = Pipeline(
            [
                ("impute", SimpleImputer(strategy="most_frequent")),
                ("one_hot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        steps.append(("categorical", encode, categorical))
    return Pipeline([("prepare", ColumnTransformer(steps)), ("model", estimator)])


@dataclass
class Trained:
    model: Pipeline
    schema: dict[str, Any]
    frame: pd.DataFrame  # kept for the monitoring baseline
    estimator: str = DEFAULT_ESTIMATOR  # the import path it was built from

    @property
    def features(self) -> list[str]:
        return [f["name"] for f in self.schema["features"]]


def labels(frame: pd.DataFrame, schema: dict[str, Any]) -> pd.Series[Any]:
    label = schema["label"]
    values = frame[label["name"]]
    if label["task"] == "regression":
        numbers: pd.Series[Any] = pd.to_numeric(values, errors="raise").astype(float)
        return numbers
    # Labels keep the type the schema lists them in, so predictions name the classes as the data does.
    by_text = {category_text(c): c for c in label["classes"]}
    classes: pd.Series[Any] = values.map(lambda v: by_text.get(category_text(v), v))
    return classes


def train(args: argparse.Namespace, params: dict[str, Any]) -> Trained:
    schema = load_schema(Path(args.schema))
    label = args.label or schema["label"]["name"]
    if label != schema["label"]["name"]:
        raise ValueError(f"--label {label!r} differs from the schema's label {schema['label']['name']!r}")
    frame = load_training_data(Path(args.train))
    if label not in frame.columns:
        raise ValueError(f"label column {label!r} is not in the training data")
    model = build_pipeline(schema, build_estimator(args.estimator, params, args.n_jobs))
    model.fit(features_frame(frame, schema), labels(frame, schema))
    estimator = model.named_steps["model"]
    print(f"trained {estimator.__class__.__name__} on {len(frame)} rows, {len(schema['features'])} features")
    return Trained(model, schema, frame, args.estimator)


BASELINE_BUCKETS = 10


def _numeric_statistics(values: pd.Series[Any]) -> tuple[dict[str, Any], float]:
    """A numeric feature's statistics in Model Monitor's shape, buckets at the training deciles
    (or one per value, for a number with at most BASELINE_BUCKETS values).

    The bucket edges are the training deciles rather than equal widths: on skewed features,
    equal-width tail buckets hold a handful of rows, and sampling noise alone then moves the test.
    """
    present = values.dropna().astype(float)
    low, high = (float(present.min()), float(present.max())) if len(present) else (0.0, 0.0)
    distinct = np.unique(present)
    if 1 < len(distinct) <= BASELINE_BUCKETS:
        # A number with few values (a 0/1 flag, a count, diabetes' sex): one bucket per value. Its
        # deciles fold into one or two buckets, in which a change of the mix cannot show.
        edges = np.append(distinct, distinct[-1] + 1.0)
    else:
        edges = np.unique(np.quantile(present, np.linspace(0.0, 1.0, BASELINE_BUCKETS + 1))) if len(present) else []
    if len(edges) < 2:  # a constant (or empty) feature: one bucket around its value
        edges = np.array([low, low + 1.0])
    counts, _ = np.histogram(present, bins=edges)
    statistics = {
        "common": {"num_present": len(present), "num_missing": int(values.isna().sum())},
        "mean": float(present.mean()) if len(present) else 0.0,
        "sum": float(present.sum()),
        "std_dev": float(present.std(ddof=0)) if len(present) else 0.0,
        "min": low,
        "max": high,
        "distribution": {
            "kll": {
                "buckets": [
                    {"lower_bound": float(a), "upper_bound": float(b), "count": float(c)}
                    for a, b, c in zip(edges[:-1], edges[1:], counts, strict=True)
                ]
            }
        },
    }
    return statistics, low


def _string_statistics(values: pd.Series[Any], categories: list[str]) -> dict[str, Any]:
    """A categorical feature's statistics in Model Monitor's shape: one bucket per declared category."""
    present = values.dropna().map(category_text)
    counts = present.value_counts()
    return {
        "common": {"num_present": len(present), "num_missing": int(values.isna().sum())},
        "distinct_count": float(present.nunique()),
        "distribution": {
            "categorical": {"buckets": [{"value": c, "count": float(counts.get(c, 0))} for c in categories]}
        },
    }


def baseline(frame: pd.DataFrame, schema: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """SageMaker Model Monitor's data-quality baseline: statistics.json and constraints.json.

    The same files serve the monitor locally and in AWS (ml/monitor.py, ml/monitor_job.py); their
    shape stays Model Monitor's (numeric features "Fractional" with KLL-shaped buckets, categorical
    ones "String" with categorical buckets), so other tools that read that format can read them.
    A feature that may be missing gets completeness 0 (its missing share is judged as part of the
    drift test instead); one that may not, completeness 1.
    """
    statistics: list[dict[str, Any]] = []
    constraints: list[dict[str, Any]] = []
    for feature in schema["features"]:
        name = feature["name"]
        values = frame[name]
        constraint: dict[str, Any] = {"name": name, "completeness": 0.0 if feature.get("nullable") else 1.0}
        if feature["kind"] == "numeric":
            numeric, low = _numeric_statistics(pd.to_numeric(values, errors="coerce"))
            statistics.append({"name": name, "inferred_type": "Fractional", "numerical_statistics": numeric})
            constraint["inferred_type"] = "Fractional"
            if low >= 0:
                constraint["num_constraints"] = {"is_non_negative": True}
        else:
            string = _string_statistics(values, list(feature["categories"]))
            statistics.append({"name": name, "inferred_type": "String", "string_statistics": string})
            constraint["inferred_type"] = "String"
        constraints.append(constraint)
    return (
        {"version": 0.0, "dataset": {"item_count": len(frame)}, "features": statistics},
        {
            "version": 0.0,
            "features": constraints,
            "monitoring_config": {
                "evaluate_constraints": "Enabled",
                "emit_metrics": "Enabled",
                "datatype_check_threshold": 1.0,
                "domain_content_threshold": 1.0,
                "distribution_constraints": {
                    "perform_comparison": "Enabled",
                    "comparison_threshold": 0.1,
                    "comparison_method": "Robust",
                },
            },
        },
    )


def _plain(value: Any) -> Any:
    """numpy scalars as the JSON-able Python values they hold."""
    return value.item() if isinstance(value, np.generic) else value


def save_model(trained: Trained, model_dir: Path) -> None:
    """Write what the serving container loads (the model, its metadata, inference.py) and the baseline.

    inference.py goes into model_dir/code so that model.tar.gz serves on its own, the
    layout the SageMaker scikit-learn container reads when SAGEMAKER_PROGRAM is set (with
    requirements.txt, if the project has one, which the container pip-installs); the
    monitoring baseline goes into model_dir/baseline, so every model carries its own.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    estimator = trained.model.named_steps["model"]
    # Serving answers one small request at a time: a thread pool per prediction only adds latency.
    if "n_jobs" in estimator.get_params(deep=False):
        estimator.set_params(n_jobs=None)
    joblib.dump(trained.model, model_dir / "model.joblib")
    label = trained.schema["label"]
    classes = [_plain(c) for c in getattr(estimator, "classes_", [])]
    metadata = {
        "features": trained.features,
        "label": label["name"],
        "task": label["task"],
        "classes": classes,
        "schema": trained.schema,
        "estimator": trained.estimator,
        "scikit_learn": sklearn.__version__,
    }
    (model_dir / "metadata.json").write_text(json.dumps(metadata, indent=2))
    code_dir = model_dir / "code"
    code_dir.mkdir(exist_ok=True)
    shutil.copy2(HERE / "inference.py", code_dir / "inference.py")
    if (HERE / "requirements.txt").is_file():
        shutil.copy2(HERE / "requirements.txt", code_dir / "requirements.txt")
    statistics, constraints = baseline(trained.frame, trained.schema)
    baseline_dir = model_dir / "baseline"
    baseline_dir.mkdir(exist_ok=True)
    (baseline_dir / "statistics.json").write_text(json.dumps(statistics, indent=2))
    (baseline_dir / "constraints.json").write_text(json.dumps(constraints, indent=2))


def stop_worker_processes() -> None:
    """End joblib's process pool, if the estimator started one (LogisticRegression with n_jobs does).

    Its idle workers live on for 300 s, and the interpreter waits for them at exit: the job would
    end five minutes after the model was saved.
    """
    from joblib.externals.loky import reusable_executor

    executor = getattr(reusable_executor, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=False, kill_workers=True)


def main(argv: list[str] | None = None) -> int:
    output = Path(os.environ.get("SM_OUTPUT_DIR", "output"))
    try:
        args, params = parse_args(argv)
        output = Path(args.output_dir)
        save_model(train(args, params), Path(args.model_dir))
        stop_worker_processes()
    except Exception as exc:
        # SageMaker reports the content of this file as the job's FailureReason.
        output.mkdir(parents=True, exist_ok=True)
        (output / "failure").write_text(f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
