"""Load and validate mlops.toml, the project's single configuration file.

Paths and the environment come from three variables so tests and CI can point a
run elsewhere without editing files:

- MLOPS_ENV     local (default), dev, staging or prod
- MLOPS_CONFIG  another mlops.toml to read
- MLOPS_HOME    where local state lives (default: .mlops/ beside mlops.toml)
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ml.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENTS = ("local", "dev", "staging", "prod")
# Metric names depend on the task in schema.toml; ml/tasks.py checks them once the schema is read.
Metric = Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]
Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]


class _Section(BaseModel):
    # Unknown keys are typos more often than not; refuse them rather than ignore them.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


AccountId = Annotated[str, Field(pattern=r"^[0-9]{12}$")]
AWS_ENVIRONMENTS = ("dev", "staging", "prod")


class ProjectSection(_Section):
    name: str
    slug: str
    resource_prefix: str
    github_repository: str
    aws_region: str
    # dev's account, which also holds the model registry every environment deploys from.
    aws_account_id: AccountId
    # "single": every environment in aws_account_id. "per-environment": AWS's recommended layout,
    # each environment in its own account ([project.accounts]), production isolated.
    account_layout: Literal["single", "per-environment"] = "single"
    accounts: dict[str, AccountId] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _layout(self) -> ProjectSection:
        unknown = sorted(set(self.accounts) - set(AWS_ENVIRONMENTS))
        if unknown:
            raise ValueError(f"[project.accounts] names unknown environment(s) {unknown}; use dev, staging and prod")
        if self.account_layout == "single":
            other = {env: a for env, a in self.accounts.items() if a != self.aws_account_id}
            if other:
                raise ValueError(
                    f"account_layout is single, but [project.accounts] puts {', '.join(other)} in another account "
                    f'than aws_account_id {self.aws_account_id}: set account_layout = "per-environment", or '
                    "remove [project.accounts]"
                )
            return self
        missing = [env for env in ("staging", "prod") if env not in self.accounts]
        if missing:
            raise ValueError(
                f"account_layout is per-environment, so [project.accounts] needs {' and '.join(missing)} "
                "(a 12-digit account id each)"
            )
        if self.accounts.get("dev", self.aws_account_id) != self.aws_account_id:
            raise ValueError("[project.accounts].dev must equal aws_account_id (dev's account holds the registry)")
        ids = [self.account(env) for env in AWS_ENVIRONMENTS]
        if len(set(ids)) != len(ids):
            raise ValueError(
                f"account_layout is per-environment, but dev, staging and prod share accounts ({', '.join(ids)}): "
                'give each its own account, or use account_layout = "single"'
            )
        return self

    def account(self, env: str) -> str:
        """The AWS account that holds an environment."""
        return (
            self.accounts.get(env, self.aws_account_id)
            if self.account_layout == "per-environment"
            else self.aws_account_id
        )

    @property
    def per_environment(self) -> bool:
        return self.account_layout == "per-environment"


class FrameworkSection(_Section):
    sagemaker_image_version: str
    scikit_learn: str


class DataSection(_Section):
    source: str = "data/breast_cancer.csv"
    # The data contract (ml/schema.py), relative to this file; `make infer-schema` writes it.
    schema_file: str = Field(default="schema.toml", alias="schema")
    test_fraction: Fraction = 0.25
    seed: int = 42


class TrainSection(_Section):
    max_runtime_seconds: Annotated[int, Field(gt=0, le=432_000)] = 900
    # Any scikit-learn estimator (or one from requirements.txt beside train.py), by import path;
    # [train.hyperparameters] are its constructor's parameters, passed through as they are.
    estimator: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")] = (
        "sklearn.ensemble.RandomForestClassifier"
    )
    hyperparameters: dict[str, int | float | str | bool] = Field(default_factory=dict)


Threshold = Annotated[float, Field(allow_inf_nan=False)]
SliceName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]


class SliceSection(_Section):
    """A part of the test set the gate judges on its own: a column cut by bins, or by values."""

    column: str
    # Edges between groups, ascending: [12, 15] makes "< 12", "12 to 15" and ">= 15".
    bins: tuple[Annotated[float, Field(allow_inf_nan=False)], ...] = ()
    # Or the values that are groups of their own; any other value falls in "other".
    values: tuple[str | int | float, ...] = ()
    # A group with fewer test rows is reported as too small to judge, never passed silently.
    min_rows: Annotated[int, Field(ge=1)] = 30
    # Every group that can be judged must reach these (the task's metrics).
    thresholds: dict[Metric, Threshold] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_cut(self) -> SliceSection:
        if bool(self.bins) == bool(self.values):
            raise ValueError("set exactly one of bins (edges of a numeric column) or values (a column's groups)")
        if list(self.bins) != sorted(set(self.bins)):
            raise ValueError(f"bins must be ascending without repeats, e.g. {sorted(set(self.bins))}")
        if len(set(map(str, self.values))) != len(self.values):
            raise ValueError("values lists a value twice")
        return self


class FairnessSection(_Section):
    """Groups that must be served alike: the largest difference of a metric between them."""

    # Slices of [gate.slices] whose groups are the groups to compare (a sensitive attribute in your data).
    groups: tuple[SliceName, ...] = ()
    metrics: tuple[Metric, ...] = ()
    # The largest allowed difference between the best and the worst judged group, per metric, in
    # the metric's unit (a score's is at most 1; ml/tasks.py checks).
    max_disparity: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] = 0.1


class GateSection(_Section):
    primary_metric: Metric = "roc_auc"
    # In the primary metric's own unit (an error metric's may exceed 1).
    max_regression: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] = 0.0
    thresholds: dict[Metric, Threshold] = Field(default_factory=dict)
    # The candidate must beat the simple baseline (a regularised linear model fitted on the same
    # training split) on primary_metric by this much, in its unit; negative lets it trail by as much.
    min_gain_over_simple: Annotated[float, Field(allow_inf_nan=False)] = 0.0
    slices: dict[SliceName, SliceSection] = Field(default_factory=dict)
    fairness: FairnessSection = FairnessSection()

    @model_validator(mode="after")
    def _known_groups(self) -> GateSection:
        unknown = sorted(set(self.fairness.groups) - set(self.slices))
        if unknown:
            raise ValueError(
                f"[gate.fairness].groups names {', '.join(unknown)}, which [gate.slices] does not declare: "
                f"declare them there (column and bins or values) or remove them"
            )
        if self.fairness.groups and not self.fairness.metrics:
            raise ValueError("[gate.fairness] has groups but no metrics: list the metrics to compare, e.g. ['recall']")
        return self

    @field_validator("thresholds")
    @classmethod
    def _not_empty(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("at least one threshold is required, e.g. roc_auc = 0.95")
        return value


class TuneSection(_Section):
    """`make tune`: successive halving over [tune.space] on the training split (ml/tune.py)."""

    cv: Annotated[int, Field(ge=2, le=20)] = 5  # cross-validation folds
    factor: Annotated[int, Field(ge=2, le=10)] = 3  # each round keeps 1/factor of the candidates
    candidates: Annotated[int, Field(ge=2, le=1000)] = 30  # drawn at random from the space
    seed: int = 0
    # [train.hyperparameters]' names, each with the values to try; the others stay as [train] sets them.
    space: dict[str, tuple[int | float | str | bool, ...]] = Field(default_factory=dict)

    @field_validator("space")
    @classmethod
    def _values(cls, value: dict[str, tuple[object, ...]]) -> dict[str, tuple[object, ...]]:
        empty = sorted(name for name, values in value.items() if not values)
        if empty:
            raise ValueError(f"{', '.join(empty)} lists no value to try: give at least one, e.g. [100, 200]")
        return value


class StalenessSection(_Section):
    """`make staleness`: train on older windows of the data, score on newer ones (ml/staleness.py)."""

    # The column of [data].source that says when each row happened: numbers or dates. Empty: the
    # rows' order in the file, oldest first. It need not be a feature (it usually should not be).
    order_by: str = ""
    # The rows, oldest first, are cut into this many windows of equal size; a model is trained on
    # each but the last and scored on every later one. More windows: finer ages, fewer rows each.
    windows: Annotated[int, Field(ge=3, le=50)] = 5
    # A window with fewer rows than this is too small to train on or to judge: fewer windows, then.
    min_rows: Annotated[int, Field(ge=10)] = 30


class ModelCardSection(_Section):
    """What a person writes into every model card (ml/model_card.py); the pipeline adds the numbers."""

    purpose: Annotated[str, Field(max_length=2048)] = ""
    intended_uses: Annotated[str, Field(max_length=2048)] = ""
    # What the model must not be used for, and what its evaluation cannot tell.
    caveats: Annotated[str, Field(max_length=2048)] = ""
    owner: Annotated[str, Field(max_length=1024)] = ""
    # SageMaker's scale: High, Medium, Low or Unknown.
    risk_rating: Literal["High", "Medium", "Low", "Unknown"] = "Unknown"


class AwsSection(_Section):
    instance_type: Annotated[str, Field(pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")] = "ml.m5.large"
    managed_spot: bool = False


class MonitorSection(_Section):
    # `make monitor` (and the schedule in AWS) judges the traffic of the last window_hours.
    window_hours: Annotated[float, Field(gt=0, le=24 * 31)] = 24
    # The chance that traffic like the training data raises a drift alarm in a window, at most:
    # a chi-square test per feature at drift_alpha / features (ml/monitor.py).
    drift_alpha: Annotated[float, Field(gt=0, lt=0.5)] = 0.001
    # Below this many rows in the window, drift is not judged (the report says so).
    min_rows: Annotated[int, Field(ge=10)] = 50
    # More unreadable captured requests than this share of the window is a violation.
    max_unreadable_share: Annotated[float, Field(ge=0, le=1)] = 0.01
    # Model quality on labelled traffic: these metrics, no more than tolerance below the registered.
    quality_metrics: tuple[Metric, ...] = ("accuracy",)  # the task's own (ml/tasks.py)
    quality_tolerance: Annotated[float, Field(ge=0, le=1)] = 0.05
    min_labels: Annotated[int, Field(ge=1)] = 50
    # A serving model older than this is a violation (and an alarm in AWS): retrain.
    max_model_age_days: Annotated[int, Field(ge=1)] = 90

    def job_arguments(self, window_hours: float | None = None) -> list[str]:
        """These settings as ml/monitor_job.py's arguments: `make monitor` and the AWS schedule pass the same."""
        return [
            "--window-hours", str(window_hours or self.window_hours),
            "--drift-alpha", str(self.drift_alpha),
            "--min-rows", str(self.min_rows),
            "--max-unreadable-share", str(self.max_unreadable_share),
            "--quality-metrics", ",".join(self.quality_metrics),
            "--quality-tolerance", str(self.quality_tolerance),
            "--min-labels", str(self.min_labels),
            "--max-model-age-days", str(self.max_model_age_days),
        ]  # fmt: skip


