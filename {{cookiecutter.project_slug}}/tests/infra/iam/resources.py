"""Each resource type a promotion applies, mapped to what AWS says applying it takes.

One table: a Pulumi type -> its CloudFormation type (whose handlers list the IAM actions), how its
own ARN is named, where the ARNs of the other resources an action touches come from (the role a
model passes, the key a config names), and the handler actions this project's use never calls,
each with the reason. A type a promotion changes and this table lacks fails the tests, as does an
action with no rule for its resource.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from infra.mocks import Captured, StackRun

Inputs = dict[str, Any]
# An account-made id, for resources whose ARN carries one (scalable targets).
MADE_BY_AWS = "0123456789abcdef0123456789abcdef"


@dataclass(frozen=True)
class Related:
    """The ARNs an action applies to that belong to another resource, and the request's context."""

    arns: Callable[[Inputs, StackRun], list[str]]
    context: dict[str, Any] = field(default_factory=dict)


def _no_context(inputs: Inputs) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Spec:
    cfn: str | None
    own: tuple[str, str]  # (IAM service prefix, resource type) of the resource itself
    identity: Callable[[Inputs], dict[str, str]]
    related: dict[str, Related] = field(default_factory=dict)
    not_needed: dict[str, str] = field(default_factory=dict)
    # Actions AWS documents elsewhere than in the CloudFormation handler, by operation.
    extra: dict[str, list[str]] = field(default_factory=dict)
    # For types with no CloudFormation schema: the actions per operation, with where they come from.
    actions: dict[str, list[str]] = field(default_factory=dict)
    # The condition keys AWS puts in the request context of actions on the resource itself.
    own_context: Callable[[Inputs], dict[str, Any]] = _no_context


def key_of(field_name: str) -> Related:
    """The KMS key an input names (its aliases become the request context: kms:ResourceAliases)."""

    def arns(inputs: Inputs, run: StackRun) -> list[str]:
        value = inputs.get(field_name)
        return [value] if value else []

    return Related(arns)


def role_in(field_path: str, service: str) -> Related:
    def arns(inputs: Inputs, _: StackRun) -> list[str]:
        value: Any = inputs
        for part in field_path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return [value] if value else []

    return Related(arns, {"iam:PassedToService": service})


def _where(run: StackRun) -> tuple[str, str]:
    return run.settings.project.aws_region, run.settings.project.account(run.settings.stack)


def endpoint_of(inputs: Inputs, run: StackRun) -> list[str]:
    resource_id = inputs.get("resourceId", "")  # endpoint/<name>/variant/<variant>
    name = resource_id.split("/")[1] if resource_id.startswith("endpoint/") else ""
    region, account = _where(run)
    return [f"arn:aws:sagemaker:{region}:{account}:endpoint/{name}"] if name else []


def config_key(inputs: Inputs, run: StackRun) -> list[str]:
    """The KMS key of the endpoint config an endpoint runs: SageMaker takes grants on it as the caller."""
    configs = [c for c in run.of_type("aws:sagemaker/endpointConfiguration:EndpointConfiguration")
               if c.inputs.get("name") == inputs.get("endpointConfigName")]  # fmt: skip
    return [str(c.inputs["kmsKeyArn"]) for c in configs if c.inputs.get("kmsKeyArn")]


def scaling_context(inputs: Inputs) -> dict[str, Any]:
    return {
        "application-autoscaling:service-namespace": inputs.get("serviceNamespace", "sagemaker"),
        "application-autoscaling:scalable-dimension": inputs.get("scalableDimension", ""),
    }


def scaling_alarms(inputs: Inputs, run: StackRun) -> list[str]:
    """Target tracking's own alarms, named by Application Auto Scaling after the resource id."""
    region, account = _where(run)
    return [
        f"arn:aws:cloudwatch:{region}:{account}:alarm:TargetTracking-{inputs['resourceId']}-AlarmHigh-{MADE_BY_AWS}"
    ]


def named(key: str, variable: str) -> Callable[[Inputs], dict[str, str]]:
    return lambda inputs: {variable: str(inputs[key])}


ONLY_LAMBDA = "provisioned concurrency of Lambda functions only; this target is a SageMaker variant"
SERVICE_LINKED_ROLE = "the service-linked role is created once by infra/bootstrap, not by the deploy role"
NO_KMS_ON_LOGS = "the log group is encrypted by CloudWatch's own key; no KMS key is associated"
NO_DATA_PROTECTION = "no data protection, index, resource policy or log delivery is set on the log group"

