"""What each task is judged by: the metric sets of binary, multiclass and regression models.

ml/evaluate.py computes exactly these (tests/test_entry_points.py checks), the gate reads their
direction, and mlops.toml's [gate] and [monitor].quality_metrics may name only the task's own.
"""

from __future__ import annotations

from dataclasses import dataclass

from ml.config import GateSection, MonitorSection
from ml.errors import ConfigError
from ml.schema import Task


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool = True


METRICS: dict[Task, tuple[Metric, ...]] = {
    Task.BINARY: (Metric("roc_auc"), Metric("accuracy"), Metric("f1"), Metric("precision"), Metric("recall")),
    Task.MULTICLASS: (
        Metric("accuracy"),
        Metric("balanced_accuracy"),
        Metric("f1_macro"),
        Metric("precision_macro"),
        Metric("recall_macro"),
    ),
    Task.REGRESSION: (Metric("r2"), Metric("rmse", higher_is_better=False), Metric("mae", higher_is_better=False)),
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


def check_config(task: Task, gate: GateSection, monitor: MonitorSection, path: object) -> None:
    """The gate and the monitor name metrics this task has; otherwise one message with the fix."""
    names = [m.name for m in METRICS[task]]
    wrong = sorted({gate.primary_metric, *gate.thresholds} - set(names))
    if wrong:
        raise ConfigError(
            f"[gate] in {path} names {', '.join(wrong)}, which a {task} model is not scored by (it has "
            f"{', '.join(names)}). Set [gate] for the task, for example:\n{suggested_config(task)}"
        )
    live = LIVE_METRICS[task]
    wrong = sorted(set(monitor.quality_metrics) - set(live))
    if wrong:
        raise ConfigError(
            f"[monitor].quality_metrics in {path} names {', '.join(wrong)}, which the monitor cannot compute for a "
            f"{task} model (it can: {', '.join(live)}); set for example quality_metrics = "
            f"[{', '.join(repr(m) for m in SUGGESTED_QUALITY[task])}]"
        )
