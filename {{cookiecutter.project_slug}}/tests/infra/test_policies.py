"""Every policy fails on a fixture built to break it, and passes on the committed stacks."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from infra import policies
from infra.mocks import Captured, StackRun, run_stack
from ml import names
from ml.config import load_config

PROJECT = load_config().project

Mutation = Callable[[list[Captured]], list[Captured]]
MONITORED = {
    "data_capture_percent": 20,
    "monitoring_baseline_statistics": "s3://tc-dev-artifacts/sha256/1/statistics.json",
    "monitoring_baseline_constraints": "s3://tc-dev-artifacts/sha256/2/constraints.json",
    "monitoring_evaluation": "s3://tc-dev-artifacts/sha256/3/evaluation.json",
    "monitoring_model_created_at": "2026-11-30T12:00:00+00:00",
    "github_dispatch_token": "test-token",
}


@pytest.fixture(scope="module")
def compliant() -> StackRun:
    # prod with a promoted model declares every kind of resource the policies inspect.
    run = run_stack("prod", {"model_version": 3, "endpoint_type": "real-time", "instance_count": 2, **MONITORED})
    assert not any(policies.evaluate(run.resources, run.settings).values())
    return run


def change(type_: str, edit: Callable[[dict[str, Any]], None], name: str | None = None) -> Mutation:
    def mutate(resources: list[Captured]) -> list[Captured]:
        changed, out = False, []
        for resource in resources:
            if resource.type == type_ and (name is None or resource.name == name) and not changed:
                inputs = copy.deepcopy(resource.inputs)
                edit(inputs)
                resource, changed = replace(resource, inputs=inputs), True
            out.append(resource)
        assert changed, f"fixture found no {type_} {name or ''}"
        return out

    return mutate


def drop(type_: str) -> Mutation:
    return lambda resources: [r for r in resources if r.type != type_]


def add(resource: Captured) -> Mutation:
    return lambda resources: [*resources, resource]


def edit_policy(edit: Callable[[dict[str, Any]], None], key: str = "policy") -> Callable[[dict[str, Any]], None]:
    def apply(inputs: dict[str, Any]) -> None:
        document = json.loads(inputs[key])
        edit(document)
        inputs[key] = json.dumps(document)

    return apply


def set_key(path: list[str], value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(inputs: dict[str, Any]) -> None:
        target = inputs
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return apply


def _first_statement(edit: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    return lambda document: edit(document["Statement"][0])


BAD_FIXTURES = {
    "public-access-blocked": change(
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", set_key(["restrictPublicBuckets"], False)
    ),
    "buckets-encrypted": change(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        set_key(["rules"], [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]),
        name="prod-data-encryption",
    ),
    "tls-only": change(
        "aws:s3/bucketPolicy:BucketPolicy", edit_policy(_first_statement(lambda s: s.update(Effect="Allow")))
    ),
    "versioning": change("aws:s3/bucketVersioning:BucketVersioning", set_key(["versioningConfiguration"], {})),
    "kms-rotation": change("aws:kms/key:Key", set_key(["enableKeyRotation"], False)),
    "endpoint-configs-encrypted": change(policies.ENDPOINT_CONFIG, lambda inputs: inputs.pop("kmsKeyArn")),
    "no-wildcard-iam": change(
        policies.ROLE_POLICY,
        edit_policy(lambda d: d["Statement"].append({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})),
    ),
    "oidc-trust-pinned": change(
        policies.ROLE,
        edit_policy(
            _first_statement(
                lambda s: s.update(
                    Condition={"StringLike": {"token.actions.githubusercontent.com:sub": "repo:someone/*"}}
                )
            ),
            key="assumeRolePolicy",
        ),
        name="prod-github-deploy",
    ),
    # Today's path to administrator: the deploy role edits the execution role's policy, then passes it to a job.
    "github-roles-change-no-iam": change(
        policies.ROLE_POLICY,
        edit_policy(
            lambda d: d["Statement"].append(
                {
                    "Effect": "Allow",
                    "Action": ["iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy"],
                    "Resource": f"arn:aws:iam::{PROJECT.aws_account_id}:role/{names.execution_role_name(PROJECT.resource_prefix, 'prod')}",
                }
            )
        ),
        name="prod-github-deploy-policy",
    ),
    "rollback-alarms-wired": change(
        policies.ENDPOINT, set_key(["deploymentConfig", "autoRollbackConfiguration", "alarms"], [])
    ),
    "prod-capacity": change(
        policies.ENDPOINT_CONFIG, lambda inputs: inputs["productionVariants"][0].update(initialInstanceCount=1)
    ),
    "monitoring-encrypted": change(
        policies.PIPELINE,
        edit_policy(
            lambda d: d["Steps"][0]["Arguments"]["ProcessingResources"]["ClusterConfig"].pop("VolumeKmsKeyId"),
            key="pipelineDefinition",
        ),
    ),
    "no-model-monitor": add(
        Captured("aws:sagemaker/monitoringSchedule:MonitoringSchedule", "prod-drift", "prod-drift", {}, "urn", True)
    ),
    "alarms-notify": change(policies.ALARM, lambda inputs: inputs.pop("alarmActions")),
    "no-access-keys": add(Captured("aws:iam/accessKey:AccessKey", "ci-key", "ci-key", {"user": "ci"}, "urn", True)),
}

EXTRA_BAD_FIXTURES = {
    "public-access-blocked (block missing)": (
        "public-access-blocked",
        drop("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"),
    ),
    "no-wildcard-iam (star action)": (
        "no-wildcard-iam",
        change(
            policies.ROLE_POLICY,
            edit_policy(lambda d: d["Statement"].append({"Effect": "Allow", "Action": "sagemaker:*", "Resource": "x"})),
        ),
    ),
    "endpoint-configs-encrypted (capture without key)": (
        "endpoint-configs-encrypted",
        change(policies.ENDPOINT_CONFIG, lambda inputs: inputs["dataCaptureConfig"].pop("kmsKeyId")),
    ),
    "monitoring-encrypted (report without a key)": (
        "monitoring-encrypted",
        change(
            policies.PIPELINE,
            edit_policy(
                lambda d: d["Steps"][0]["Arguments"]["ProcessingOutputConfig"].pop("KmsKeyId"), key="pipelineDefinition"
            ),
        ),
    ),
    "monitoring-encrypted (plain alert topic)": (
        "monitoring-encrypted",
        change("aws:sns/topic:Topic", lambda inputs: inputs.pop("kmsMasterKeyId")),
    ),
    "monitoring-encrypted (plain dead-letter queue)": (
        "monitoring-encrypted",
        change("aws:sqs/queue:Queue", lambda inputs: inputs.pop("kmsMasterKeyId")),
    ),
    "monitoring-encrypted (code uploaded without SSE-KMS)": (
        "monitoring-encrypted",
        change("aws:s3/bucketObjectv2:BucketObjectv2", lambda inputs: inputs.pop("serverSideEncryption")),
    ),
    "alarms-notify (an action elsewhere)": (
        "alarms-notify",
        change(policies.ALARM, lambda inputs: inputs.update(alarmActions=["arn:aws:sns:eu-west-1:1:other"])),
    ),
    "rollback-alarms-wired (dangling alarm)": ("rollback-alarms-wired", drop("aws:cloudwatch/metricAlarm:MetricAlarm")),
    "oidc-trust-pinned (preview role trusts the deploy environment)": (
        "oidc-trust-pinned",
        change(
            policies.ROLE,
            edit_policy(
                _first_statement(
                    lambda s: s["Condition"]["StringEquals"].update(
                        {
                            "token.actions.githubusercontent.com:sub": f"repo:{PROJECT.github_repository}:environment:production"
                        }
                    )
                ),
                key="assumeRolePolicy",
            ),
            name="prod-github-preview",
        ),
    ),
    "github-roles-change-no-iam (preview role assumes another)": (
        "github-roles-change-no-iam",
        change(
            policies.ROLE_POLICY,
            edit_policy(
                lambda d: d["Statement"].append({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "x"})
            ),
            name="prod-github-preview-policy",
        ),
    ),
    "oidc-trust-pinned (any audience)": (
        "oidc-trust-pinned",
        change(
            policies.ROLE,
            edit_policy(
                _first_statement(
                    lambda s: s["Condition"]["StringEquals"].pop("token.actions.githubusercontent.com:aud")
                ),
                key="assumeRolePolicy",
            ),
            name="prod-github-deploy",
        ),
    ),
}


def test_every_policy_has_a_failing_fixture() -> None:
    assert set(BAD_FIXTURES) == {policy.name for policy in policies.POLICIES}


@pytest.mark.parametrize("name", sorted(BAD_FIXTURES))
def test_policy_fails_on_its_bad_fixture(compliant: StackRun, name: str) -> None:
    results = policies.evaluate(BAD_FIXTURES[name](compliant.resources), compliant.settings)
    assert results[name], f"{name} passed a fixture built to fail it"
    # The fixture breaks exactly the rule it is for.
    assert [policy for policy, found in results.items() if found] == [name]


@pytest.mark.parametrize("case", sorted(EXTRA_BAD_FIXTURES))
def test_policy_catches_other_ways_to_break_it(compliant: StackRun, case: str) -> None:
    name, mutate = EXTRA_BAD_FIXTURES[case]
    assert policies.evaluate(mutate(compliant.resources), compliant.settings)[name]
