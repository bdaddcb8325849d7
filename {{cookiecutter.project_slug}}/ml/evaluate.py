"""Evaluation entry point, run as a SageMaker processing job (or its local twin).

It scores the candidate and, when given, the champion on the same held-out test set,
loading each model through its own packaged inference.py exactly as the endpoint will.
Inputs and outputs follow the processing-job layout under --root:

  input/model/model.tar.gz      the candidate
  input/champion/model.tar.gz   optional: the current champion
  input/test/*.csv              the test set
  output/evaluation/evaluation.json

Only the container's libraries may be imported here.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics

ROC_POINTS = 101  # enough for a smooth curve, small enough for the registry's metrics JSON


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


def _classification(truth: np.ndarray[Any, Any], prediction: dict[str, Any]) -> dict[str, Any]:
    classes = list(prediction["classes"])
    predicted = np.asarray(prediction["labels"], dtype=object)
    matrix = np.asarray(prediction["probabilities"], dtype=float)
    truth_text, predicted_text = truth.astype(str), predicted.astype(str)
    names = [str(c) for c in classes]
    report: dict[str, Any] = {
        "classes": classes,
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
        positive = names[1]
        actual = (truth_text == positive).astype(int)
        scores = matrix[:, 1]
        fpr, tpr, _ = metrics.roc_curve(actual, scores)
        grid = np.linspace(0.0, 1.0, ROC_POINTS)
        found = (predicted_text == positive).astype(int)
        report["metrics"] = {
            "roc_auc": float(metrics.roc_auc_score(actual, scores)),
            "accuracy": float(metrics.accuracy_score(actual, found)),
            "f1": float(metrics.f1_score(actual, found, zero_division=0)),
            "precision": float(metrics.precision_score(actual, found, zero_division=0)),
            "recall": float(metrics.recall_score(actual, found, zero_division=0)),
        }
        report["positive_class"] = classes[1]
        # Resampled on a fixed grid; the curve starts at (0, 0) like every ROC curve.
        report["roc_curve"] = {"fpr": [0.0, *grid.tolist()], "tpr": [0.0, *np.interp(grid, fpr, tpr).tolist()]}
        return report
    report["metrics"] = {
        "accuracy": float(metrics.accuracy_score(truth_text, predicted_text)),
        "balanced_accuracy": float(metrics.balanced_accuracy_score(truth_text, predicted_text)),
        "f1_macro": float(metrics.f1_score(truth_text, predicted_text, labels=names, average="macro", zero_division=0)),
        "precision_macro": float(
            metrics.precision_score(truth_text, predicted_text, labels=names, average="macro", zero_division=0)
        ),
        "recall_macro": float(
            metrics.recall_score(truth_text, predicted_text, labels=names, average="macro", zero_division=0)
        ),
    }
    return report


RESIDUAL_POINTS = 500  # (actual, predicted) pairs kept for the residual plot


def _regression(truth: np.ndarray[Any, Any], prediction: dict[str, Any]) -> dict[str, Any]:
    predicted = np.asarray(prediction["values"], dtype=float)
    keep = np.linspace(0, len(truth) - 1, min(len(truth), RESIDUAL_POINTS)).astype(int)
    return {
        "metrics": {
            "r2": float(metrics.r2_score(truth, predicted)),
            "rmse": float(np.sqrt(metrics.mean_squared_error(truth, predicted))),
            "mae": float(metrics.mean_absolute_error(truth, predicted)),
        },
        "residuals": {"actual": truth[keep].tolist(), "predicted": predicted[keep].tolist()},
    }


def score(module: ModuleType, model: Any, frame: pd.DataFrame, label: str) -> dict[str, Any]:
    """The task's metrics (ml/tasks.py lists them) and what its plots need, on this frame."""
    prediction = module.predict_fn(frame.drop(columns=[label]), model)
    truth = _truth(frame, label, model["task"], list(model["classes"]))
    scored = _regression(truth, prediction) if model["task"] == "regression" else _classification(truth, prediction)
    return {"task": model["task"], **scored, "rows": len(frame)}


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


def evaluate(root: Path, label: str, reference_rows: int = 25) -> dict[str, Any]:
    test_files = sorted((root / "input" / "test").glob("*.csv"))
    if not test_files:
        raise FileNotFoundError(f"no test CSV under {root / 'input' / 'test'}")
    frame = pd.concat([pd.read_csv(path) for path in test_files], ignore_index=True)
    text = pd.concat([pd.read_csv(path, dtype=str, keep_default_na=False) for path in test_files], ignore_index=True)
    report: dict[str, Any] = {"candidate": None, "champion": None}
    with tempfile.TemporaryDirectory() as scratch:
        for role in ("candidate", "champion"):
            channel = "model" if role == "candidate" else "champion"
            tarball = root / "input" / channel / "model.tar.gz"
            if tarball.exists():
                module, model = load_packaged_model(tarball, Path(scratch) / role)
                label = label or model["schema"]["label"]["name"]
                report[role] = score(module, model, frame, label)
                if role == "candidate":
                    report["reference"] = reference(module, model, text, label, reference_rows)
    if report["candidate"] is None:
        raise FileNotFoundError(f"no candidate model at {root / 'input' / 'model'}")
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(args.root)
    report = evaluate(root, args.label, args.reference_rows)
    output = root / "output" / "evaluation"
    output.mkdir(parents=True, exist_ok=True)
    (output / "evaluation.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({role: report[role] and report[role]["metrics"] for role in ("candidate", "champion")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
