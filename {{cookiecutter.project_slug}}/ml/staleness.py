"""Staleness experiment entry point, run as a processing job (locally, or in the same container).

How fast does a model decay on this data? The rows, oldest first, are cut into consecutive
windows. A model is trained on each window (train.py's preparation and [train]'s estimator) and
scored on every later one with the gate's metric. Grouped by age (how many windows separate the
training window from the scored one), the scores say what waiting costs: age 1 is a model one
window old, age k one k windows old; a model retrained every k windows serves at ages 1 to k. This is the "impact of model staleness" test of
Breck et al.'s ML Test Score (model development, test 4).

  input/staleness/staleness.csv        the data set's rows, oldest first (ml/steps/staleness.py)
  input/schema/schema.json             the data contract
  input/settings/settings.json         {"estimator", "hyperparameters", "metric", "windows": [[start, end], ...]}
  output/staleness/staleness.json      every score, and the scores by age

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
    spec = importlib.util.spec_from_file_location("staleness_evaluate", HERE / "evaluate.py")
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no evaluate.py beside {__file__}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


def experiment(frame: Any, schema: dict[str, Any], settings: dict[str, Any], n_jobs: int = 1) -> dict[str, Any]:
    """Train on each window, score on each later one; the scores, and their means by age."""
    evaluation = _evaluation()
    training = evaluation._sibling("train")
    task, metric = schema["label"]["task"], settings["metric"]
    classes = list(schema["label"].get("classes", []))
    windows = [frame.iloc[start:end] for start, end in settings["windows"]]
    features = [training.features_frame(window, schema) for window in windows]
    truths = [evaluation._truth(window, schema["label"]["name"], task, classes) for window in windows]
    started = time.perf_counter()
    scores: list[list[float | None]] = [[None] * len(windows) for _ in windows]
    for trained_on in range(len(windows) - 1):
        estimator = training.build_estimator(settings["estimator"], dict(settings["hyperparameters"]), n_jobs)
        pipeline = training.build_pipeline(schema, estimator)
        pipeline.fit(features[trained_on], training.labels(windows[trained_on], schema))
        for scored_on in range(trained_on + 1, len(windows)):
            prediction = evaluation.fitted_prediction(pipeline, features[scored_on], task, classes)
            value = evaluation.task_metrics(task, truths[scored_on], prediction, undefined=float("nan"), only=metric)
            scores[trained_on][scored_on] = value[metric]
    return {
        "metric": metric,
        "lower_is_better": metric in evaluation.LOWER_IS_BETTER,
        "windows": [{"rows": end - start, "start": start, "end": end} for start, end in settings["windows"]],
        "scores": scores,
        "by_age": by_age(scores, metric in evaluation.LOWER_IS_BETTER),
        "seconds": round(time.perf_counter() - started, 3),
    }


def by_age(scores: list[list[float | None]], lower_is_better: bool) -> list[dict[str, Any]]:
    """For every age k: the mean score of the models k windows older than the rows they score, and
    `loss`, how much worse they do than the models one window old on the same windows (positive:
    worse, whichever way the metric points). Paired on the scored window, so a window that is hard
    for every model does not pass for decay."""
    count = len(scores)
    sign = -1.0 if lower_is_better else 1.0
    ages: list[dict[str, Any]] = []
    for age in range(1, count):
        pairs = [scores[j - age][j] for j in range(age, count)]
        defined = [value for value in pairs if value is not None]
        losses = [
            sign * (fresh - old)
            for j in range(age, count)
            if (fresh := scores[j - 1][j]) is not None and (old := scores[j - age][j]) is not None
        ]
        ages.append({
            "age": age,
            "mean": float(np.mean(defined)) if defined else None,
            "loss": float(np.mean(losses)) if losses else None,
            "pairs": len(pairs),
            "undefined": len(pairs) - len(defined),  # a window the metric cannot judge (one class, for roc_auc)
        })  # fmt: skip
    return ages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", default="/opt/ml/processing")
    parser.add_argument("--n-jobs", type=int, default=1)
    args = parser.parse_args(argv)
    root = Path(args.root)
    training = _evaluation()._sibling("train")
    settings = json.loads((root / "input" / "settings" / "settings.json").read_text())
    schema = training.load_schema(root / "input" / "schema")
    frame = training.load_training_data(root / "input" / "staleness")
    try:
        report = experiment(frame, schema, settings, args.n_jobs)
    finally:
        training.stop_worker_processes()  # LogisticRegression's joblib pool would hold the job open for 300 s
    output = root / "output" / "staleness"
    output.mkdir(parents=True, exist_ok=True)
    (output / "staleness.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({"metric": report["metric"], "by_age": [(a["age"], a["mean"]) for a in report["by_age"]]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
