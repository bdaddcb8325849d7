"""A stack's settings: mlops.toml's [project] plus the stack's Pulumi.<env>.yaml config.

Everything is validated here, before a single resource is declared, so a typo in a
stack file fails `pulumi preview` with the key, the allowed values and the fix.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import pulumi
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ml import names
from ml.config import ProjectSection

STACKS = ("dev", "staging", "prod")
# The retention periods CloudWatch Logs accepts (PutRetentionPolicy, retentionInDays).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653)  # fmt: skip
# Settings a serverless endpoint cannot use (SageMaker guide, Serverless Inference, feature exclusions:
# no instances to count or scale, no data capture, no canary traffic shifting).
REAL_TIME_ONLY = ("instance_type", "instance_count", "autoscaling_max_instances", "data_capture_percent",
                  "canary_percent", "canary_wait_seconds")  # fmt: skip
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Keys a stack file may set under the project's namespace, with what each accepts.
KEYS: dict[str, str] = {
    "endpoint_type": "serverless or real-time",
    "model_version": "empty (no endpoint yet) or a model version number, written by `make promote`",
    "registry_stack": "one account: the fully qualified stack that owns the model registry, e.g. organization/<project>/dev",
    "registry_kms_key_arn": "one account per environment: dev's kms_key_arn output "
    "(`pulumi stack output kms_key_arn --stack dev`), the key of the registry's models",
    "instance_type": "an ml.* instance type, e.g. ml.m5.large (real-time only)",
    "instance_count": "1 or more; at least 2 in prod (real-time only)",
    "autoscaling_max_instances": "at least instance_count (real-time only)",
    "serverless_memory_mb": "1024 to 6144 in steps of 1024 (serverless only)",
    "serverless_max_concurrency": "1 to 200 (serverless only)",
    "data_capture_percent": "0 to 100 (real-time only; serverless endpoints cannot capture data)",
    "canary_percent": "1 to 50: share of the fleet (whole instances, at least one) that takes traffic first in a "
    "blue/green update; with one instance the update shifts all at once after canary_wait_seconds",
    "canary_wait_seconds": "0 to 3600: how long the canary must stay healthy",
    "latency_alarm_ms": "model latency (average over 1 minute) that raises the alarm",
    "error_alarm_count": "5xx responses per minute that raise the alarm",
    "invocations_alarm_per_minute": "invocations per minute above which the traffic alarm fires",
    "monitoring_baseline_statistics": "the promoted model's statistics.json in S3, written by `make promote`",
    "monitoring_baseline_constraints": "the promoted model's constraints.json in S3, written by `make promote`",
    "monitoring_evaluation": "the promoted model's evaluation.json in S3 (its registered metrics), written by `make promote`",
    "monitoring_model_created_at": "when the promoted model was registered (ISO 8601), written by `make promote`",
    "monitoring_schedule": "when the monitoring job runs: an EventBridge Scheduler expression, e.g. rate(1 hour)",
    "batch_schedule": "when the nightly batch scores batch_input: an EventBridge Scheduler expression, e.g. "
    "cron(0 2 * * ? *); empty or absent: no scheduled batch",
    "batch_input": "the S3 prefix (not the bucket's root) in this environment's data bucket where the files to "
    "score land (CSV lines, no header, the schema's features alone, in its order), e.g. s3://<data bucket>/incoming/",
    "alert_emails": "addresses, comma-separated, subscribed to the environment's alert topic (beside budget_alert_email)",
    "github_dispatch_token": "a secret GitHub token that may send repository_dispatch "
    "(`pulumi config set --secret github_dispatch_token ...`); needed once monitoring is on",
    "budget_monthly_usd": "monthly cost budget for this environment, in USD",
    "budget_alert_email": "address that receives budget alerts",
    "noncurrent_version_days": "days to keep noncurrent object versions",
    "access_log_days": "days to keep S3 access logs",
    "log_retention_days": "days CloudWatch keeps the endpoint's logs: one of "
    + ", ".join(map(str, LOG_RETENTION_DAYS)),
}


class StackConfigError(pulumi.RunError):
    """A missing or invalid stack config value. Raised before any resource exists.

    A RunError makes Pulumi print the message alone, without a Python traceback.
    """


# EventBridge Scheduler's recurring expressions: rate(value unit), or cron with its six fields.
SCHEDULE = r"^(rate\([1-9][0-9]* (minute|minutes|hour|hours|day|days)\)|cron\(\S+( \S+){5}\))$"
LONGEST_MONITORING_PERIOD = 3 * 86400  # the silent-monitor alarm looks back two periods; CloudWatch, 7 days at most


def schedule_seconds(expression: str) -> int:
    """How often a schedule runs; a cron expression is taken as daily, the longest the template expects."""
    if expression.startswith("cron("):
        return 86400
    value, unit = expression[len("rate(") : -1].split()
    return int(value) * {"minute": 60, "hour": 3600, "day": 86400}[unit.rstrip("s")]


class StackSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stack: Literal["dev", "staging", "prod"]
    project: ProjectSection
    endpoint_type: Literal["serverless", "real-time"]
    model_version: Annotated[int, Field(ge=1)] | None = None
    registry_stack: str | None = None
    registry_kms_key_arn: (
        Annotated[str, Field(pattern=r"^arn:aws:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$")] | None
    ) = None
    instance_type: Annotated[str, Field(pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")] = "ml.m5.large"
    instance_count: Annotated[int, Field(ge=1, le=100)] = 1
    autoscaling_max_instances: Annotated[int, Field(ge=1, le=100)] = 4
    serverless_memory_mb: int = 2048
    serverless_max_concurrency: Annotated[int, Field(ge=1, le=200)] = 5
    data_capture_percent: Annotated[int, Field(ge=0, le=100)] = 0
    canary_percent: Annotated[int, Field(ge=1, le=50)] = 10
    canary_wait_seconds: Annotated[int, Field(ge=0, le=3600)] = 300
    latency_alarm_ms: Annotated[int, Field(ge=1)] = 500
    error_alarm_count: Annotated[int, Field(ge=1)] = 5
    invocations_alarm_per_minute: Annotated[int, Field(ge=1)] = 6000
    monitoring_baseline_statistics: Annotated[str, Field(pattern=r"^s3://")] | None = None
    monitoring_baseline_constraints: Annotated[str, Field(pattern=r"^s3://")] | None = None
    monitoring_evaluation: Annotated[str, Field(pattern=r"^s3://")] | None = None
    monitoring_model_created_at: str | None = None
    monitoring_schedule: Annotated[str, Field(pattern=SCHEDULE)] = "rate(1 hour)"
    batch_schedule: Annotated[str, Field(pattern=SCHEDULE)] | None = None
    batch_input: Annotated[str, Field(pattern=r"^s3://[a-z0-9][a-z0-9.-]+/\S+/$")] | None = None
    alert_emails: list[str] = Field(default_factory=list)
    github_dispatch_token: str | None = None
    budget_monthly_usd: Annotated[float, Field(gt=0)]
    budget_alert_email: str
    noncurrent_version_days: Annotated[int, Field(ge=1)] = 90
    access_log_days: Annotated[int, Field(ge=1)] = 365
    log_retention_days: int = 90

    @field_validator(
        "model_version",
        "registry_stack",
        "registry_kms_key_arn",
        "monitoring_baseline_statistics",
        "monitoring_baseline_constraints",
        "monitoring_evaluation",
        "monitoring_model_created_at",
        "github_dispatch_token",
        "batch_schedule",
        "batch_input",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value in ("", None) else value

    @field_validator("serverless_memory_mb")
    @classmethod
    def _memory_steps(cls, value: int) -> int:
        if value not in range(1024, 6145, 1024):
            raise ValueError("must be 1024, 2048, 3072, 4096, 5120 or 6144 (SageMaker serverless limits)")
        return value

    @field_validator("budget_alert_email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not EMAIL.match(value):
            raise ValueError("must be an email address")
        return value

    @field_validator("alert_emails", mode="before")
    @classmethod
    def _emails(cls, value: Any) -> Any:
        addresses = [a.strip() for a in value.split(",") if a.strip()] if isinstance(value, str) else value
        bad = [a for a in addresses or [] if not EMAIL.match(str(a))]
        if bad:
            raise ValueError(f"{', '.join(map(str, bad))} is not an email address")
        return addresses

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"CloudWatch Logs keeps logs for one of {', '.join(map(str, LOG_RETENTION_DAYS))} days")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> StackSettings:
        if self.endpoint_type == "serverless" and self.data_capture_percent:
            raise ValueError(
                "data_capture_percent must be 0 for a serverless endpoint: serverless endpoints cannot "
                "capture data. Use endpoint_type: real-time to capture, or set data_capture_percent: 0"
            )
        if self.endpoint_type == "serverless":
            misplaced = [key for key in REAL_TIME_ONLY if key in self.model_fields_set]
            if misplaced:
                raise ValueError(
                    f"{', '.join(misplaced)} apply to real-time endpoints only: serverless endpoints have no "
                    "instances, capture no data and shift traffic all at once (SageMaker guide, Serverless "
                    "Inference, feature exclusions). Remove them from the stack file, or use endpoint_type: real-time"
                )
        if self.endpoint_type == "real-time":
            if self.stack == "prod" and self.instance_count < 2:
                raise ValueError(
                    "instance_count must be at least 2 in prod, so one instance can fail or be "
                    "replaced without downtime"
                )
            if self.autoscaling_max_instances < self.instance_count:
                raise ValueError("autoscaling_max_instances must be at least instance_count")
        if schedule_seconds(self.monitoring_schedule) > LONGEST_MONITORING_PERIOD:
            raise ValueError(
                f"monitoring_schedule {self.monitoring_schedule} runs less often than every "
                f"{LONGEST_MONITORING_PERIOD // 86400} days; the monitoring alarms cannot look back that far"
            )
        if self.monitored and not self.github_dispatch_token:
            raise ValueError(
                "github_dispatch_token is required once monitoring is on (a real-time endpoint with data "
                "capture and a baseline): `pulumi config set --secret github_dispatch_token <token>`, a "
                "fine-grained token with Contents: read and write on the repository"
            )
        if self.batch_schedule is not None:
            self._batch_input()
        if self.stack != "dev":
            self._registry_source()
        return self

    def _batch_input(self) -> None:
        bucket = names.bucket_name(self.prefix, self.stack, "data", self.project.account(self.stack))
        if self.batch_input is None:
            raise ValueError(
                f"batch_input is required with batch_schedule: the prefix where the files to score land, "
                f"e.g. `pulumi config set batch_input s3://{bucket}/incoming/ --stack {self.stack}`"
            )
        if not self.batch_input.startswith(f"s3://{bucket}/"):
            raise ValueError(
                f"batch_input {self.batch_input} is outside this environment's data bucket {bucket}, which is all "
                f"the transform job may read: use s3://{bucket}/<prefix>/"
            )
        missing = [
            key
            for key in ("monitoring_baseline_statistics", "monitoring_baseline_constraints")
            if getattr(self, key) is None
        ]
        if self.model_version is not None and missing:
            raise ValueError(
                f"the nightly batch judges each batch's drift against the served model's baseline, and "
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing: `make promote` writes "
                f"them with model_version; promote v{self.model_version} again (`make promote VERSION="
                f"{self.model_version} TO={self.stack}`) rather than setting model_version by hand"
            )

    def _registry_source(self) -> None:
        """Staging and prod find dev's registry key through dev's state (one account) or their stack file."""
        if not self.project.per_environment:
            if self.registry_stack is None:
                raise ValueError(
                    f"registry_stack is required in the {self.stack} stack: name the stack that trains and "
                    "registers models, e.g. organization/<project>/dev"
                )
            return
        if self.registry_stack is not None:
            raise ValueError(
                "registry_stack cannot work with account_layout per-environment: each account keeps its own "
                "Pulumi state, and a stack reference reads only its own backend. Remove registry_stack and set "
                f"registry_kms_key_arn: `pulumi config set registry_kms_key_arn <dev's kms_key_arn> --stack {self.stack}`"
            )
        if self.registry_kms_key_arn is None:
            raise ValueError(
                f"registry_kms_key_arn is required in the {self.stack} stack with account_layout per-environment: "
                f"`pulumi config set registry_kms_key_arn $(pulumi stack output kms_key_arn --stack dev) --stack {self.stack}`"
            )
        dev = self.project.aws_account_id
        if f":{dev}:key/" not in self.registry_kms_key_arn:
            raise ValueError(
                f"registry_kms_key_arn {self.registry_kms_key_arn} is not a key of dev's account {dev}: "
                "use the kms_key_arn output of the dev stack"
            )

    @property
    def prefix(self) -> str:
        return self.project.resource_prefix

    @property
    def real_time(self) -> bool:
        return self.endpoint_type == "real-time"

    @property
    def batch_scheduled(self) -> bool:
        """The nightly batch scores with the model the stack serves, so it needs one."""
        return self.batch_schedule is not None and self.model_version is not None

    @property
    def monitored(self) -> bool:
        """The monitoring job needs captured data (real-time only) and the promoted model's baseline."""
        return (
            self.real_time
            and self.data_capture_percent > 0
            and self.model_version is not None
            and self.monitoring_baseline_statistics is not None
            and self.monitoring_baseline_constraints is not None
            and self.monitoring_evaluation is not None
        )


def parse(stack: str, project: ProjectSection, values: dict[str, Any], source: str) -> StackSettings:
    """Validate a stack's config values; the message names each key and what it accepts."""
    unknown = sorted(set(values) - set(KEYS))
    problems = [f"  - {key}: unknown key; known keys are {', '.join(sorted(KEYS))}" for key in unknown]
    if stack not in STACKS:
        problems.append(f"  - stack {stack!r}: use one of {', '.join(STACKS)}")
    if not problems:
        try:
            return StackSettings.model_validate({**values, "stack": stack, "project": project})
        except ValidationError as error:
            for item in error.errors():
                key = ".".join(str(part) for part in item["loc"]) or "(stack)"
                allowed = KEYS.get(key.split(".")[0])
                hint = f" (allowed: {allowed})" if allowed else ""
                got = f"; got {item['input']!r}" if "input" in item and not isinstance(item["input"], dict) else ""
                problems.append(f"  - {key}: {item['msg']}{got}{hint}")
    raise StackConfigError(
        f"{source} is invalid:\n" + "\n".join(problems) + f"\nFix the keys above in {source} and run again."
    )
