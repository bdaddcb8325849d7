"""Offline policy checks over the resources a stack declares, as the mocks capture them.

Each policy returns the violations it finds; tests/infra/test_policies.py gives each one a
fixture that must fail it. `make preview-offline` runs them all beside the inventory.
Property names are the provider's (camelCase), as the Pulumi engine receives them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from infra.mocks import Captured
from infra.settings import StackSettings
from ml import names
from ml.names import github_environment

BUCKET = "aws:s3/bucket:Bucket"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
PIPELINE = "aws:sagemaker/pipeline:Pipeline"
GITHUB_OIDC = "token.actions.githubusercontent.com"
# Actions that read or write data; never allowed on Resource "*".
DATA_ACTIONS = (
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:ListBucket",
    "s3:*",
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:ReEncrypt",
    "kms:*",
    "sagemaker:InvokeEndpoint",
    "secretsmanager:GetSecretValue",
)

Resources = list[Captured]


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    check: Callable[[Resources, StackSettings], list[str]]


def _of(resources: Resources, type_: str) -> Iterable[Captured]:
    return (r for r in resources if r.type == type_)


def _attached(resources: Resources, type_: str, bucket: Captured) -> list[Captured]:
    return [r for r in _of(resources, type_) if r.inputs.get("bucket") in (bucket.id, bucket.inputs.get("bucket"))]


def _document(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value or {})


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def public_access_blocked(resources: Resources, _: StackSettings) -> list[str]:
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    violations = []
    for bucket in _of(resources, BUCKET):
        blocks = _attached(resources, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", bucket)
        if not any(all(block.inputs.get(flag) is True for flag in flags) for block in blocks):
            violations.append(f"bucket {bucket.name} lacks a public access block with all four flags on")
    return violations


def buckets_encrypted(resources: Resources, _: StackSettings) -> list[str]:
    violations = []
    for bucket in _of(resources, BUCKET):
        configs = _attached(
            resources, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", bucket
        )
        defaults = [
            rule.get("applyServerSideEncryptionByDefault", {}) for c in configs for rule in c.inputs.get("rules", [])
        ]
        kms = any(d.get("sseAlgorithm") == "aws:kms" and d.get("kmsMasterKeyId") for d in defaults)
        # S3 delivers server access logs only to SSE-S3 buckets; that is the one allowed exception.
        access_logs = "access-logs" in str(bucket.inputs.get("bucket")) and any(
            d.get("sseAlgorithm") == "AES256" for d in defaults
        )
        if not (kms or access_logs):
            violations.append(f"bucket {bucket.name} is not encrypted with SSE-KMS")
    return violations


def tls_only(resources: Resources, _: StackSettings) -> list[str]:
    violations = []
    for bucket in _of(resources, BUCKET):
        policies = _attached(resources, "aws:s3/bucketPolicy:BucketPolicy", bucket)
        denies = [
            s
            for p in policies
            for s in _statements(_document(p.inputs.get("policy")))
            if s.get("Effect") == "Deny"
            and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") in ("false", False)
        ]
        if not denies:
            violations.append(f"bucket {bucket.name} has no policy denying requests without TLS")
    return violations


def versioning(resources: Resources, _: StackSettings) -> list[str]:
    return [
        f"bucket {bucket.name} does not have versioning enabled"
        for bucket in _of(resources, BUCKET)
        if not any(
            v.inputs.get("versioningConfiguration", {}).get("status") == "Enabled"
            for v in _attached(resources, "aws:s3/bucketVersioning:BucketVersioning", bucket)
        )
    ]


def kms_rotation(resources: Resources, _: StackSettings) -> list[str]:
    return [
        f"KMS key {key.name} does not rotate"
        for key in _of(resources, "aws:kms/key:Key")
        if key.inputs.get("enableKeyRotation") is not True
    ]


def _real_time(config: Captured) -> bool:
    return not any("serverlessConfig" in variant for variant in config.inputs.get("productionVariants", []))


def endpoint_configs_encrypted(resources: Resources, _: StackSettings) -> list[str]:
    violations = []
    for config in _of(resources, ENDPOINT_CONFIG):
        if _real_time(config) and not config.inputs.get("kmsKeyArn"):
            violations.append(f"endpoint config {config.name} does not encrypt its storage volume with KMS")
        capture = config.inputs.get("dataCaptureConfig")
        if capture and not capture.get("kmsKeyId"):
            violations.append(f"endpoint config {config.name} captures data without a KMS key")
    return violations


def no_wildcard_iam(resources: Resources, _: StackSettings) -> list[str]:
    violations = []
    for item in _of(resources, ROLE_POLICY):
        for statement in _statements(_document(item.inputs.get("policy"))):
            if statement.get("Effect") != "Allow":
                continue
            actions = [str(a) for a in _as_list(statement.get("Action", []))]
            wild = [a for a in actions if a == "*" or a.endswith(":*")]
            if wild:
                violations.append(f"{item.name} grants wildcard action(s) {wild}")
            # A data action, or a wildcard that covers one (s3:Get*, kms:*); s3:ListAllMyBuckets is neither.
            data = [
                a
                for a in actions
                if a in DATA_ACTIONS or (a.endswith("*") and any(d.startswith(a.rstrip("*")) for d in DATA_ACTIONS))
            ]
            if data and "*" in _as_list(statement.get("Resource", [])):
                violations.append(f"{item.name} grants data action(s) {data} on Resource '*'")
    return violations


def _github_trusted(resources: Resources) -> dict[str, str]:
    """Role resource name -> the OIDC subject of every role GitHub may assume."""
    trusted = {}
    for role in _of(resources, ROLE):
        for statement in _statements(_document(role.inputs.get("assumeRolePolicy"))):
            if GITHUB_OIDC in str(statement.get("Principal", {}).get("Federated", "")):
                trusted[role.name] = str(
                    statement.get("Condition", {}).get("StringEquals", {}).get(f"{GITHUB_OIDC}:sub")
                )
    return trusted


def oidc_trust_pinned(resources: Resources, settings: StackSettings) -> list[str]:
    """GitHub may assume the deploy role from the stack's environment, the preview role from its
    preview environment, and nothing else."""
    repository, env = settings.project.github_repository, settings.stack
    expected = {
        names.deploy_role_name(settings.prefix, env): github_environment(env),
        names.preview_role_name(settings.prefix, env): names.preview_environment(env),
    }
    violations = []
    for role in _of(resources, ROLE):
        for statement in _statements(_document(role.inputs.get("assumeRolePolicy"))):
            federated = str(statement.get("Principal", {}).get("Federated", ""))
            if GITHUB_OIDC not in federated:
                continue
            condition = statement.get("Condition", {})
            equals = condition.get("StringEquals", {})
            if set(condition) != {"StringEquals"}:
                violations.append(f"role {role.name} trusts GitHub with conditions other than StringEquals")
            if equals.get(f"{GITHUB_OIDC}:aud") != "sts.amazonaws.com":
                violations.append(f"role {role.name} does not pin the token audience to sts.amazonaws.com")
            environment = expected.get(str(role.inputs.get("name")))
            if environment is None:
                violations.append(f"role {role.name} trusts GitHub but is neither the deploy nor the preview role")
                continue
            expected_sub = f"repo:{repository}:environment:{environment}"
            if equals.get(f"{GITHUB_OIDC}:sub") != expected_sub:
                violations.append(f"role {role.name} does not pin the subject to {expected_sub}")
    return violations


# What a role GitHub can assume may do to IAM: pass the two roles CI hands to services, nothing more.
GITHUB_IAM_ACTIONS = {"iam:PassRole"}


def github_roles_change_no_iam(resources: Resources, _: StackSettings) -> list[str]:
    trusted = {r.id for r in _of(resources, ROLE) if r.name in _github_trusted(resources)}
    trusted |= {str(r.inputs.get("name")) for r in _of(resources, ROLE) if r.name in _github_trusted(resources)}
    violations = []
    for item in _of(resources, ROLE_POLICY):
        if str(item.inputs.get("role")) not in trusted:
            continue
        for statement in _statements(_document(item.inputs.get("policy"))):
            actions = [str(a) for a in _as_list(statement.get("Action", []))]
            writes = [a for a in actions if a.lower().startswith(("iam:", "sts:")) and a not in GITHUB_IAM_ACTIONS]
            if statement.get("Effect") == "Allow" and writes:
                violations.append(
                    f"{item.name} lets a role GitHub assumes call {writes}: IAM belongs to the administrator"
                )
    return violations


def rollback_alarms_wired(resources: Resources, _: StackSettings) -> list[str]:
    configs = {c.inputs.get("name"): c for c in _of(resources, ENDPOINT_CONFIG)}
    alarms = {a.inputs.get("name") for a in _of(resources, ALARM)}
    violations = []
    for endpoint in _of(resources, ENDPOINT):
        config = configs.get(endpoint.inputs.get("endpointConfigName"))
        if config is None or not _real_time(config):
            continue
        deployment = endpoint.inputs.get("deploymentConfig") or {}
        wired = [a.get("alarmName") for a in deployment.get("autoRollbackConfiguration", {}).get("alarms", [])]
        if not wired:
            violations.append(f"real-time endpoint {endpoint.name} has no auto-rollback alarms")
        missing = [name for name in wired if name not in alarms]
        if missing:
            violations.append(f"endpoint {endpoint.name} rolls back on alarms that do not exist: {missing}")
        if "blueGreenUpdatePolicy" not in deployment:
            violations.append(f"real-time endpoint {endpoint.name} does not deploy blue/green")
    return violations


def prod_capacity(resources: Resources, settings: StackSettings) -> list[str]:
    if settings.stack != "prod":
        return []
    return [
        f"prod endpoint config {config.name} runs {variant.get('initialInstanceCount')} instance(s); needs at least 2"
        for config in _of(resources, ENDPOINT_CONFIG)
        if _real_time(config)
        for variant in config.inputs.get("productionVariants", [])
        if int(variant.get("initialInstanceCount") or 0) < 2
    ]


def monitoring_encrypted(resources: Resources, _: StackSettings) -> list[str]:
    violations = []
    for pipeline in _of(resources, PIPELINE):
        for step in _document(pipeline.inputs.get("pipelineDefinition"))["Steps"]:
            arguments = step.get("Arguments", {})
            if step.get("Type") != "Processing":
                continue
            if not arguments.get("ProcessingResources", {}).get("ClusterConfig", {}).get("VolumeKmsKeyId"):
                violations.append(f"pipeline {pipeline.name} step {step['Name']} does not encrypt its volume with KMS")
            if not arguments.get("ProcessingOutputConfig", {}).get("KmsKeyId"):
                violations.append(f"pipeline {pipeline.name} step {step['Name']} writes its report without a KMS key")
    for kind, type_ in (("topic", "aws:sns/topic:Topic"), ("queue", "aws:sqs/queue:Queue")):
        violations += [f"{kind} {r.name} is not encrypted with a KMS key" for r in _of(resources, type_)
                       if not r.inputs.get("kmsMasterKeyId")]  # fmt: skip
    for code in _of(resources, "aws:s3/bucketObjectv2:BucketObjectv2"):
        if code.inputs.get("serverSideEncryption") != "aws:kms" or not code.inputs.get("kmsKeyId"):
            violations.append(f"object {code.name} is not uploaded with SSE-KMS")
    return violations


# SageMaker Model Monitor closed to new customers on 2026-07-30: a new project must not depend on it.
MODEL_MONITOR = tuple(
    f"aws:sagemaker/{kind[0].lower()}{kind[1:]}:{kind}"
    for kind in (
        "DataQualityJobDefinition",
        "ModelQualityJobDefinition",
        "ModelBiasJobDefinition",
        "ModelExplainabilityJobDefinition",
        "MonitoringSchedule",
    )
)


def no_model_monitor(resources: Resources, _: StackSettings) -> list[str]:
    return [f"{r.name} is a SageMaker Model Monitor resource (closed to new customers)" for r in resources
            if r.type in MODEL_MONITOR]  # fmt: skip


def alarms_notify(resources: Resources, _: StackSettings) -> list[str]:
    """An alarm nobody hears is no alarm: every one notifies the environment's alert topic."""
    topics = {r.inputs.get("arn") for r in _of(resources, "aws:sns/topic:Topic")} - {None}
    return [
        f"alarm {alarm.inputs.get('name', alarm.name)} notifies no alert topic"
        for alarm in _of(resources, ALARM)
        if not topics & set(_as_list(alarm.inputs.get("alarmActions")))
    ]


