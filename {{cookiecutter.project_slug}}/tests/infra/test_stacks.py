"""Every committed stack file, with and without a model version, under Pulumi's mocks."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra import policies
from infra.components.endpoint import canary_instances
from infra.mocks import StackRun, run_stack, stack_values
from infra.settings import STACKS
from ml import names
from ml.config import load_config

PROJECT = load_config().project
PREFIX, ACCOUNT, REGION = PROJECT.resource_prefix, PROJECT.aws_account_id, PROJECT.aws_region
CONTRACT = {
    "region",
    "data_bucket",
    "artifacts_bucket",
    "kms_key_arn",
    "execution_role_arn",
    "deploy_role_arn",
    "preview_role_arn",
    "model_package_group",
}
ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
ENDPOINT = "aws:sagemaker/endpoint:Endpoint"

_cache: dict[tuple[str, int | None], StackRun] = {}


def stack(name: str, version: int | None) -> StackRun:
    # One mock run per case, shared by the assertions below.
    if (name, version) not in _cache:
        _cache[(name, version)] = run_stack(name, {"model_version": version})
    return _cache[(name, version)]


def document(value: Any) -> dict[str, Any]:
    return dict(json.loads(value))


CASES = [pytest.param(s, v, id=f"{s}-{'v7' if v else 'no-model'}") for s in STACKS for v in (None, 7)]


@pytest.mark.parametrize(("name", "version"), CASES)
def test_every_policy_passes(name: str, version: int | None) -> None:
    run = stack(name, version)
    assert {policy: found for policy, found in policies.evaluate(run.resources, run.settings).items() if found} == {}


@pytest.mark.parametrize(("name", "version"), CASES)
def test_outputs_are_the_contract_ml_reads(name: str, version: int | None) -> None:
    outputs = stack(name, version).outputs
    expected = (
        CONTRACT
        | ({"endpoint_name", "endpoint_config_name", "model_version", "model_name"} if version else set())
        | ({"mlflow_app_arn"} if name == "dev" else set())
    )
    assert set(outputs) == expected
    assert outputs["data_bucket"] == names.bucket_name(PREFIX, name, "data", PROJECT.account(name))
    assert outputs["artifacts_bucket"] == names.bucket_name(PREFIX, name, "artifacts", PROJECT.account(name))
    assert outputs["kms_key_arn"].startswith(f"arn:aws:kms:{REGION}:{PROJECT.account(name)}:key/")
    assert outputs["execution_role_arn"].endswith(f":role/{names.execution_role_name(PREFIX, name)}")
    if version:
        assert outputs["endpoint_name"] == names.endpoint_name(PREFIX, name)


@pytest.mark.parametrize(("name", "version"), CASES)
def test_an_endpoint_exists_only_once_a_version_is_promoted(name: str, version: int | None) -> None:
    run = stack(name, version)
    declared = {r.type for r in run.resources}
    endpoint_types = {ENDPOINT, ENDPOINT_CONFIG, "aws:sagemaker/model:Model"}
    if version is None:
        assert not endpoint_types & declared
        # Without an endpoint only the environment's own alarm (undeliverable events) exists.
        alarms = {a.inputs["name"] for a in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
        assert alarms == {names.alarm_name(PREFIX, name, "dead-letters")}
        assert "aws:budgets/budget:Budget" in declared
        return
    assert endpoint_types <= declared
    model = run.one("aws:sagemaker/model:Model")
    group = names.model_package_group_name(PREFIX, "dev")
    assert model.inputs["primaryContainer"]["modelPackageName"] == (
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{group}/{version}"
    )
    # Serverless Inference does not support network isolation (SageMaker guide, feature exclusions).
    assert model.inputs["enableNetworkIsolation"] is run.settings.real_time
    # Auto-named, so a new version gets a new config beside the one still serving.
    config = run.one(ENDPOINT_CONFIG)
    assert "name" not in stack_values(name, PREFIX)
    assert config.inputs["name"] != config.name
    assert run.one(ENDPOINT).inputs["endpointConfigName"] == config.inputs["name"]


def test_only_the_training_stack_owns_the_registry() -> None:
    assert stack("dev", None).of_type("aws:sagemaker/modelPackageGroup:ModelPackageGroup")
    for name in ("staging", "prod"):
        run = stack(name, None)
        assert not run.of_type("aws:sagemaker/modelPackageGroup:ModelPackageGroup")
        if PROJECT.per_environment:  # another account's state is out of reach: the stack file names dev's key
            assert run.settings.registry_kms_key_arn and f":{ACCOUNT}:key/" in run.settings.registry_kms_key_arn
        else:
            assert run.settings.registry_stack == f"organization/{PREFIX}/dev"
        assert run.outputs["model_package_group"] == names.model_package_group_name(PREFIX, "dev")


@pytest.mark.parametrize("name", STACKS)
def test_storage_is_encrypted_versioned_private_and_logged(name: str) -> None:
    run = stack(name, None)
    assert run.one("aws:kms/key:Key", f"{name}-key").inputs["enableKeyRotation"] is True
    buckets = {b.inputs["bucket"] for b in run.of_type("aws:s3/bucket:Bucket")}
    assert buckets == {names.bucket_name(PREFIX, name, p, PROJECT.account(name)) for p in names.BUCKET_PURPOSES}
    encryption = run.of_type("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    algorithms = sorted(e.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] for e in encryption)
    assert algorithms == ["AES256", "aws:kms", "aws:kms"]  # SSE-S3 only on the access-log bucket
    for config in encryption:
        rule = config.inputs["rules"][0]
        assert rule["bucketKeyEnabled"] is (rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms")
    logging = {r.name for r in run.of_type("aws:s3/bucketLogging:BucketLogging")}
    assert logging == {f"{name}-data-logging", f"{name}-artifacts-logging"}
    ownership = run.of_type("aws:s3/bucketOwnershipControls:BucketOwnershipControls")
    assert {o.inputs["rule"]["objectOwnership"] for o in ownership} == {"BucketOwnerEnforced"}
    lifecycles = run.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    assert all("noncurrentVersionExpiration" in lc.inputs["rules"][0] for lc in lifecycles)
    assert len(lifecycles) == 3


@pytest.mark.parametrize("name", STACKS)
def test_endpoint_kind_follows_the_stack_file(name: str) -> None:
    run = stack(name, 7)
    variant = run.one(ENDPOINT_CONFIG).inputs["productionVariants"][0]
    settings = run.settings
    if settings.endpoint_type == "serverless":
        assert variant["serverlessConfig"] == {
            "memorySizeInMb": settings.serverless_memory_mb,
            "maxConcurrency": settings.serverless_max_concurrency,
        }
        assert "kmsKeyArn" not in run.one(ENDPOINT_CONFIG).inputs
        assert not run.of_type("aws:appautoscaling/target:Target")
        assert "deploymentConfig" not in run.one(ENDPOINT).inputs
        return
    config = run.one(ENDPOINT_CONFIG).inputs
    assert variant["instanceType"] == settings.instance_type
    assert variant["initialInstanceCount"] == settings.instance_count
    assert config["kmsKeyArn"] == run.outputs["kms_key_arn"]
    if settings.data_capture_percent:
        capture = config["dataCaptureConfig"]
        assert capture["kmsKeyId"] == run.outputs["kms_key_arn"]
        assert capture["initialSamplingPercentage"] == settings.data_capture_percent
        assert capture["destinationS3Uri"] == f"s3://{run.outputs['artifacts_bucket']}/data-capture"
    deployment = run.one(ENDPOINT).inputs["deploymentConfig"]
    routing = deployment["blueGreenUpdatePolicy"]["trafficRoutingConfiguration"]
    if settings.instance_count >= 2:
        assert routing["type"] == "CANARY"
        canary = canary_instances(settings.instance_count, settings.canary_percent)
        assert routing["canarySize"] == {"type": "INSTANCE_COUNT", "value": canary}
    else:
        assert routing["type"] == "ALL_AT_ONCE"
    rollback = {a["alarmName"] for a in deployment["autoRollbackConfiguration"]["alarms"]}
    assert rollback == {names.alarm_name(PREFIX, name, s) for s in ("5xx", "latency")}
    if settings.autoscaling_max_instances == settings.instance_count:
        assert not run.of_type("aws:appautoscaling/target:Target")
        return
    target = run.one("aws:appautoscaling/target:Target").inputs
    assert (target["minCapacity"], target["maxCapacity"]) == (
        settings.instance_count,
        settings.autoscaling_max_instances,
    )
    assert target["resourceId"] == f"endpoint/{names.endpoint_name(PREFIX, name)}/variant/AllTraffic"


@given(instances=st.integers(min_value=2, max_value=100), percent=st.integers(min_value=1, max_value=50))
def test_the_canary_is_at_least_one_instance_and_at_most_half_the_fleet(instances: int, percent: int) -> None:
    # SageMaker's rule for blue/green canary traffic shifting (deployment guardrails).
    assert 1 <= canary_instances(instances, percent) <= instances // 2


def test_one_instance_shifts_all_at_once_after_the_baking_period() -> None:
    run = run_stack("staging", {"endpoint_type": "real-time", "model_version": 3, "instance_count": 1})
    routing = run.one(ENDPOINT).inputs["deploymentConfig"]["blueGreenUpdatePolicy"]["trafficRoutingConfiguration"]
    assert routing == {"type": "ALL_AT_ONCE", "waitIntervalInSeconds": run.settings.canary_wait_seconds}


def test_a_fleet_that_cannot_grow_has_no_scalable_target() -> None:
    # Changing the instance type of an autoscaled variant needs the target deregistered first:
    # README's two-step change goes through this state.
    run = run_stack(
        "prod", {"endpoint_type": "real-time", "model_version": 3, "instance_count": 2, "autoscaling_max_instances": 2}
    )
    assert not run.of_type("aws:appautoscaling/target:Target")


def test_prod_runs_real_time_on_two_instances_by_default() -> None:
    settings = stack("prod", 7).settings
    if settings.endpoint_type == "real-time":
        assert settings.instance_count >= 2
        assert settings.data_capture_percent > 0


@pytest.mark.parametrize("name", STACKS)
def test_execution_role_is_scoped_to_this_environment(name: str) -> None:
    run = stack(name, 7)
    role = run.one("aws:iam/role:Role", f"{name}-sagemaker-execution")
    trust = document(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": PROJECT.account(name)}}
    statements = {
        s["Sid"]: s
        for s in document(run.one(policies.ROLE_POLICY, f"{name}-sagemaker-execution-policy").inputs["policy"])[
            "Statement"
        ]
    }
    assert statements["ReadWriteOwnObjects"]["Resource"] == [
        f"arn:aws:s3:::{run.outputs['data_bucket']}/*",
        f"arn:aws:s3:::{run.outputs['artifacts_bucket']}/*",
    ]
    assert statements["UseOwnKey"]["Resource"] == run.outputs["kms_key_arn"]
    assert statements["DescribeRollbackAlarms"]["Action"] == "cloudwatch:DescribeAlarms"
    # Staging and prod read the models dev trained, and nothing else of dev's.
    if name == "dev":
        assert "ReadRegistryModels" not in statements
    else:
        dev_bucket = names.bucket_name(PREFIX, "dev", "artifacts", ACCOUNT)
        assert statements["ReadRegistryModels"] == {
            "Sid": "ReadRegistryModels",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{dev_bucket}/*",
        }


@pytest.mark.parametrize("name", STACKS)
def test_deploy_role_trusts_only_this_repository_and_environment(name: str) -> None:
    run = stack(name, None)
    role = run.one("aws:iam/role:Role", f"{name}-github-deploy")
    (statement,) = document(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Principal"] == {
        "Federated": f"arn:aws:iam::{PROJECT.account(name)}:oidc-provider/token.actions.githubusercontent.com"
    }
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": (
                f"repo:{PROJECT.github_repository}:environment:{names.github_environment(name)}"
            ),
        }
    }
    grants = document(run.one(policies.ROLE_POLICY, f"{name}-github-deploy-policy").inputs["policy"])["Statement"]
    iam = sorted(
        {
            a
            for s in grants
            for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
            if a.startswith("iam:")
        }
    )
    # It changes no IAM: it passes the execution role to SageMaker and the scheduler's role to its service.
    assert iam == ["iam:PassRole"]
    passed = {
        s["Resource"]: s["Condition"]["StringEquals"]["iam:PassedToService"]
        for s in grants
        if s["Action"] == "iam:PassRole"
    }
    assert passed == {
        run.outputs["execution_role_arn"]: "sagemaker.amazonaws.com",
        f"arn:aws:iam::{PROJECT.account(name)}:role/{names.scheduler_role_name(PREFIX, name)}": "scheduler.amazonaws.com",
    }


@pytest.mark.parametrize("name", STACKS)
def test_the_preview_role_trusts_the_preview_environment_and_only_reads(name: str) -> None:
    run = stack(name, None)
    role = run.one("aws:iam/role:Role", f"{name}-github-preview")
    (statement,) = document(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == (
        f"repo:{PROJECT.github_repository}:environment:{names.preview_environment(name)}"
    )
    grants = document(run.one(policies.ROLE_POLICY, f"{name}-github-preview-policy").inputs["policy"])["Statement"]
    actions = {a for s in grants for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions == {"s3:ListBucket", "s3:GetObject", "kms:Decrypt", "kms:DescribeKey"}
    assert run.outputs["preview_role_arn"] == role.inputs["arn"]


@pytest.mark.parametrize("name", STACKS)
def test_monitoring_alarms_dashboard_and_budget(name: str) -> None:
    run = stack(name, 7)
    settings = run.settings
    alarms = {a.inputs["metricName"]: a.inputs for a in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert set(alarms) == {"Invocation5XXErrors", "ModelLatency", "Invocations", "ApproximateNumberOfMessagesVisible"}
    # Each notifies the alert topic, which the stack file's addresses receive.
    topic = run.one("aws:sns/topic:Topic")
    assert all(alarm["alarmActions"] == [topic.inputs["arn"]] for alarm in alarms.values())
    subscribed = {s.inputs["endpoint"] for s in run.of_type("aws:sns/topicSubscription:TopicSubscription")}
    assert subscribed == {settings.budget_alert_email, *settings.alert_emails}
    assert alarms["ModelLatency"]["threshold"] == settings.latency_alarm_ms * 1000  # microseconds
    assert alarms["Invocation5XXErrors"]["dimensions"] == {
        "EndpointName": names.endpoint_name(PREFIX, name),
        "VariantName": "AllTraffic",
    }
    body = document(run.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    assert len(body["widgets"]) == 4
    budget = run.one("aws:budgets/budget:Budget").inputs
    assert float(budget["limitAmount"]) == settings.budget_monthly_usd
    assert {n["notificationType"] for n in budget["notifications"]} == {"ACTUAL", "FORECASTED"}
    assert all(n["subscriberEmailAddresses"] == [settings.budget_alert_email] for n in budget["notifications"])
    assert all(n["subscriberSnsTopicArns"] == [topic.inputs["arn"]] for n in budget["notifications"])


@pytest.mark.parametrize("name", STACKS)
def test_the_provider_refuses_other_accounts(name: str) -> None:
    provider = stack(name, None).one("pulumi:providers:aws")
    # Provider inputs reach the engine JSON-encoded.
    assert json.loads(provider.inputs["allowedAccountIds"]) == [PROJECT.account(name)]
    assert json.loads(provider.inputs["defaultTags"])["tags"]["environment"] == name


KEPT = {"aws:s3/bucket:Bucket", "aws:kms/key:Key", "aws:sagemaker/modelPackageGroup:ModelPackageGroup"}


@pytest.mark.parametrize("name", STACKS)
def test_data_models_and_keys_are_protected_and_kept(name: str) -> None:
    run = stack(name, 7)
    for resource in run.resources:
        if resource.type in KEPT and not resource.name.endswith("access-logs"):
            assert (resource.protect, resource.retain_on_delete) == (True, True), resource.name
    # Pulumi keeps the model and the endpoint config it replaces: a rollback may need them again.
    for kind in ("aws:sagemaker/model:Model", ENDPOINT_CONFIG):
        assert run.one(kind).retain_on_delete, kind
    logs = run.one("aws:cloudwatch/logGroup:LogGroup").inputs
    assert (logs["name"], logs["retentionInDays"]) == (
        f"/aws/sagemaker/Endpoints/{names.endpoint_name(PREFIX, name)}",
        run.settings.log_retention_days,
    )


def test_the_bootstrap_state_bucket_is_protected() -> None:
    from infra.mocks import run_bootstrap

    resources, _ = run_bootstrap()
    for resource in resources:
        if resource.type in {
            "aws:s3/bucket:Bucket",
            "aws:kms/key:Key",
            "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
        }:
            assert resource.protect and resource.retain_on_delete, resource.name


MLFLOW_APP = "aws:sagemaker/mlflowApp:MlflowApp"


def test_the_training_stack_logs_runs_to_a_serverless_mlflow_app_with_a_role_of_its_own() -> None:
    for name in ("staging", "prod"):
        assert not stack(name, 7).of_type(MLFLOW_APP) and "mlflow_app_arn" not in stack(name, 7).outputs
    run = stack("dev", 7)
    app = run.one(MLFLOW_APP)
    bucket, key = run.outputs["artifacts_bucket"], run.outputs["kms_key_arn"]
    assert app.inputs["artifactStoreUri"] == f"s3://{bucket}/mlflow"
    assert app.inputs["modelRegistrationMode"] == "AutoModelRegistrationDisabled"  # the package group is the registry
    role = run.one("aws:iam/role:Role", "dev-mlflow")
    assert app.inputs["roleArn"] == f"arn:aws:iam::{ACCOUNT}:role/{names.mlflow_role_name(PREFIX, 'dev')}"
    trust = document(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    granted = {
        s["Sid"]: s for s in document(run.one(policies.ROLE_POLICY, "dev-mlflow-policy").inputs["policy"])["Statement"]
    }
    assert granted["ArtifactObjects"]["Resource"] == f"arn:aws:s3:::{bucket}/mlflow/*"
    assert granted["UseEnvironmentKey"]["Resource"] == key
    # The deploy role (the pipeline in CI) calls the app's API, and only this app's.
    deploy = {
        s["Sid"]: s
        for s in document(run.one(policies.ROLE_POLICY, "dev-github-deploy-policy").inputs["policy"])["Statement"]
    }
    assert deploy["LogRunsToMlflow"] == {"Sid": "LogRunsToMlflow", "Effect": "Allow",
                                         "Action": "sagemaker:CallMlflowAppApi", "Resource": run.outputs["mlflow_app_arn"]}  # fmt: skip
    assert "LogRunsToMlflow" not in {s["Sid"] for s in document(
        stack("staging", 7).one(policies.ROLE_POLICY, "staging-github-deploy-policy").inputs["policy"])["Statement"]}  # fmt: skip


def test_the_mlflow_app_is_a_request_createmlflowapp_accepts() -> None:
    """Its inputs as CreateMlflowApp's parameters, against botocore's model: required members, lengths,
    patterns and enums (botocore's own validator checks the first two, the model carries the rest)."""
    import botocore.session
    from botocore.validate import ParamValidator

    run = stack("dev", 7)
    app = run.one(MLFLOW_APP)
    request = {"Name": app.inputs["name"], "ArtifactStoreUri": app.inputs["artifactStoreUri"],
               "RoleArn": app.inputs["roleArn"], "ModelRegistrationMode": app.inputs["modelRegistrationMode"]}  # fmt: skip
    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateMlflowApp").input_shape
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()
    for member, value in request.items():
        rules = shape.members[member]
        if "pattern" in rules.metadata:
            assert re.fullmatch(rules.metadata["pattern"], value), (member, value, rules.metadata["pattern"])
        if rules.enum:
            assert value in rules.enum, (member, value, rules.enum)
