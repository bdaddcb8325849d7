"""What each task is judged by: the metric sets of binary, multiclass and regression models.

ml/evaluate.py computes exactly these (tests/test_entry_points.py checks), the gate reads their
direction, and mlops.toml's [gate] and [monitor].quality_metrics may name only the task's own.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ml.config import GateSection, MonitorSection
from ml.errors import ConfigError
from ml.schema import Kind, Schema, Task

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool = True
    # The values the metric can take: scores are in [0, 1], r2 at most 1, errors at least 0.
    lowest: float = 0.0
    highest: float = 1.0

    @property
    def loosest(self) -> float:
        """The threshold every model passes."""
        return self.lowest if self.higher_is_better else self.highest


METRICS: dict[Task, tuple[Metric, ...]] = {
    Task.BINARY: (Metric("roc_auc"), Metric("accuracy"), Metric("f1"), Metric("precision"), Metric("recall")),
    Task.MULTICLASS: (
        Metric("accuracy"),
        Metric("balanced_accuracy"),
        Metric("f1_macro"),
        Metric("precision_macro"),
        Metric("recall_macro"),
    ),
    Task.REGRESSION: (
        Metric("r2", lowest=-math.inf),
        Metric("rmse", higher_is_better=False, highest=math.inf),
        Metric("mae", higher_is_better=False, highest=math.inf),
    ),
}
# What the monitor can compute from labelled traffic (ml/monitor.py), per task.
LIVE_METRICS: dict[Task, tuple[str, ...]] = {
    Task.BINARY: ("accuracy", "precision", "recall", "f1", "roc_auc"),
    Task.MULTICLASS: ("accuracy",),
    Task.REGRESSION: ("r2", "rmse", "mae"),
}
# A starting [gate] for each task, printed by `make infer-schema` for the user to tune.
SUGGESTED_GATE: dict[Task, tuple[str, dict[str, float]]] = {
    Task.BINARY: ("roc_auc", {"roc_auc": 0.8, "accuracy": 0.7}),
    Task.MULTICLASS: ("f1_macro", {"accuracy": 0.7, "f1_macro": 0.6}),
    Task.REGRESSION: ("r2", {"r2": 0.3}),
}
SUGGESTED_QUALITY = {Task.BINARY: ("accuracy",), Task.MULTICLASS: ("accuracy",), Task.REGRESSION: ("r2",)}


def metric(task: Task, name: str) -> Metric:
    return next(m for m in METRICS[task] if m.name == name)


def suggested_config(task: Task) -> str:
    """The [gate] and [monitor] keys to put into mlops.toml for a task, as TOML text."""
    primary, thresholds = SUGGESTED_GATE[task]
    lines = ["[gate]", f'primary_metric = "{primary}"', "max_regression = 0.0", "", "[gate.thresholds]"]
    lines += [f"{name} = {value}" for name, value in thresholds.items()]
    quality = ", ".join(f'"{m}"' for m in SUGGESTED_QUALITY[task])
    lines += ["", "[monitor]", f"quality_metrics = [{quality}]"]
    return "\n".join(lines)


def check_config(contract: Schema, gate: GateSection, monitor: MonitorSection, path: object) -> None:
    """The gate and the monitor name metrics and columns this data has; otherwise one message with the fix."""
    check_metrics(contract.task, gate, monitor, path)
    check_slices(contract, gate, path)


def check_metrics(task: Task, gate: GateSection, monitor: MonitorSection, path: object) -> None:
    """[gate]'s primary metric and thresholds, and [monitor]'s, are the task's, in range."""
    _check_names(task, {gate.primary_metric, *gate.thresholds}, "[gate]", path)
    _check_ranges(task, {f"[gate.thresholds].{name}": (name, v) for name, v in gate.thresholds.items()}, path)
    primary = metric(task, gate.primary_metric)
    widest = primary.highest - primary.lowest
    if abs(gate.min_gain_over_simple) > widest:
        raise ConfigError(
            f"[gate].min_gain_over_simple = {gate.min_gain_over_simple} in {path} is more than "
            f"{gate.primary_metric} can differ by ({widest}): set a value between {-widest} and {widest}"
        )
    live = LIVE_METRICS[task]
    wrong = sorted(set(monitor.quality_metrics) - set(live))
    if wrong:
        raise ConfigError(
            f"[monitor].quality_metrics in {path} names {', '.join(wrong)}, which the monitor cannot compute for a "
            f"{task} model (it can: {', '.join(live)}); set for example quality_metrics = "
            f"[{', '.join(repr(m) for m in SUGGESTED_QUALITY[task])}]"
        )


