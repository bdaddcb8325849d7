"""Check [train].estimator and its hyperparameters before any job starts.

ml/train.py builds the model from the same two settings (estimator by import path, parameters
passed through); in AWS a wrong name would only surface inside a billed training job. This
imports the estimator's module in the orchestrator, which costs a few tenths of a second, and
only when a model is about to be trained.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
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
    refused = _refusal(estimator_class, {name: parse_value(value) for name, value in hyperparameters.items()})
    if refused:
        raise ConfigError(
            f"[train.hyperparameters] in {where} are not valid for {estimator_class.__name__}: {refused}. Fix the value."
        )


def _refusal(estimator_class: type[Any], values: dict[str, Any]) -> str:
    """Why the estimator refuses these parameters (scikit-learn's own constraints, checked without
    fitting), or "" if it takes them."""
    try:
        configured = estimator_class(**values)
        validate = getattr(configured, "_validate_params", None)
        if callable(validate):
            validate()
    except (TypeError, ValueError) as error:
        return str(error)
    return ""


def check_space(path: str, fixed: dict[str, str], space: Mapping[str, tuple[object, ...]], where: Path) -> None:
    """Every name in [tune.space] is a parameter of the estimator, and every value one it accepts."""
    estimator_class = resolve(path, where)
    accepted = set(estimator_class().get_params(deep=False))
    unknown = sorted(set(space) - accepted)
    if unknown:
        raise ConfigError(
            f"[tune.space] in {where} names {', '.join(unknown)}, which {estimator_class.__name__} does not take "
            f"(it takes {', '.join(sorted(accepted))}). Fix the name, or remove it."
        )
    base = {name: parse_value(value) for name, value in fixed.items()}
    for name, values in space.items():
        for value in values:
            refused = _refusal(estimator_class, {**base, name: parse_value(value) if isinstance(value, str) else value})
            if refused:
                raise ConfigError(
                    f"[tune.space].{name} in {where} tries {value!r}, which {estimator_class.__name__} refuses: "
                    f"{refused}. Fix the value."
                )
