"""Drift monitoring in AWS: present exactly where it can work, encrypted, and wired to retraining."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.components import drift
from infra.mocks import StackRun, run_stack
from infra.settings import StackConfigError
from ml import names, schema
from ml.config import load_config

PROJECT = load_config().project
BASELINE = {
    "monitoring_baseline_statistics": "s3://bucket/sha256/aa/statistics.json",
    "monitoring_baseline_constraints": "s3://bucket/sha256/bb/constraints.json",
}
ON = {"model_version": 4, "endpoint_type": "real-time", "instance_count": 2, "data_capture_percent": 20,
      "github_dispatch_token": "secret-token", **BASELINE}  # fmt: skip
JOB = "aws:sagemaker/dataQualityJobDefinition:DataQualityJobDefinition"


@pytest.fixture(scope="module")
def monitored() -> StackRun:
    return run_stack("prod", ON)


def test_a_real_time_endpoint_with_capture_and_a_baseline_gets_a_schedule(monitored: StackRun) -> None:
    job = monitored.one(JOB).inputs
    assert job["dataQualityBaselineConfig"] == {
        "constraintsResource": {"s3Uri": BASELINE["monitoring_baseline_constraints"]},
        "statisticsResource": {"s3Uri": BASELINE["monitoring_baseline_statistics"]},
    }
    assert job["dataQualityJobInput"]["endpointInput"]["endpointName"] == names.endpoint_name(
        PROJECT.resource_prefix, "prod"
    )
    assert job["dataQualityAppSpecification"]["imageUri"].endswith("/sagemaker-model-monitor-analyzer")
    kms = monitored.outputs["kms_key_arn"]
    assert job["jobResources"]["clusterConfig"]["volumeKmsKeyId"] == kms
    assert job["dataQualityJobOutputConfig"]["kmsKeyId"] == kms
    schedule = monitored.one("aws:sagemaker/monitoringSchedule:MonitoringSchedule").inputs
    assert schedule["monitoringScheduleConfig"]["monitoringType"] == "DataQuality"
    assert monitored.outputs["monitoring_schedule"] == schedule["name"]


def test_one_drift_alarm_per_feature(monitored: StackRun) -> None:
    alarms = [
        a.inputs for a in monitored.of_type("aws:cloudwatch/metricAlarm:MetricAlarm") if "drift" in a.inputs["name"]
    ]
    assert sorted(a["metricName"] for a in alarms) == sorted(f"feature_baseline_drift_{f}" for f in schema.FEATURES)
    assert {a["namespace"] for a in alarms} == {"aws/sagemaker/Endpoints/data-metrics"}


def test_a_drift_alarm_sends_repository_dispatch_retrain(monitored: StackRun) -> None:
    destination = monitored.one("aws:cloudwatch/eventApiDestination:EventApiDestination").inputs
    assert destination["invocationEndpoint"] == f"https://api.github.com/repos/{PROJECT.github_repository}/dispatches"
    assert destination["httpMethod"] == "POST"
    connection = monitored.one("aws:cloudwatch/eventConnection:EventConnection").inputs
    assert connection["authorizationType"] == "API_KEY"
    pattern = json.loads(monitored.one("aws:cloudwatch/eventRule:EventRule").inputs["eventPattern"])
    prefix = names.alarm_name(PROJECT.resource_prefix, "prod", "drift-")
    assert pattern["detail"] == {"alarmName": [{"prefix": prefix}], "state": {"value": ["ALARM"]}}
    target = monitored.one("aws:cloudwatch/eventTarget:EventTarget").inputs
    assert json.loads(target["input"])["event_type"] == "retrain"
    policy: dict[str, Any] = json.loads(
        monitored.one("aws:iam/rolePolicy:RolePolicy", "prod-events-invoker-policy").inputs["policy"]
    )
    assert policy["Statement"] == [
        {"Effect": "Allow", "Action": "events:InvokeApiDestination", "Resource": destination["arn"]}
    ]


@pytest.mark.parametrize(
    ("stack", "changes"),
    [
        ("staging", {**ON, "endpoint_type": "serverless", "data_capture_percent": 0}),
        ("prod", {**ON, "data_capture_percent": 0}),
        ("prod", {**ON, "model_version": None}),
        ("prod", {**ON, "monitoring_baseline_constraints": None}),
    ],
    ids=["serverless", "no-capture", "no-model", "no-baseline"],
)
def test_no_monitoring_where_it_cannot_work(stack: str, changes: dict[str, Any]) -> None:
    run = run_stack(stack, changes)
    assert not run.of_type(JOB)
    assert not run.of_type("aws:cloudwatch/eventRule:EventRule")


def test_monitoring_without_a_dispatch_token_names_the_key() -> None:
    with pytest.raises(StackConfigError, match=r"github_dispatch_token.*pulumi config set --secret"):
        run_stack("prod", {**ON, "github_dispatch_token": None})


def test_a_region_without_model_monitor_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drift, "analyzer_image", lambda region: None)
    import infra.program

    monkeypatch.setattr(infra.program, "analyzer_image", lambda region: None)
    with pytest.raises(StackConfigError, match="Model Monitor is not published"):
        run_stack("prod", ON)
