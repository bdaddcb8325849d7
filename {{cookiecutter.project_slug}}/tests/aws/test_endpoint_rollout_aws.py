"""Honest rollouts: verify says when SageMaker rolled an update back, and old configs can be pruned.

pulumi-aws reports success when SageMaker auto-rolls back a blue/green update and then deletes the
config that serves again (terraform-provider-aws #48997): the endpoint is left on another config
than the stack's `endpoint_config_name`. botocore's Stubber checks each request against the
service model; the prune test runs against moto.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from ml.backends.base import ModelPackage, ModelVersion
from ml.backends.sagemaker_endpoint import SageMakerEndpoint
from ml.config import load_config
from ml.errors import EndpointError

REGION = load_config().project.aws_region
NOW = datetime.datetime(2026, 11, 30, tzinfo=datetime.UTC)
ALARMS = ("tc-dev-5xx", "tc-dev-latency")


def arn(resource: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:123456789012:{resource}"


def version(number: int) -> ModelVersion:
    return ModelVersion(number, "g", "now", ModelPackage("s3://a/m", "s3://a/e", "f", "Approved", {}, {}))


def serving(stubber: Stubber, config: str, model_version: int, status: str = "InService") -> None:
    stubber.add_response(
        "describe_endpoint",
        {"EndpointName": "tc-dev", "EndpointArn": arn("endpoint/tc-dev"), "EndpointConfigName": config,
         "EndpointStatus": status, "CreationTime": NOW, "LastModifiedTime": NOW},
        expected_params={"EndpointName": "tc-dev"},
    )  # fmt: skip
    stubber.add_response(
        "describe_endpoint_config",
        {"EndpointConfigName": config, "EndpointConfigArn": arn(f"endpoint-config/{config}"), "CreationTime": NOW,
         "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": f"model-of-{config}"}]},
        expected_params={"EndpointConfigName": config},
    )  # fmt: skip
    stubber.add_response(
        "describe_model",
        {"ModelName": f"model-of-{config}", "ModelArn": arn(f"model/model-of-{config}"), "CreationTime": NOW,
         "PrimaryContainer": {"ModelPackageName": arn(f"model-package/g/{model_version}")}},
        expected_params={"ModelName": f"model-of-{config}"},
    )  # fmt: skip


def clients() -> tuple[object, Stubber, object, Stubber]:
    sagemaker = boto3.client("sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    cloudwatch = boto3.client("cloudwatch", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    return sagemaker, Stubber(sagemaker), cloudwatch, Stubber(cloudwatch)


def test_a_rolled_back_update_fails_verify_naming_the_alarm_and_the_version_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sagemaker, sm_stub, cloudwatch, cw_stub = clients()
    # `pulumi up` applied v5 on tc-dev-config-5; SageMaker rolled back to v4's config.
    serving(sm_stub, "tc-dev-config-4", 4)
    cw_stub.add_response(
        "describe_alarms",
        {"MetricAlarms": [
            {"AlarmName": "tc-dev-5xx", "StateValue": "OK"},
            {"AlarmName": "tc-dev-latency", "StateValue": "ALARM"},
        ]},
        expected_params={"AlarmNames": list(ALARMS)},
    )  # fmt: skip
    monkeypatch.setenv("PATH", str(tmp_path))  # no Pulumi CLI: verify must not need (or run) one
    endpoint = SageMakerEndpoint(
        sagemaker, None, "tc-dev", "dev", tmp_path, poll_seconds=0, wait_seconds=0,
        cloudwatch_client=cloudwatch, applied=(5, "tc-dev-config-5"), rollback_alarms=ALARMS,
    )  # fmt: skip
    with sm_stub, cw_stub, pytest.raises(EndpointError) as raised:
        endpoint.deploy(version(5))
    message = str(raised.value)
    assert "still serves v4 on endpoint config tc-dev-config-4, not v5" in message
    assert "rolled the blue/green update back (rollback alarm(s) in ALARM: tc-dev-latency)" in message
    sm_stub.assert_no_pending_responses()


def test_verify_waits_out_an_update_and_passes_on_the_applied_config(tmp_path: Path) -> None:
    sagemaker, sm_stub, _, _ = clients()
    serving(sm_stub, "tc-dev-config-4", 4, status="Updating")
    serving(sm_stub, "tc-dev-config-5", 5)
    endpoint = SageMakerEndpoint(
        sagemaker, None, "tc-dev", "dev", tmp_path, poll_seconds=0, wait_seconds=60, applied=(5, "tc-dev-config-5")
    )
    with sm_stub:
        assert endpoint.deploy(version(5)).version == 5
    sm_stub.assert_no_pending_responses()


def test_a_config_deleted_under_the_endpoint_is_reported_not_a_traceback(tmp_path: Path) -> None:
    sagemaker, sm_stub, _, _ = clients()
    sm_stub.add_response(
        "describe_endpoint",
        {"EndpointName": "tc-dev", "EndpointArn": arn("endpoint/tc-dev"), "EndpointConfigName": "tc-dev-config-4",
         "EndpointStatus": "InService", "CreationTime": NOW, "LastModifiedTime": NOW},
    )  # fmt: skip
    sm_stub.add_client_error(
        "describe_endpoint_config", "ValidationException", "Could not find endpoint configuration tc-dev-config-4."
    )
    with (
        sm_stub,
        pytest.raises(EndpointError, match=r"tc-dev-config-4, whose config or model no longer exists.*#48997"),
    ):
        SageMakerEndpoint(sagemaker, None, "tc-dev", "dev", tmp_path).status()


def test_prune_keeps_what_the_endpoint_runs_and_what_the_stack_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        role = f"arn:aws:iam::123456789012:role/{'r'}"
        for number in (3, 4, 5):
            sagemaker.create_model(
                ModelName=f"tc-dev-model-{number}",
                ExecutionRoleArn=role,
                PrimaryContainer={"ModelPackageName": arn(f"model-package/g/{number}")},
            )
            sagemaker.create_endpoint_config(
                EndpointConfigName=f"tc-dev-config-{number}",
                ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": f"tc-dev-model-{number}",
                                     "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
            )  # fmt: skip
        sagemaker.create_model(ModelName="other-model", ExecutionRoleArn=role, PrimaryContainer={"Image": "x"})
        sagemaker.create_endpoint(EndpointName="tc-dev", EndpointConfigName="tc-dev-config-4")
        endpoint = SageMakerEndpoint(sagemaker, None, "tc-dev", "dev", Path(), applied=(5, "tc-dev-config-5"))
        removed = endpoint.prune()
        assert sorted(removed) == ["endpoint config tc-dev-config-3", "model tc-dev-model-3"]
        configs = {c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]}
        assert configs == {"tc-dev-config-4", "tc-dev-config-5"}
        models = {m["ModelName"] for m in sagemaker.list_models()["Models"]}
        assert models == {"tc-dev-model-4", "tc-dev-model-5", "other-model"}  # another endpoint's is not ours


def described(stubber: Stubber, variant: dict[str, object]) -> None:
    stubber.add_response(
        "describe_endpoint",
        {"EndpointName": "tc-dev", "EndpointArn": arn("endpoint/tc-dev"), "EndpointConfigName": "tc-dev-config-4",
         "EndpointStatus": "InService", "CreationTime": NOW, "LastModifiedTime": NOW},
    )  # fmt: skip
    stubber.add_response(
        "describe_endpoint_config",
        {"EndpointConfigName": "tc-dev-config-4", "EndpointConfigArn": arn("endpoint-config/tc-dev-config-4"),
         "CreationTime": NOW, "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "m", **variant}]},
    )  # fmt: skip


def test_an_instance_endpoint_is_not_switched_to_serverless_in_place(tmp_path: Path) -> None:
    sagemaker, sm_stub, _, _ = clients()
    described(sm_stub, {"InstanceType": "ml.m5.large", "InitialInstanceCount": 2})
    endpoint = SageMakerEndpoint(sagemaker, None, "tc-dev", "dev", tmp_path)
    with (
        sm_stub,
        pytest.raises(
            EndpointError, match=r"cannot convert an instance-based endpoint to serverless.*Empty model_version"
        ),
    ):
        endpoint.check_in_place(real_time=False, instance_type=None)


def test_an_autoscaled_variant_keeps_its_instance_type_until_autoscaling_is_off(tmp_path: Path) -> None:
    sagemaker, sm_stub, _, _ = clients()
    autoscaling = boto3.client(
        "application-autoscaling", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    as_stub = Stubber(autoscaling)
    resource = "endpoint/tc-dev/variant/AllTraffic"
    described(sm_stub, {"InstanceType": "ml.m5.large", "InitialInstanceCount": 2})
    as_stub.add_response(
        "describe_scalable_targets",
        {"ScalableTargets": [{"ServiceNamespace": "sagemaker", "ResourceId": resource, "MinCapacity": 2, "MaxCapacity": 6,
                              "ScalableDimension": "sagemaker:variant:DesiredInstanceCount", "RoleARN": "arn:aws:iam::1:role/x",
                              "CreationTime": NOW}]},
        expected_params={"ServiceNamespace": "sagemaker", "ResourceIds": [resource]},
    )  # fmt: skip
    endpoint = SageMakerEndpoint(sagemaker, None, "tc-dev", "dev", tmp_path, autoscaling_client=autoscaling)
    with (
        sm_stub,
        as_stub,
        pytest.raises(
            EndpointError, match=r"autoscaled on ml.m5.large.*autoscaling_max_instances equal to instance_count"
        ),
    ):
        endpoint.check_in_place(real_time=True, instance_type="ml.c5.xlarge")
    # Without a scalable target (step one done), or with the same type, the change goes through.
    described(sm_stub, {"InstanceType": "ml.m5.large", "InitialInstanceCount": 2})
    as_stub.add_response("describe_scalable_targets", {"ScalableTargets": []})
    with sm_stub, as_stub:
        endpoint.check_in_place(real_time=True, instance_type="ml.c5.xlarge")
    described(sm_stub, {"InstanceType": "ml.m5.large", "InitialInstanceCount": 2})
    with sm_stub:
        endpoint.check_in_place(real_time=True, instance_type="ml.m5.large")
