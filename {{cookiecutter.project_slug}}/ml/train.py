"""SageMaker script-mode training entry point.

Runs unchanged in the prebuilt SageMaker scikit-learn container and in the local job
runner: both set SM_MODEL_DIR, SM_CHANNEL_TRAIN and SM_OUTPUT_DIR and pass hyperparameters
as --name value arguments. Outside either, the defaults below let it run from a shell.
Only the container's libraries may be imported here (scikit-learn, pandas, numpy, joblib).
"""

from __future__ import annotations

import argparse
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
from sklearn.ensemble import RandomForestClassifier

HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n_estimators", type=int, default=200)
    parser.add_argument("--max_depth", type=int, default=0, help="0 means unlimited")
    parser.add_argument("--min_samples_leaf", type=int, default=1)
    parser.add_argument("--random_state", type=int, default=42)
    # SageMaker sets SM_NUM_CPUS to the instance's cores, the local runner to this machine's. A forest
    # with a fixed random_state is the same model however many jobs fit it, so this is not a parameter
    # of the model (nor of its fingerprint), only of how fast it trains.
    parser.add_argument("--n_jobs", type=int, default=int(os.environ.get("SM_NUM_CPUS", "1")))
    parser.add_argument("--label", default="malignant")
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "model"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN", "data/train"))
    parser.add_argument("--output-dir", default=os.environ.get("SM_OUTPUT_DIR", "output"))
    return parser.parse_args(argv)


def load_training_data(channel: Path) -> pd.DataFrame:
    files = sorted(channel.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no CSV files in the train channel {channel}")
    return pd.concat([pd.read_csv(path) for path in files], ignore_index=True)


@dataclass
class Trained:
    model: RandomForestClassifier
    features: list[str]
    frame: pd.DataFrame  # kept for the monitoring baseline


def train(args: argparse.Namespace) -> Trained:
    frame = load_training_data(Path(args.train))
    if args.label not in frame.columns:
        raise ValueError(f"label column {args.label!r} is not in the training data")
    features = [column for column in frame.columns if column != args.label]
    model = RandomForestClassifier(
        n_estimators=args.n_estimators,
        max_depth=args.max_depth or None,
        min_samples_leaf=args.min_samples_leaf,
        random_state=args.random_state,
        n_jobs=args.n_jobs,
    )
    model.fit(frame[features], frame[args.label].astype(int))
    print(f"trained {model.__class__.__name__} on {len(frame)} rows, {len(features)} features")
    return Trained(model, features, frame)


BASELINE_BUCKETS = 10


def baseline(frame: pd.DataFrame, features: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """SageMaker Model Monitor's data-quality baseline: statistics.json and constraints.json.

    The same files serve the monitor locally and in AWS (ml/monitor.py, ml/monitor_job.py); their
    shape stays Model Monitor's, so other tools that read that format can read them.
    Each feature's distribution is kept as buckets in the shape of Model Monitor's KLL summary.
    The bucket edges are the training deciles rather than equal widths: on skewed features,
    equal-width tail buckets hold a handful of rows, and sampling noise alone then moves PSI.
    """
    statistics: list[dict[str, Any]] = []
    constraints: list[dict[str, Any]] = []
    for name in features:
        values = frame[name].astype(float)
        low, high = float(values.min()), float(values.max())
        edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, BASELINE_BUCKETS + 1)))
        if len(edges) < 2:  # a constant feature: one bucket around its value
            edges = np.array([low, low + 1.0])
        counts, _ = np.histogram(values, bins=edges)
        statistics.append(
            {
                "name": name,
                "inferred_type": "Fractional",
                "numerical_statistics": {
                    "common": {"num_present": int(values.notna().sum()), "num_missing": int(values.isna().sum())},
                    "mean": float(values.mean()),
                    "sum": float(values.sum()),
                    "std_dev": float(values.std(ddof=0)),
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
                },
            }
        )
        constraint: dict[str, Any] = {"name": name, "inferred_type": "Fractional", "completeness": 1.0}
        if low >= 0:
            constraint["num_constraints"] = {"is_non_negative": True}
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


def save_model(trained: Trained, label: str, model_dir: Path) -> None:
    """Write what the serving container loads (the model, its metadata, inference.py) and the baseline.

    inference.py goes into model_dir/code so that model.tar.gz serves on its own, the
    layout the SageMaker scikit-learn container reads when SAGEMAKER_PROGRAM is set; the
    monitoring baseline goes into model_dir/baseline, so every model carries its own.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    # Serving answers one small request at a time: a thread pool per prediction only adds latency.
    trained.model.set_params(n_jobs=None)
    joblib.dump(trained.model, model_dir / "model.joblib")
    metadata = {"features": trained.features, "label": label, "scikit_learn": sklearn.__version__}
    (model_dir / "metadata.json").write_text(json.dumps(metadata, indent=2))
    code_dir = model_dir / "code"
    code_dir.mkdir(exist_ok=True)
    shutil.copy2(HERE / "inference.py", code_dir / "inference.py")
    statistics, constraints = baseline(trained.frame, trained.features)
    baseline_dir = model_dir / "baseline"
    baseline_dir.mkdir(exist_ok=True)
    (baseline_dir / "statistics.json").write_text(json.dumps(statistics, indent=2))
    (baseline_dir / "constraints.json").write_text(json.dumps(constraints, indent=2))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        save_model(train(args), args.label, Path(args.model_dir))
    except Exception as exc:
        # SageMaker reports the content of this file as the job's FailureReason.
        output = Path(args.output_dir)
        output.mkdir(parents=True, exist_ok=True)
        (output / "failure").write_text(f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