SPECS: dict[str, Spec] = {
    "aws:sagemaker/model:Model": Spec(
        "AWS::SageMaker::Model",
        ("sagemaker", "model"),
        named("name", "ModelName"),
        related={"iam:PassRole": role_in("executionRoleArn", "sagemaker.amazonaws.com")},
    ),
    "aws:sagemaker/endpointConfiguration:EndpointConfiguration": Spec(
        "AWS::SageMaker::EndpointConfig",
        ("sagemaker", "endpoint-config"),
        named("name", "EndpointConfigName"),
        related={"kms:DescribeKey": key_of("kmsKeyArn")},
        not_needed={
            "iam:PassRole": "only async inference, shadow variants and explainers pass a role; ours passes none"
        },
    ),
    "aws:sagemaker/endpoint:Endpoint": Spec(
        "AWS::SageMaker::Endpoint",
        ("sagemaker", "endpoint"),
        named("name", "EndpointName"),
        # An endpoint whose config names a KMS key: SageMaker creates grants on it with the caller's
        # permissions (SageMaker API Reference, CreateEndpoint: "kms:CreateGrant").
        related={"kms:CreateGrant": Related(config_key)},
        extra={"create": ["kms:CreateGrant"], "update": ["kms:CreateGrant"]},
    ),
    "aws:appautoscaling/target:Target": Spec(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        ("application-autoscaling", "ScalableTarget"),
        lambda inputs: {"ResourceId": MADE_BY_AWS},
        own_context=scaling_context,
        related={
            "cloudwatch:PutMetricAlarm": Related(scaling_alarms),
            "cloudwatch:DeleteAlarms": Related(scaling_alarms),
            "cloudwatch:DescribeAlarms": Related(scaling_alarms),
            # Application Auto Scaling checks that the caller may scale the variant it registers
            # (Application Auto Scaling User Guide, "Identity-based policy examples", SageMaker).
            "sagemaker:DescribeEndpoint": Related(endpoint_of),
            "sagemaker:UpdateEndpointWeightsAndCapacities": Related(endpoint_of),
        },
        not_needed={
            "application-autoscaling:PutScheduledAction": "the target has no scheduled actions",
            "application-autoscaling:DeleteScheduledAction": "the target has no scheduled actions",
            "iam:PassRole": "a SageMaker variant's target uses the service-linked role; no RoleARN is passed",
            "iam:CreateServiceLinkedRole": SERVICE_LINKED_ROLE,
            "lambda:GetProvisionedConcurrencyConfig": ONLY_LAMBDA,
            "lambda:PutProvisionedConcurrencyConfig": ONLY_LAMBDA,
            "lambda:DeleteProvisionedConcurrencyConfig": ONLY_LAMBDA,
        },
        extra={
            "create": ["sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpointWeightsAndCapacities"],
            "update": ["sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpointWeightsAndCapacities"],
        },
    ),
    "aws:appautoscaling/policy:Policy": Spec(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        ("application-autoscaling", "ScalableTarget"),
        lambda inputs: {"ResourceId": MADE_BY_AWS},
        own_context=scaling_context,
        related={
            "cloudwatch:PutMetricAlarm": Related(scaling_alarms),
            "cloudwatch:DeleteAlarms": Related(scaling_alarms),
            "cloudwatch:DescribeAlarms": Related(scaling_alarms),
        },
        not_needed={"cloudwatch:GetMetricData": "only predictive scaling reads metric data; this is target tracking"},
        # Target tracking creates and deletes its alarms with the caller's permissions
        # (Application Auto Scaling User Guide, "Target tracking scaling policies", permissions).
        extra={
            "create": ["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms"],
            "update": ["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"],
            "delete": ["cloudwatch:DeleteAlarms"],
        },
    ),
    "aws:cloudwatch/logGroup:LogGroup": Spec(
        "AWS::Logs::LogGroup",
        ("logs", "log-group"),
        named("name", "LogGroupName"),
        not_needed={
            "logs:GetDataProtectionPolicy": NO_DATA_PROTECTION,
            "logs:PutDataProtectionPolicy": NO_DATA_PROTECTION,
            "logs:DeleteDataProtectionPolicy": NO_DATA_PROTECTION,
            "logs:CreateLogDelivery": NO_DATA_PROTECTION,
            "s3:REST.PUT.OBJECT": "log delivery to S3 only (and not an IAM action)",
            "firehose:TagDeliveryStream": "log delivery to Firehose only",
            "logs:PutResourcePolicy": NO_DATA_PROTECTION,
            "logs:DescribeResourcePolicies": NO_DATA_PROTECTION,
            "logs:DeleteResourcePolicy": NO_DATA_PROTECTION,
            "logs:PutIndexPolicy": NO_DATA_PROTECTION,
            "logs:DescribeIndexPolicies": NO_DATA_PROTECTION,
            "logs:DeleteIndexPolicy": NO_DATA_PROTECTION,
            "logs:PutBearerTokenAuthentication": NO_DATA_PROTECTION,
            "logs:PutLogGroupDeletionProtection": "deletion protection is not set on the log group",
            "logs:AssociateKmsKey": NO_KMS_ON_LOGS,
            "logs:DisassociateKmsKey": NO_KMS_ON_LOGS,
        },
    ),
    "aws:cloudwatch/metricAlarm:MetricAlarm": Spec(
        "AWS::CloudWatch::Alarm", ("cloudwatch", "alarm"), named("name", "AlarmName")
    ),
    "aws:cloudwatch/dashboard:Dashboard": Spec(
        "AWS::CloudWatch::Dashboard", ("cloudwatch", "dashboard"), named("dashboardName", "DashboardName")
    ),
    "aws:sagemaker/pipeline:Pipeline": Spec(
        "AWS::SageMaker::Pipeline",
        ("sagemaker", "pipeline"),
        named("pipelineName", "PipelineName"),
        related={"iam:PassRole": role_in("roleArn", "sagemaker.amazonaws.com")},
        not_needed={"s3:GetObject": "only a definition stored in S3 is read; this one is inline"},
    ),
    "aws:scheduler/schedule:Schedule": Spec(
        "AWS::Scheduler::Schedule",
        ("scheduler", "schedule"),
        lambda inputs: {"GroupName": str(inputs.get("groupName") or "default"), "ScheduleName": str(inputs["name"])},
        related={"iam:PassRole": role_in("target.roleArn", "scheduler.amazonaws.com")},
    ),
    # CloudFormation has no S3 object resource. What the provider calls for aws_s3_object
    # (terraform-provider-aws, internal/service/s3/object.go): PutObject with the tags in the
    # request, HeadObject (authorised as s3:GetObject), GetObjectTagging, DeleteObject, and KMS for
    # an SSE-KMS upload.
    "aws:s3/bucketObjectv2:BucketObjectv2": Spec(
        None,
        ("s3", "object"),
        lambda inputs: {"BucketName": str(inputs["bucket"]), "ObjectName": str(inputs["key"])},
        related={"kms:GenerateDataKey": key_of("kmsKeyId")},
        actions={
            "create": [
                "s3:PutObject",
                "s3:PutObjectTagging",
                "s3:GetObject",
                "s3:GetObjectTagging",
                "kms:GenerateDataKey",
            ],
            "read": ["s3:GetObject", "s3:GetObjectTagging"],
            "update": [
                "s3:PutObject",
                "s3:PutObjectTagging",
                "s3:GetObject",
                "s3:GetObjectTagging",
                "kms:GenerateDataKey",
            ],
            "delete": ["s3:DeleteObject"],
        },
    ),
}


def spec_of(resource: Captured) -> Spec:
    spec = SPECS.get(resource.type)
    if spec is None:
        raise LookupError(
            f"{resource.type} ({resource.name}) has no entry in tests/infra/iam/resources.py: map it to its "
            "CloudFormation type, so the tests know what applying it takes"
        )
    return spec


def key_context(run: StackRun, key_arn: str) -> dict[str, Any]:
    """The aliases of a key the stack declares (what AWS evaluates kms:ResourceAliases against)."""
    key_ids = {k.inputs["key_id"]: k.inputs["arn"] for k in run.of_type("aws:kms/key:Key")}
    aliases = [
        a.inputs["name"]
        for a in run.of_type("aws:kms/alias:Alias")
        if key_ids.get(a.inputs.get("targetKeyId")) == key_arn
    ]
    return {"kms:ResourceAliases": aliases} if aliases else {}
