"""Hyperparameter search entry point, run as a processing job (locally, or in the same container).

Successive halving (scikit-learn's HalvingRandomSearchCV) over [tune.space] on the training split
only, with cross-validation: every candidate is scored on a few rows, the best third goes on with
three times as many, until the survivors see them all. The test set is never read, so the
evaluation that follows still measures a model on rows nothing was tuned on.

  input/train/*.csv               the training split
  input/schema/schema.json        the data contract
  input/tuning/tuning.json        {"estimator", "fixed", "space", "metric", "cv", "factor",
                                   "candidates", "seed"} ([tune] and [train] in mlops.toml)
  output/tuning/tuning.json       the best parameters and every candidate's scores

Only the container's libraries may be imported here, as in train.py, whose preparation it uses.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


@functools.cache
def _evaluation() -> ModuleType:
    """evaluate.py, which ships beside this file: the gate's metrics, and (its _sibling) train.py."""
    spec = importlib.util.spec_from_file_location("tune_evaluate", HERE / "evaluate.py")
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no evaluate.py beside {__file__}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


def _training() -> ModuleType:
    training: ModuleType = _evaluation()._sibling("train")
    return training


def _sign(metric: str) -> float:
    """1 for a score, -1 for an error metric: scikit-learn's search maximises."""
    return -1.0 if metric in _evaluation().LOWER_IS_BETTER else 1.0


def scorer(metric: str, task: str, classes: list[Any]) -> Any:
    """The gate's own metric (evaluate.py's task_metrics) as a scikit-learn scorer: higher is better."""
    evaluation = _evaluation()
    sign = _sign(metric)

    def score(estimator: Any, features: Any, truth: Any) -> float:
        prediction = evaluation.fitted_prediction(estimator, features, task, classes)
        actual = np.asarray(truth, dtype=object if task != "regression" else float)
        value = evaluation.task_metrics(task, actual, prediction, only=metric)[metric]
        return sign * float("nan" if value is None else value)

    return score


def search(frame: Any, schema: dict[str, Any], settings: dict[str, Any], n_jobs: int = 1) -> dict[str, Any]:
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401  # makes the class importable
    from sklearn.model_selection import HalvingRandomSearchCV, KFold, StratifiedKFold

    training = _training()
    task = schema["label"]["task"]
    classes = list(schema["label"].get("classes", []))
    estimator = training.build_estimator(settings["estimator"], settings["fixed"], n_jobs)
    pipeline = training.build_pipeline(schema, estimator)
    folds = (StratifiedKFold if task != "regression" else KFold)(
        settings["cv"], shuffle=True, random_state=settings["seed"]
    )
    space = {f"model__{name}": [training.parse_value(str(v)) if isinstance(v, str) else v for v in values]
             for name, values in settings["space"].items()}  # fmt: skip
    started = time.perf_counter()
    halving = HalvingRandomSearchCV(
        pipeline, space, n_candidates=settings["candidates"], factor=settings["factor"], cv=folds,
        scoring=scorer(settings["metric"], task, classes), random_state=settings["seed"], min_resources="exhaust",
        refit=False, error_score="raise",
    )  # fmt: skip
    halving.fit(training.features_frame(frame, schema), training.labels(frame, schema))
    sign = _sign(settings["metric"])
    results = halving.cv_results_
    candidates: list[dict[str, Any]] = [
        {
            "params": {key.removeprefix("model__"): _plain(value) for key, value in params.items()},
            "score": sign * float(results["mean_test_score"][i]),
            "std": float(results["std_test_score"][i]),
            "rows": int(results["n_resources"][i]),
            "round": int(results["iter"][i]),
        }
        for i, params in enumerate(results["params"])
    ]
    final = max(candidates, key=lambda c: c["round"])["round"]
    survivors = sorted((c for c in candidates if c["round"] == final), key=lambda c: -sign * c["score"])
    return {
        "metric": settings["metric"],
        "best": {**settings["fixed"], **survivors[0]["params"]},
        "best_score": survivors[0]["score"],
        "rounds": final + 1,
        "seconds": round(time.perf_counter() - started, 3),
        "candidates": sorted(candidates, key=lambda c: (-c["round"], -sign * c["score"])),
    }


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", default="/opt/ml/processing")
    parser.add_argument("--n-jobs", type=int, default=1)
    args = parser.parse_args(argv)
    root = Path(args.root)
    training = _training()
    settings = json.loads((root / "input" / "tuning" / "tuning.json").read_text())
    schema = training.load_schema(root / "input" / "schema")
    frame = training.load_training_data(root / "input" / "train")
    try:
        report = search(frame, schema, settings, args.n_jobs)
    finally:
        training.stop_worker_processes()  # LogisticRegression's joblib pool would hold the job open for 300 s
    output = root / "output" / "tuning"
    output.mkdir(parents=True, exist_ok=True)
    (output / "tuning.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({"best": report["best"], report["metric"]: report["best_score"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
