"""A bad stack file fails before any resource is declared, naming the key and what it accepts."""

from __future__ import annotations

from typing import Any

import pytest

from infra import program
from infra.mocks import capture, default_mocks, stack_values
from infra.settings import StackConfigError
from ml.config import load_config
from tests.infra.iam.scenarios import LAYOUTS, layout_overrides

PREFIX = load_config().project.resource_prefix
SINGLE = LAYOUTS["single"]


def declare_with(stack: str, changes: dict[str, Any]) -> tuple[StackConfigError, list[str]]:
    # In the one-account layout, whichever this project was baked with.
    values = {**stack_values(stack, PREFIX), **layout_overrides(stack, SINGLE), **changes}
    config = {f"{PREFIX}:{key}": value for key, value in values.items() if value is not None}
    mocks = default_mocks(SINGLE, stack)
    with pytest.raises(StackConfigError) as error:
        capture(PREFIX, stack, config, mocks, lambda: program.build(program.load_settings(SINGLE)))
    return error.value, mocks.registered


BAD = [
    pytest.param("dev", {"endpoint_type": "gpu"}, "endpoint_type", "serverless or real-time", id="endpoint-type"),
    pytest.param("dev", {"serverless_memory_mb": 3000}, "serverless_memory_mb", "1024 to 6144", id="memory-step"),
    pytest.param("dev", {"serverless_memory_mb": 7168}, "serverless_memory_mb", "1024 to 6144", id="memory-max"),
    pytest.param("dev", {"serverless_max_concurrency": 0}, "serverless_max_concurrency", "1 to 200", id="conc-0"),
    pytest.param("dev", {"serverless_max_concurrency": 201}, "serverless_max_concurrency", "1 to 200", id="conc-201"),
    pytest.param(
        "dev",
        {"endpoint_type": "serverless", "data_capture_percent": 10},
        "data_capture_percent",
        "serverless endpoints cannot capture data",
        id="serverless-capture",
    ),
    pytest.param(
        "prod",
        {"endpoint_type": "real-time", "instance_count": 1},
        "instance_count",
        "at least 2 in prod",
        id="prod-one-instance",
    ),
    pytest.param(
        "dev",
        {"endpoint_type": "real-time", "instance_count": 3, "autoscaling_max_instances": 2},
        "autoscaling_max_instances",
        "at least instance_count",
        id="autoscaling-below-count",
    ),
    pytest.param("dev", {"budget_alert_email": None}, "budget_alert_email", "receives budget alerts", id="no-email"),
    pytest.param("dev", {"budget_alert_email": "ml-team"}, "budget_alert_email", "email address", id="bad-email"),
    pytest.param("dev", {"budget_monthly_usd": -5}, "budget_monthly_usd", "monthly cost budget", id="budget"),
    pytest.param("dev", {"model_version": "latest"}, "model_version", "written by `make promote`", id="version"),
    pytest.param("staging", {"registry_stack": None}, "registry_stack", "organization/<project>/dev", id="registry"),
    pytest.param("dev", {"instance_type": "m5.large"}, "instance_type", "ml.m5.large", id="instance-type"),
    # Serverless Inference's feature exclusions: no instances to count, no capture, no canary.
    pytest.param(
        "dev",
        {"endpoint_type": "serverless", "instance_count": 2},
        "instance_count",
        "apply to real-time endpoints only",
        id="serverless-instances",
    ),
    pytest.param(
        "dev",
        {"endpoint_type": "serverless", "canary_percent": 20},
        "canary_percent",
        "shift traffic all at once",
        id="serverless-canary",
    ),
    # SageMaker's blue/green canary is at most half the fleet.
    pytest.param("prod", {"canary_percent": 60}, "canary_percent", "1 to 50", id="canary-over-half"),
    pytest.param("dev", {"log_retention_days": 45}, "log_retention_days", "one of 1, 3, 5", id="log-retention"),
    pytest.param(
        "prod", {"monitoring_schedule": "every hour"}, "monitoring_schedule", "EventBridge Scheduler", id="schedule"
    ),
]


@pytest.mark.parametrize(("stack", "changes", "key", "allowed"), BAD)
def test_bad_value_fails_before_any_resource_with_key_and_allowed_values(
    stack: str, changes: dict[str, Any], key: str, allowed: str
) -> None:
    error, registered = declare_with(stack, changes)
    message = str(error)
    assert key in message
    assert allowed in message
    assert f"Pulumi.{stack}.yaml" in message
    assert registered == []


def test_an_unknown_key_is_named_with_the_known_ones() -> None:
    from infra.settings import parse

    with pytest.raises(StackConfigError, match=r"instance_cuont: unknown key; known keys are .*instance_count"):
        parse("dev", load_config().project, {"instance_cuont": 2}, "Pulumi.dev.yaml")


def test_every_committed_stack_file_uses_only_known_keys() -> None:
    from infra.settings import KEYS, STACKS

    for stack in STACKS:
        assert set(stack_values(stack, PREFIX)) <= set(KEYS)


PER_ENVIRONMENT = load_config().project.model_copy(
    update={"account_layout": "per-environment", "accounts": {"staging": "234567890123", "prod": "345678901234"}}
)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"registry_stack": "organization/p/dev"}, "registry_stack cannot work with account_layout per-environment"),
        ({"registry_stack": None, "registry_kms_key_arn": None}, "registry_kms_key_arn is required in the staging stack"),
        ({"registry_stack": None, "registry_kms_key_arn": "arn:aws:kms:eu-west-1:999999999999:key/k"},
         "is not a key of dev's account"),
        ({"registry_stack": None, "registry_kms_key_arn": "alias/dev"}, "registry_kms_key_arn"),
    ],
    ids=["stack-reference", "no-key", "foreign-key", "not-an-arn"],
)  # fmt: skip
def test_the_per_environment_layout_finds_the_registry_through_the_stack_file(
    changes: dict[str, Any], message: str
) -> None:
    from infra.mocks import run_stack

    with pytest.raises(StackConfigError, match=message):
        run_stack("staging", changes, PER_ENVIRONMENT)