def check_slices(contract: Schema, gate: GateSection, path: object) -> None:
    """Each slice cuts a feature of the schema, numbers by bins, categories by values they can take,
    and judges the task's metrics within their range; fairness compares the task's metrics."""
    task = contract.task
    features = {feature.name: feature for feature in contract.features}
    for slice_name, spec in gate.slices.items():
        key = f"[gate.slices.{slice_name}]"
        feature = features.get(spec.column)
        if feature is None:
            raise ConfigError(
                f"{key}.column = {spec.column!r} in {path} is not a feature of the schema ({contract.label!r} is the "
                f"label; the features are {', '.join(features)}): name one of them, or remove the slice"
            )
        if spec.bins and feature.kind is not Kind.NUMERIC:
            raise ConfigError(
                f"{key} cuts {spec.column!r} by bins, but it is categorical: list the categories that are groups of "
                f"their own in values = [...] instead (it has {', '.join(feature.categories)})"
            )
        if spec.values and feature.kind is Kind.CATEGORICAL:
            unknown = sorted({str(v) for v in spec.values} - set(feature.categories))
            if unknown:
                raise ConfigError(
                    f"{key}.values lists {', '.join(unknown)}, which {spec.column!r} never takes in the schema "
                    f"(it has {', '.join(feature.categories)}): list only those"
                )
        _check_names(task, set(spec.thresholds), f"{key}.thresholds", path)
        _check_ranges(task, {f"{key}.thresholds.{n}": (n, v) for n, v in spec.thresholds.items()}, path)
    _check_names(task, set(gate.fairness.metrics), "[gate.fairness].metrics", path)
    for name in gate.fairness.metrics:
        known = metric(task, name)
        widest = known.highest - known.lowest
        if gate.fairness.max_disparity > widest:
            raise ConfigError(
                f"[gate.fairness].max_disparity = {gate.fairness.max_disparity} in {path} is more than {name} can "
                f"differ by ({widest}), so it would pass any model: set at most {widest}"
            )


def _check_names(task: Task, named: set[str], key: str, path: object) -> None:
    names = [m.name for m in METRICS[task]]
    wrong = sorted(named - set(names))
    if wrong:
        raise ConfigError(
            f"{key} in {path} names {', '.join(wrong)}, which a {task} model is not scored by (it has "
            f"{', '.join(names)}). Set [gate] for the task, for example:\n{suggested_config(task)}"
        )


def _check_ranges(task: Task, keyed: dict[str, tuple[str, float]], path: object) -> None:
    """A threshold a metric can never reach (accuracy 1.5, roc_auc -1) is a typo, refused before training."""
    for key, (name, value) in keyed.items():
        known = metric(task, name)
        if not known.lowest <= value <= known.highest:
            raise ConfigError(
                f"{key} = {value} in {path} is outside what {name} can be ([{known.lowest}, {known.highest}]): "
                f"set a value in that range"
            )


# What `make infer-schema` suggests to disparity-check, per task: the share of each group's
# positives found (recall), or its typical error (mae, in the label's unit).
SUGGESTED_FAIRNESS = {Task.BINARY: "recall", Task.MULTICLASS: "recall_macro", Task.REGRESSION: "mae"}


def suggested_slices(contract: Schema, frame: pd.DataFrame) -> str:
    """[gate.slices] and [gate.fairness] for new data, as TOML text: its first feature, in thirds."""
    feature = contract.features[0]
    column = frame[feature.name]
    lines = [f"[gate.slices.{_table_key(feature.name)}]", f"column = {json.dumps(feature.name)}"]
    if feature.kind is Kind.NUMERIC:
        edges = sorted({float(f"{q:.3g}") for q in column.dropna().quantile([1 / 3, 2 / 3])})
        lines.append(f"bins = [{', '.join(repr(e) for e in edges)}]")
    else:
        common = column.dropna().astype(str).value_counts().index[:3]
        lines.append(f"values = [{', '.join(json.dumps(v) for v in common)}]")
    fairness = SUGGESTED_FAIRNESS[contract.task]
    spread = 0.2 if contract.task.is_classification else float(f"{frame[contract.label].std() * 0.25:.3g}")
    lines += [
        "min_rows = 30",
        "thresholds = {}  # e.g. the [gate.thresholds] each group must meet",
        "",
        "[gate.fairness]",
        f"groups = [{json.dumps(_table_key(feature.name))}]",
        f'metrics = ["{fairness}"]',
        f"max_disparity = {spread}",
    ]
    return "\n".join(lines)


def _table_key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "slice"