class ServeSection(_Section):
    host: Literal["127.0.0.1", "localhost"] = "127.0.0.1"
    # 0 picks a free port when the endpoint first starts; it keeps it across version switches.
    port: Annotated[int, Field(ge=0, le=65535)] = 0
    # gunicorn workers; 0 means one per core, as the SageMaker container runs.
    workers: Annotated[int, Field(ge=0, le=64)] = 0
    # A request body that has not arrived after this long gets 408 (a client that stalls).
    body_timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 60
    smoke_test_rows: Annotated[int, Field(ge=1, le=10_000)] = 25
    # The smoke test fails when its single-row requests' 95th-percentile latency is over this.
    # Generous: a local endpoint answers in about 10 ms; the budget catches a model that takes seconds,
    # not a busy laptop or CI runner (two test suites at once on 2 cores reached 509 ms).
    smoke_test_p95_ms: Annotated[float, Field(gt=0, le=60_000)] = 2000
    startup_timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 60


class BatchSection(_Section):
    """Batch scoring (`make batch`), with Batch Transform's settings of the same names."""

    # A mini-batch is as many whole lines as fit in this (MaxPayloadInMB; SageMaker allows 1 to 100).
    max_payload_mb: Annotated[int, Field(ge=1, le=100)] = 6
    # The predictions file holds the input's columns, then the prediction's (JoinSource Input), or
    # the prediction's alone (None); output_filter keeps some of them (OutputFilter, a JSONPath such
    # as "$[0,-2:]": indices and slices of the joined row; "$" keeps all).
    join_source: Literal["Input", "None"] = "Input"
    output_filter: Annotated[str, Field(pattern=r"^\$(\[[0-9:,\s-]*\])?$")] = "$"
    # Rows the schema refuses go to the rejects file with the reason; past this share the job fails.
    max_reject_share: Annotated[float, Field(ge=0, le=1)] = 0.01
    instance_type: Annotated[str, Field(pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")] = "ml.m5.large"


class Config(_Section):
    project: ProjectSection
    framework: FrameworkSection
    data: DataSection = DataSection()
    train: TrainSection = TrainSection()
    gate: GateSection = GateSection()
    tune: TuneSection = TuneSection()
    staleness: StalenessSection = StalenessSection()
    model_card: ModelCardSection = ModelCardSection()
    aws: AwsSection = AwsSection()
    monitor: MonitorSection = MonitorSection()
    serve: ServeSection = ServeSection()
    batch: BatchSection = BatchSection()

    # Set by load_config, not read from the file.
    path: Path = Path("mlops.toml")
    env: str = "local"

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def schema_path(self) -> Path:
        return (self.root / self.data.schema_file).resolve()

    @property
    def state_dir(self) -> Path:
        override = os.environ.get("MLOPS_HOME")
        return Path(override).resolve() if override else self.root / ".mlops"

    def check_state_dir(self) -> None:
        state = self.state_dir
        if state.exists() and not state.is_dir():
            raise ConfigError(
                f"the local state directory {state} is a file"
                + (" (MLOPS_HOME names it)" if os.environ.get("MLOPS_HOME") else "")
                + ": point MLOPS_HOME at a directory, or move the file away"
            )

    def parameters(self) -> dict[str, object]:
        """Everything that shapes the model apart from code and data, for the fingerprint."""
        return {
            "framework": self.framework.model_dump(),
            "data": {"test_fraction": self.data.test_fraction, "seed": self.data.seed},
            "estimator": self.train.estimator,
            "hyperparameters": dict(sorted(self.train.hyperparameters.items())),
        }


def _describe(error: ValidationError, path: Path) -> str:
    lines = [f"{path} is invalid:"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        lines.append(f"  - {key}: {item['msg']}")
    lines.append("Fix these keys in the file (see the comments in mlops.toml) and run again.")
    return "\n".join(lines)


def load_config(path: Path | None = None, env: str | None = None) -> Config:
    path = Path(path or os.environ.get("MLOPS_CONFIG") or PROJECT_ROOT / "mlops.toml").resolve()
    env = env or os.environ.get("MLOPS_ENV", "local")
    if env not in ENVIRONMENTS:
        raise ConfigError(f"MLOPS_ENV={env!r} is not an environment: use one of {', '.join(ENVIRONMENTS)}.")
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: run from the project root or set MLOPS_CONFIG.")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}. Fix the syntax and run again.") from exc
    try:
        config = Config.model_validate({**raw, "path": path, "env": env})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from exc
    config.check_state_dir()
    return config
