"""IAM: the SageMaker execution role and the GitHub Actions deploy role of one environment.

Least privilege throughout: no "*" actions, and every data action (S3 objects, KMS
crypto, endpoint invocation) is scoped to this environment's resources. The few actions
AWS only authorises on "*" (ecr:GetAuthorizationToken, kms:CreateKey, the read-only
Describe/List calls of Application Auto Scaling) carry no data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from ml import names

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
Statement = dict[str, Any]


def policy(statements: list[Statement]) -> pulumi.Output[str]:
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": statements})


def github_oidc_provider_arn(account_id: str) -> str:
    # One provider per account, created by infra/bootstrap; its ARN is fixed by AWS.
    return f"arn:aws:iam::{account_id}:oidc-provider/{GITHUB_OIDC_HOST}"


@dataclass
class RolesArgs:
    prefix: str
    env: str
    account_id: str
    region: str
    github_repository: str
    kms_key_arn: pulumi.Input[str]
    data_bucket_arn: pulumi.Input[str]
    artifacts_bucket_arn: pulumi.Input[str]
    model_package_group: str
    # Where models come from when another stack trains them (staging and prod read dev's).
    registry_artifacts_bucket_arn: pulumi.Input[str] | None = None
    registry_kms_key_arn: pulumi.Input[str] | None = None
    extra_tags: dict[str, str] = field(default_factory=dict)


class Roles(pulumi.ComponentResource):
    execution_role: aws.iam.Role
    deploy_role: aws.iam.Role
    scheduler_role: aws.iam.Role
    events_role: aws.iam.Role

    def __init__(self, name: str, args: RolesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:roles:Roles", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self._args = args
        arn = _Arns(args)

        self.execution_role = aws.iam.Role(
            f"{name}-sagemaker-execution",
            name=names.execution_role_name(args.prefix, args.env),
            description="Assumed by SageMaker training, processing and hosting for this environment",
            assume_role_policy=policy(
                [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "sagemaker.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                        "Condition": {"StringEquals": {"aws:SourceAccount": args.account_id}},
                    }
                ]
            ),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-sagemaker-execution-policy",
            role=self.execution_role.id,
            policy=policy(self._execution_statements(arn)),
            opts=child,
        )

        self.deploy_role = aws.iam.Role(
            f"{name}-github-deploy",
            name=names.deploy_role_name(args.prefix, args.env),
            description=(
                f"Assumed by GitHub Actions in environment {names.github_environment(args.env)} of {args.github_repository}"
            ),
            max_session_duration=3600,
            assume_role_policy=policy(
                [
                    {
                        "Effect": "Allow",
                        "Principal": {"Federated": github_oidc_provider_arn(args.account_id)},
                        "Action": "sts:AssumeRoleWithWebIdentity",
                        "Condition": {
                            "StringEquals": {
                                f"{GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com",
                                f"{GITHUB_OIDC_HOST}:sub": (
                                    f"repo:{args.github_repository}:environment:{names.github_environment(args.env)}"
                                ),
                            }
                        },
                    }
                ]
            ),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-github-deploy-policy",
            role=self.deploy_role.id,
            policy=policy(self._deploy_statements(arn)),
            opts=child,
        )
        # The monitoring schedule's and the retrain dispatch's roles exist from the first `pulumi up`
        # (an administrator's), so a promotion never needs to create a role.
        self.scheduler_role = self._service_role(
            f"{name}-monitor-scheduler", names.scheduler_role_name(args.prefix, args.env), "scheduler.amazonaws.com",
            [
                {
                    "Sid": "StartTheMonitoringPipeline",
                    "Effect": "Allow",
                    "Action": "sagemaker:StartPipelineExecution",
                    "Resource": arn.monitor_pipeline,
                },
                {
                    # Scheduler sends a schedule's dead letters as the schedule's role.
                    "Sid": "SendDeadLetters",
                    "Effect": "Allow",
                    "Action": "sqs:SendMessage",
                    "Resource": arn.dead_letter_queue,
                },
                {
                    "Sid": "UseTheQueueKey",
                    "Effect": "Allow",
                    "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                    "Resource": f"arn:aws:kms:{args.region}:{args.account_id}:key/*",
                    "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": names.alerts_key_alias(args.prefix, args.env)}},
                },
            ],
            child,
        )  # fmt: skip
        self.events_role = self._service_role(
            f"{name}-events-dispatch", names.events_role_name(args.prefix, args.env), "events.amazonaws.com",
            [
                {
                    "Sid": "SendRetrainDispatch",
                    "Effect": "Allow",
                    "Action": "events:InvokeApiDestination",
                    "Resource": arn.retrain_destination,
                }
            ],
            child,
        )  # fmt: skip
        self.register_outputs({"execution_role_arn": self.execution_role.arn, "deploy_role_arn": self.deploy_role.arn})

    def _service_role(
        self, logical: str, role_name: str, service: str, statements: list[Statement], opts: pulumi.ResourceOptions
    ) -> aws.iam.Role:
        role = aws.iam.Role(
            logical,
            name=role_name,
            assume_role_policy=policy(
                [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": service},
                        "Action": "sts:AssumeRole",
                        "Condition": {"StringEquals": {"aws:SourceAccount": self._args.account_id}},
                    }
                ]
            ),
            opts=opts,
        )
        aws.iam.RolePolicy(f"{logical}-policy", role=role.id, policy=policy(statements), opts=opts)
        return role

    def _execution_statements(self, arn: _Arns) -> list[Statement]:
        statements: list[Statement] = [
            {"Sid": "ListOwnBuckets", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": arn.buckets},
            {
                "Sid": "ReadWriteOwnObjects",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                "Resource": arn.objects,
            },
            {
                "Sid": "UseOwnKey",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey", "kms:CreateGrant"],
                "Resource": arn.key,
            },
            {
                "Sid": "ReadModelPackages",
                "Effect": "Allow",
                "Action": ["sagemaker:DescribeModelPackage"],
                "Resource": arn.model_packages,
            },
            {
                "Sid": "WriteOwnLogs",
                "Effect": "Allow",
                "Action": [
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                "Resource": arn.sagemaker_logs,
            },
            {
                "Sid": "PullScikitLearnImage",
                "Effect": "Allow",
                "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                "Resource": f"arn:aws:ecr:{self._args.region}:*:repository/sagemaker-scikit-learn",
            },
            {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {
                # SageMaker's own metrics, and the monitoring job's in the project's namespace.
                "Sid": "PublishMetrics",
                "Effect": "Allow",
                "Action": "cloudwatch:PutMetricData",
                "Resource": "*",
                "Condition": {
                    "StringLike": {
                        "cloudwatch:namespace": ["/aws/sagemaker/*", names.metrics_namespace(self._args.prefix)]
                    }
                },
            },
            {
                # The monitoring pipeline runs as this role and starts its processing job with it.
                "Sid": "RunTheMonitoringPipeline",
                "Effect": "Allow",
                "Action": [
                    "sagemaker:CreateProcessingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob",
                    "sagemaker:AddTags",
                ],
                "Resource": arn.pipeline_jobs,
            },
            {
                "Sid": "PassItselfToTheMonitoringJob",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": arn.execution_role,
                "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            },
            {
                # Blue/green deployments read the rollback alarms' state.
                "Sid": "DescribeRollbackAlarms",
                "Effect": "Allow",
                "Action": "cloudwatch:DescribeAlarms",
                "Resource": arn.alarms,
            },
        ]
        if arn.registry_objects is not None:
            statements += [
                {
                    "Sid": "ReadRegistryModels",
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": arn.registry_objects,
                },
                {
                    "Sid": "DecryptRegistryModels",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:DescribeKey"],
                    "Resource": arn.registry_key,
                },
            ]
        return statements

    def _deploy_statements(self, arn: _Arns) -> list[Statement]:
        args = self._args
        scoped = f"{args.prefix}-{args.env}"
        state_bucket = f"arn:aws:s3:::{names.state_bucket_name(args.prefix, args.account_id)}"
        sagemaker = f"arn:aws:sagemaker:{args.region}:{args.account_id}"
        return [
            {"Sid": "PulumiStateList", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": state_bucket},
            {
                "Sid": "PulumiStateObjects",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": f"{state_bucket}/.pulumi/*",
            },
            {
                "Sid": "PulumiSecretsAndOwnKey",
                "Effect": "Allow",
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                "Resource": f"arn:aws:kms:{args.region}:{args.account_id}:key/*",
                "Condition": {
                    "ForAnyValue:StringEquals": {
                        "kms:ResourceAliases": [
                            names.secrets_key_alias(args.prefix),
                            names.kms_key_alias(args.prefix, args.env),
                        ]
                    }
                },
            },
            {"Sid": "PipelineBuckets", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": arn.buckets},
            {
                "Sid": "PipelineObjects",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                "Resource": arn.objects,
            },
            {"Sid": "PipelineKey", "Effect": "Allow", "Action": ["kms:CreateGrant"], "Resource": arn.key},
            {
                # The monitoring job's code, uploaded by `pulumi up` (content-addressed, tagged by default).
                "Sid": "MonitoringCode",
                "Effect": "Allow",
                "Action": ["s3:DeleteObject", "s3:GetObjectTagging", "s3:PutObjectTagging"],
                "Resource": pulumi.Output.concat(args.artifacts_bucket_arn, "/code/monitoring/*"),
            },
            {
                "Sid": "ManageOwnBuckets",
                "Effect": "Allow",
                "Action": [
                    "s3:CreateBucket",
                    "s3:DeleteBucket",
                    "s3:GetBucket*",
                    "s3:PutBucket*",
                    "s3:DeleteBucketPolicy",
                    "s3:GetEncryptionConfiguration",
                    "s3:PutEncryptionConfiguration",
                    "s3:GetLifecycleConfiguration",
                    "s3:PutLifecycleConfiguration",
                    "s3:GetAccelerateConfiguration",
                    "s3:GetReplicationConfiguration",
                    "s3:GetAnalyticsConfiguration",
                ],
                "Resource": f"arn:aws:s3:::{scoped}-*",
            },
            {
                "Sid": "ManageOwnKey",
                "Effect": "Allow",
                "Action": [
                    "kms:DescribeKey",
                    "kms:GetKeyPolicy",
                    "kms:GetKeyRotationStatus",
                    "kms:EnableKeyRotation",
                    "kms:ListResourceTags",
                    "kms:TagResource",
                ],
                "Resource": arn.key,
            },
            {
                "Sid": "ManageOwnAlias",
                "Effect": "Allow",
                "Action": ["kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"],
                "Resource": [
                    f"arn:aws:kms:{args.region}:{args.account_id}:alias/{scoped}",
                    arn.key,
                ],
            },
            {
                # Only the execution role: the deploy role cannot edit itself, so widening its own
                # permissions takes an administrator's `pulumi up`.
                "Sid": "ManageExecutionRole",
                "Effect": "Allow",
                "Action": [
                    "iam:GetRole",
                    "iam:GetRolePolicy",
                    "iam:ListRolePolicies",
                    "iam:ListAttachedRolePolicies",
                    "iam:PutRolePolicy",
                    "iam:UpdateAssumeRolePolicy",
                    "iam:TagRole",
                ],
                "Resource": arn.execution_role,
            },
            {
                "Sid": "ReadDeployRole",
                "Effect": "Allow",
                "Action": ["iam:GetRole", "iam:GetRolePolicy", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies"],
                "Resource": f"arn:aws:iam::{args.account_id}:role/{names.deploy_role_name(args.prefix, args.env)}",
            },
            {
                "Sid": "PassExecutionRoleToSageMaker",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": arn.execution_role,
                "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            },
            {
                "Sid": "SageMakerResources",
                "Effect": "Allow",
                "Action": [
                    "sagemaker:CreateModel",
                    "sagemaker:DeleteModel",
                    "sagemaker:DescribeModel",
                    "sagemaker:CreateEndpointConfig",
                    "sagemaker:DeleteEndpointConfig",
                    "sagemaker:DescribeEndpointConfig",
                    "sagemaker:CreateEndpoint",
                    "sagemaker:UpdateEndpoint",
                    "sagemaker:DeleteEndpoint",
                    "sagemaker:DescribeEndpoint",
                    "sagemaker:InvokeEndpoint",
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:CreateProcessingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob",
                    "sagemaker:AddTags",
                    "sagemaker:ListTags",
                    "sagemaker:DeleteTags",
                ],
                "Resource": [
                    f"{sagemaker}:model/{scoped}-*",
                    f"{sagemaker}:endpoint-config/{scoped}-*",
                    f"{sagemaker}:endpoint/{scoped}",
                    f"{sagemaker}:training-job/{scoped}-*",
                    f"{sagemaker}:processing-job/{scoped}-*",
                ],
            },
            {
                "Sid": "ModelRegistry",
                "Effect": "Allow",
                "Action": [
                    "sagemaker:CreateModelPackageGroup",
                    "sagemaker:DescribeModelPackageGroup",
                    "sagemaker:DeleteModelPackageGroup",
                    "sagemaker:CreateModelPackage",
                    "sagemaker:DescribeModelPackage",
                    "sagemaker:UpdateModelPackage",
                    "sagemaker:ListModelPackages",
                    "sagemaker:AddTags",
                    "sagemaker:ListTags",
                ],
                "Resource": [arn.model_package_group, arn.model_packages],
            },
            {
                "Sid": "MonitoringPipeline",
                "Effect": "Allow",
                "Action": [
                    "sagemaker:CreatePipeline",
                    "sagemaker:UpdatePipeline",
                    "sagemaker:DeletePipeline",
                    "sagemaker:DescribePipeline",
                    "sagemaker:AddTags",
                    "sagemaker:ListTags",
                    "sagemaker:DeleteTags",
                ],
                "Resource": arn.monitor_pipeline,
            },
            {
                "Sid": "MonitoringSchedule",
                "Effect": "Allow",
                "Action": [
                    "scheduler:CreateSchedule",
                    "scheduler:GetSchedule",
                    "scheduler:UpdateSchedule",
                    "scheduler:DeleteSchedule",
                ],
                "Resource": arn.monitor_schedule,
            },
            {
                "Sid": "PassSchedulerRole",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": arn.scheduler_role,
                "Condition": {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
            },
            {
                "Sid": "AlarmsAndDashboard",
                "Effect": "Allow",
                "Action": [
                    "cloudwatch:PutMetricAlarm",
                    "cloudwatch:DeleteAlarms",
                    "cloudwatch:DescribeAlarms",
                    "cloudwatch:TagResource",
                    "cloudwatch:ListTagsForResource",
                    "cloudwatch:PutDashboard",
                    "cloudwatch:GetDashboard",
                    "cloudwatch:DeleteDashboards",
                ],
                "Resource": [arn.alarms, f"arn:aws:cloudwatch::{args.account_id}:dashboard/{scoped}"],
            },
            {
                "Sid": "EndpointAutoscaling",
                "Effect": "Allow",
                "Action": [
                    "application-autoscaling:RegisterScalableTarget",
                    "application-autoscaling:DeregisterScalableTarget",
                    "application-autoscaling:DescribeScalableTargets",
                    "application-autoscaling:PutScalingPolicy",
                    "application-autoscaling:DeleteScalingPolicy",
                    "application-autoscaling:DescribeScalingPolicies",
                    "application-autoscaling:TagResource",
                    "application-autoscaling:ListTagsForResource",
                ],
                "Resource": "*",
                "Condition": {"StringEquals": {"application-autoscaling:service-namespace": "sagemaker"}},
            },
            {
                "Sid": "Budget",
                "Effect": "Allow",
                "Action": ["budgets:ViewBudget", "budgets:ModifyBudget"],
                "Resource": f"arn:aws:budgets::{args.account_id}:budget/{scoped}",
            },
            {
                "Sid": "ReadJobLogs",
                "Effect": "Allow",
                "Action": ["logs:GetLogEvents", "logs:DescribeLogStreams", "logs:FilterLogEvents"],
                "Resource": arn.sagemaker_logs,
            },
        ]


class _Arns:
    """The ARNs one environment's policies refer to, computed once."""

    def __init__(self, args: RolesArgs) -> None:
        account, region = args.account_id, args.region
        self.buckets = [args.data_bucket_arn, args.artifacts_bucket_arn]
        self.objects = [pulumi.Output.concat(bucket, "/*") for bucket in self.buckets]
        self.key = args.kms_key_arn
        self.model_package_group = (
            f"arn:aws:sagemaker:{region}:{account}:model-package-group/{args.model_package_group}"
        )
        self.model_packages = f"arn:aws:sagemaker:{region}:{account}:model-package/{args.model_package_group}/*"
        self.sagemaker_logs = f"arn:aws:logs:{region}:{account}:log-group:/aws/sagemaker/*"
        self.alarms = f"arn:aws:cloudwatch:{region}:{account}:alarm:{args.prefix}-{args.env}-*"
        self.execution_role = f"arn:aws:iam::{account}:role/{names.execution_role_name(args.prefix, args.env)}"
        scoped = f"{args.prefix}-{args.env}"
        self.monitor_pipeline = f"arn:aws:sagemaker:{region}:{account}:pipeline/{scoped}-monitor"
        # SageMaker Pipelines name the jobs they start "pipelines-<execution>-<step>-<hash>".
        self.pipeline_jobs = f"arn:aws:sagemaker:{region}:{account}:processing-job/pipelines-*"
        self.retrain_destination = f"arn:aws:events:{region}:{account}:api-destination/{scoped}-retrain-dispatch/*"
        self.dead_letter_queue = f"arn:aws:sqs:{region}:{account}:{scoped}-dead-letters"
        self.monitor_schedule = f"arn:aws:scheduler:{region}:{account}:schedule/default/{scoped}-monitor"
        self.scheduler_role = f"arn:aws:iam::{account}:role/{names.scheduler_role_name(args.prefix, args.env)}"
        self.registry_objects = (
            pulumi.Output.concat(args.registry_artifacts_bucket_arn, "/*")
            if args.registry_artifacts_bucket_arn is not None
            else None
        )
        self.registry_key = args.registry_kms_key_arn
