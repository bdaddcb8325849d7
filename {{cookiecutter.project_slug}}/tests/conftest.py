"""Shared fixtures: an isolated state directory, config overrides, and a step context."""

from __future__ import annotations

import io
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from rich.console import Console

from ml import schema as schema_file
from ml.config import PROJECT_ROOT, Config, load_config
from ml.context import Context, make_context
from ml.schema import Task
from ml.tasks import metric
from tests.aws_fixtures import Account, aws, aws_module

__all__ = ["Account", "aws", "aws_module"]  # moto-backed AWS accounts, for every test module

MakeConfig = Callable[..., Config]


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = merge(merged[key], value) if isinstance(value, dict) and value and key in merged else value
    return merged


def write_config(directory: Path, **sections: Any) -> Path:
    """A copy of the project's mlops.toml with sections changed, e.g. train={"hyperparameters": {...}}.

    Paths in the copy stay relative to its own directory, as in the original; the data source and
    the schema, unless a test sets its own, still name the project's.
    """
    raw = tomllib.loads((PROJECT_ROOT / "mlops.toml").read_text())
    raw["data"]["source"] = str((PROJECT_ROOT / raw["data"]["source"]).resolve())
    raw["data"]["schema"] = str((PROJECT_ROOT / raw["data"].get("schema", "schema.toml")).resolve())
    path = directory / "mlops.toml"
    path.write_text(tomli_w.dumps(merge(raw, sections)))
    return path


def lenient_gate() -> dict[str, Any]:
    """A [gate] any model of the project's task passes: each of its thresholds at its loosest, any loss
    to the simple baseline allowed, and any disparity."""
    config = load_config(PROJECT_ROOT / "mlops.toml")
    task = schema_file.load(config.schema_path).task
    return {
        "thresholds": {name: loosest(task, name) for name in config.gate.thresholds},
        "max_regression": 0.0,
        "min_gain_over_simple": -span(task, config.gate.primary_metric),
        "slices": {
            name: {"thresholds": {m: loosest(task, m) for m in spec.thresholds}}
            for name, spec in config.gate.slices.items()
        },
        "fairness": {"max_disparity": min([1e12, *(span(task, m) for m in config.gate.fairness.metrics)])},
    }


def loosest(task: Task, name: str) -> float:
    """The threshold every model passes, as TOML can hold it: a score's lowest value, an error's
    (rmse, mae: maxima, unbounded) largest."""
    return max(-1e12, min(1e12, metric(task, name).loosest))


def span(task: Task, name: str) -> float:
    """How far apart two values of the metric can be, as TOML can hold it."""
    return min(1e12, metric(task, name).highest - metric(task, name).lowest)


def open_gate() -> dict[str, Any]:
    """A [gate] every model passes, including one that trails the champion: for tests whose point is
    what happens after the gate, not its judgement (tests/test_gate.py and the e2e tests judge)."""
    return {**lenient_gate(), "max_regression": 1e9}


def weak_training() -> dict[str, Any]:
    """[train] for a model worse than the project's own on any data it could learn from: scikit-learn's
    dummy estimator of the task (class priors, or the mean), which reads no feature."""
    config = load_config(PROJECT_ROOT / "mlops.toml")
    task = schema_file.load(config.schema_path).task
    dummy = "sklearn.dummy.DummyRegressor" if task is Task.REGRESSION else "sklearn.dummy.DummyClassifier"
    return {"train": {"estimator": dummy, "hyperparameters": {}}}


def quiet_console() -> Console:
    return Console(file=io.StringIO(), width=200, force_terminal=False)


def console_text(ctx: Context) -> str:
    stream = ctx.console.file
    assert isinstance(stream, io.StringIO)
    return stream.getvalue()


@pytest.fixture(scope="session", autouse=True)
def _no_background_tracking() -> Iterator[None]:
    """Every pipeline run would start an MLflow sync of its own in the background (ml/tracking.py),
    and SHAP explanations beside its plots (ml/explain.py); tests/test_tracking.py and
    tests/test_explain.py turn them on where they are the subject."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_TRACKING", "off")
        patch.setenv("MLOPS_EXPLAIN", "off")
        yield


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "state"
    monkeypatch.setenv("MLOPS_HOME", str(state))
    monkeypatch.setenv("MLOPS_ENV", "local")
    monkeypatch.delenv("MLOPS_CONFIG", raising=False)
    return state


@pytest.fixture
def make_config(tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> MakeConfig:
    def make(**sections: Any) -> Config:
        directory = tmp_path / "config"
        directory.mkdir(exist_ok=True)
        path = write_config(directory, **sections)
        monkeypatch.setenv("MLOPS_CONFIG", str(path))
        return load_config()

    return make


@pytest.fixture
def ctx(state_dir: Path) -> Iterator[Context]:
    context = make_context(load_config(), quiet_console())
    yield context
    context.backends.endpoint.stop()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse to run when --dist loadgroup would not group (a pytest that pytest-xdist cannot tag).

    The grouped tests share expensive module fixtures; split across workers, each worker would
    build them again, slowly and silently.
    """
    if not getattr(config.option, "loadgroup", False):
        return
    untagged = [item.nodeid for item in items if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
    if untagged:
        raise pytest.UsageError(
            f"--dist loadgroup did not group {untagged[0]} (and {len(untagged) - 1} more): this pytest and "
            "pytest-xdist do not work together; keep the pytest pin in pyproject.toml"
        )