def no_access_keys(resources: Resources, _: StackSettings) -> list[str]:
    static = {"aws:iam/accessKey:AccessKey": "an IAM access key", "aws:iam/user:User": "an IAM user"}
    return [f"{r.name} is {static[r.type]}: use roles and OIDC instead" for r in resources if r.type in static]


POLICIES = [
    Policy("public-access-blocked", "every bucket blocks public access (all four flags)", public_access_blocked),
    Policy("buckets-encrypted", "every bucket uses SSE-KMS (access-log buckets: SSE-S3)", buckets_encrypted),
    Policy("tls-only", "every bucket policy denies requests without TLS", tls_only),
    Policy("versioning", "every bucket keeps versions", versioning),
    Policy("kms-rotation", "every KMS key rotates", kms_rotation),
    Policy(
        "endpoint-configs-encrypted", "real-time endpoint configs and data capture use KMS", endpoint_configs_encrypted
    ),
    Policy("no-wildcard-iam", "no '*' actions, and no data action on Resource '*'", no_wildcard_iam),
    Policy("oidc-trust-pinned", "GitHub OIDC trust pinned to repo, environment and audience", oidc_trust_pinned),
    Policy(
        "rollback-alarms-wired", "real-time endpoints deploy blue/green and roll back on alarms", rollback_alarms_wired
    ),
    Policy("prod-capacity", "real-time prod endpoints run at least 2 instances", prod_capacity),
    Policy(
        "monitoring-encrypted",
        "the monitoring job's volume, report, code, alert topic and dead-letter queue use KMS",
        monitoring_encrypted,
    ),
    Policy("no-model-monitor", "no SageMaker Model Monitor resource (closed to new customers)", no_model_monitor),
    Policy("alarms-notify", "every alarm notifies the alert topic", alarms_notify),
    Policy("no-access-keys", "no IAM users or access keys", no_access_keys),
    Policy(
        "github-roles-change-no-iam",
        "roles GitHub can assume hold no IAM or STS action but iam:PassRole",
        github_roles_change_no_iam,
    ),
]


def evaluate(resources: Resources, settings: StackSettings) -> dict[str, list[str]]:
    """Every policy's violations, by policy name; empty lists mean compliant."""
    return {policy.name: policy.check(resources, settings) for policy in POLICIES}
