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
    parser.add_argument("--label", default="malignant")
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


def score(module: ModuleType, model: Any, frame: pd.DataFrame, label: str) -> dict[str, Any]:
    truth = frame[label].astype(int).to_numpy()
    prediction = module.predict_fn(frame.drop(columns=[label]), model)
    probabilities = np.asarray(prediction["probabilities"])
    predicted = np.asarray(prediction["labels"])
    fpr, tpr, _ = metrics.roc_curve(truth, probabilities)
    grid = np.linspace(0.0, 1.0, ROC_POINTS)
    return {
        "metrics": {
            "roc_auc": float(metrics.roc_auc_score(truth, probabilities)),
            "accuracy": float(metrics.accuracy_score(truth, predicted)),
            "f1": float(metrics.f1_score(truth, predicted)),
            "precision": float(metrics.precision_score(truth, predicted, zero_division=0)),
            "recall": float(metrics.recall_score(truth, predicted)),
        },
        "confusion_matrix": metrics.confusion_matrix(truth, predicted, labels=[0, 1]).tolist(),
        # Resampled on a fixed grid; the curve starts at (0, 0) like every ROC curve.
        "roc_curve": {"fpr": [0.0, *grid.tolist()], "tpr": [0.0, *np.interp(grid, fpr, tpr).tolist()]},
        "rows": len(frame),
    }


def reference(module: ModuleType, model: Any, frame: pd.DataFrame, label: str, rows: int) -> dict[str, Any]:
    """Test rows and the model's offline answers for them: what the endpoint must answer the same.

    The smoke test sends these rows to the deployed model and fails on any difference beyond
    floating-point noise (training/serving skew).
    """
    sample = frame.drop(columns=[label]).head(rows)
    prediction = module.predict_fn(sample, model)
    return {
        "features": list(sample.columns),
        "rows": sample.to_numpy(dtype=float).tolist(),
        "probabilities": [float(p) for p in prediction["probabilities"]],
    }


def evaluate(root: Path, label: str, reference_rows: int = 25) -> dict[str, Any]:
    test_files = sorted((root / "input" / "test").glob("*.csv"))
    if not test_files:
        raise FileNotFoundError(f"no test CSV under {root / 'input' / 'test'}")
    frame = pd.concat([pd.read_csv(path) for path in test_files], ignore_index=True)
    report: dict[str, Any] = {"candidate": None, "champion": None}
    with tempfile.TemporaryDirectory() as scratch:
        for role in ("candidate", "champion"):
            channel = "model" if role == "candidate" else "champion"
            tarball = root / "input" / channel / "model.tar.gz"
            if tarball.exists():
                module, model = load_packaged_model(tarball, Path(scratch) / role)
                report[role] = score(module, model, frame, label)
                if role == "candidate":
                    report["reference"] = reference(module, model, frame, label, reference_rows)
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
