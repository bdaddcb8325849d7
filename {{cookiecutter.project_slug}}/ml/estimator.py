"""Check [train].estimator and its hyperparameters before any job starts.

ml/train.py builds the model from the same two settings (estimator by import path, parameters
passed through); in AWS a wrong name would only surface inside a billed training job. This
imports the estimator's module in the orchestrator, which costs a few tenths of a second, and
only when a model is about to be trained.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

from ml.errors import ConfigError
from ml.schema import Task


def parse_value(text: str) -> Any:
    """A hyperparameter as train.py receives it (SageMaker passes strings): a number, a boolean, None or text.

    The same rule as ml/train.py's parse_value (tests/test_estimator.py checks both agree).
    """
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


def resolve(path: str, where: Path) -> type[Any]:
    module_name, _, class_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(
            f"[train].estimator {path!r} in {where} does not import ({error}). Name a class by its full import path, "
            "e.g. 'sklearn.ensemble.RandomForestClassifier'; a library outside scikit-learn goes into "
            "ml/requirements.txt and the project's dependencies."
        ) from None
    estimator = getattr(module, class_name, None)
    if not inspect.isclass(estimator):
        raise ConfigError(
            f"[train].estimator {path!r} in {where}: module {module_name} has no class {class_name!r}. Fix the name."
        )
    return estimator


def check(path: str, hyperparameters: dict[str, str], task: Task, where: Path) -> None:
    """The estimator imports, suits the task, and takes every hyperparameter with a valid value."""
    from sklearn.base import is_classifier, is_regressor

    estimator_class = resolve(path, where)
    if not hasattr(estimator_class, "fit") or not hasattr(estimator_class, "get_params"):
        raise ConfigError(f"[train].estimator {path!r} in {where} is not a scikit-learn estimator (no fit/get_params)")
    probe = estimator_class()
    if task.is_classification and not (is_classifier(probe) and hasattr(probe, "predict_proba")):
        raise ConfigError(
            f"[train].estimator {path!r} in {where} is not a classifier with predict_proba, which a {task} task needs "
            "(evaluation and serving report class probabilities). Choose e.g. sklearn.ensemble.RandomForestClassifier "
            "or sklearn.linear_model.LogisticRegression, or set the task in schema.toml."
        )
    if task is Task.REGRESSION and not is_regressor(probe):
        raise ConfigError(
            f"[train].estimator {path!r} in {where} is not a regressor, which a regression task needs. Choose e.g. "
            "sklearn.ensemble.RandomForestRegressor or sklearn.linear_model.Ridge, or set the task in schema.toml."
        )
    accepted = set(probe.get_params(deep=False))
    unknown = sorted(set(hyperparameters) - accepted)
    if unknown:
        raise ConfigError(
            f"[train.hyperparameters] in {where} names {', '.join(unknown)}, which {estimator_class.__name__} does not "
            f"take (it takes {', '.join(sorted(accepted))}). Fix the name, or remove it."
        )
    values = {name: parse_value(value) for name, value in hyperparameters.items()}
    try:
        configured = estimator_class(**values)
        validate = getattr(configured, "_validate_params", None)
        if callable(validate):
            validate()  # scikit-learn's own parameter constraints, checked without fitting
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"[train.hyperparameters] in {where} are not valid for {estimator_class.__name__}: {error}. Fix the value."
        ) from None
