"""IAM of one environment: the SageMaker execution role, GitHub's deploy and preview roles, and the
roles EventBridge Scheduler and EventBridge assume for the monitoring schedule and the retrain dispatch.

Least privilege throughout: no "*" actions, and every data action (S3 objects, KMS crypto,
endpoint invocation) is scoped to this environment's resources. The few actions AWS only
authorises on "*" (ecr:GetAuthorizationToken, the read-only Describe/List calls) carry no data.
All of it is applied by an administrator's `pulumi up`: the deploy role may pass two of these
roles to their services and change no IAM, so nothing CI runs can widen its own permissions.
tests/infra/iam/ proves both sides from AWS's own data: that each role may do what its resources
and calls need, and that no role reachable from GitHub reaches administrator.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    # The registry's account, when it is not this one (account_layout per-environment).
    registry_account_id: str | None = None
    # Staging and prod read dev's stack state (a StackReference, single account layout only).
    reads_registry_state: bool = False
    # The environment's MLflow App (dev's, where the pipeline runs): the deploy role logs runs to it.
    mlflow_app_arn: pulumi.Input[str] | None = None


class Roles(pulumi.ComponentResource):
    execution_role: aws.iam.Role
    deploy_role: aws.iam.Role
    preview_role: aws.iam.Role
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

        self.deploy_role = self._github_role(
            f"{name}-github-deploy",
            names.deploy_role_name(args.prefix, args.env),
            names.github_environment(args.env),
            f"Applies what a merge to main changes in {args.env}; assumed by GitHub Actions in environment "
            f"{names.github_environment(args.env)} of {args.github_repository}",
            self._deploy_statements(arn),
            child,
        )
        # Pull requests plan with this one: it reads the stack's state and secrets, and changes nothing.
        self.preview_role = self._github_role(
            f"{name}-github-preview",
            names.preview_role_name(args.prefix, args.env),
            names.preview_environment(args.env),
            f"Read-only `pulumi preview` of {args.env}; assumed by GitHub Actions in environment "
            f"{names.preview_environment(args.env)} of {args.github_repository}",
            self._preview_statements(arn),
            child,
        )
        # The monitoring schedule's and the retrain dispatch's roles exist from the first `pulumi up`
        # (an administrator's), so a promotion never needs to create a role.
        self.scheduler_role = self._service_role(
            f"{name}-monitor-scheduler", names.scheduler_role_name(args.prefix, args.env), "scheduler.amazonaws.com",
            [
                {
                    # The monitoring schedule's pipeline, and the nightly batch's when a stack turns it on.
                    "Sid": "StartTheMonitoringPipeline",
                    "Effect": "Allow",
                    "Action": "sagemaker:StartPipelineExecution",
                    "Resource": [arn.monitor_pipeline, arn.batch_pipeline],
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
        self.register_outputs(
            {
                "execution_role_arn": self.execution_role.arn,
                "deploy_role_arn": self.deploy_role.arn,
                "preview_role_arn": self.preview_role.arn,
            }
        )

    def _github_role(
        self,
        logical: str,
        role_name: str,
        environment: str,
        description: str,
        statements: list[Statement],
        opts: pulumi.ResourceOptions,
    ) -> aws.iam.Role:
        """A role GitHub Actions assumes by OIDC from one environment of one repository, for an hour."""
        args = self._args
        role = aws.iam.Role(
            logical,
            name=role_name,
            description=description,
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
                                f"{GITHUB_OIDC_HOST}:sub": f"repo:{args.github_repository}:environment:{environment}",
                            }
                        },
                    }
                ]
            ),
            opts=opts,
        )
        aws.iam.RolePolicy(f"{logical}-policy", role=role.id, policy=policy(statements), opts=opts)
        return role

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
                # The scheduled batch's pipeline (infra/components/batch_schedule.py) runs its transform job:
                # on the model the stack serves, with the environment's key on its volume and answers.
                "Sid": "RunTheBatchPipeline",
                "Effect": "Allow",
                "Action": "sagemaker:CreateTransformJob",
                "Resource": arn.pipeline_transform_jobs,
                "Condition": arn.transform_condition,
            },
            {
                "Sid": "WatchTheBatchPipelinesJob",  # these requests carry no key or model to condition on
                "Effect": "Allow",
                "Action": ["sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob", "sagemaker:AddTags"],
                "Resource": arn.pipeline_transform_jobs,
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

    def _state_statements(self, arn: _Arns, write: bool) -> list[Statement]:
        """Pulumi's S3 backend, this stack's part of it only (and dev's checkpoint, for the registry)."""
        args = self._args
        own = names.state_prefixes(args.prefix, args.env)
        readable = [*own]
        if args.reads_registry_state:
            readable.append(names.state_prefixes(args.prefix, "dev")[0])
        statements: list[Statement] = [
            {
                "Sid": "PulumiStateList",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": arn.state_bucket,
                "Condition": {"StringLike": {"s3:prefix": [".pulumi/meta.yaml", *(f"{p}*" for p in readable)]}},
            },
            {
                "Sid": "PulumiStateRead",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": [f"{arn.state_bucket}/.pulumi/meta.yaml", *(f"{arn.state_bucket}/{p}*" for p in readable)],
            },
            {
                # The state bucket is SSE-KMS with its own key, used through S3 only.
                "Sid": "PulumiStateKey",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", *(["kms:GenerateDataKey"] if write else [])],
                "Resource": arn.any_key,
                "Condition": {
                    "ForAnyValue:StringEquals": {"kms:ResourceAliases": names.state_key_alias(args.prefix)},
                    "StringEquals": {"kms:ViaService": f"s3.{args.region}.amazonaws.com"},
                },
            },
            {
                "Sid": "PulumiSecrets",
                "Effect": "Allow",
                "Action": [
                    "kms:Decrypt",
                    "kms:DescribeKey",
                    *(["kms:Encrypt", "kms:GenerateDataKey"] if write else []),
                ],
                "Resource": arn.any_key,
                "Condition": {
                    "ForAnyValue:StringEquals": {"kms:ResourceAliases": names.secrets_key_alias(args.prefix, args.env)}
                },
            },
        ]
        if write:
            statements.insert(
                2,
                {
                    "Sid": "PulumiStateWrite",
                    "Effect": "Allow",
                    "Action": ["s3:PutObject", "s3:DeleteObject"],
                    "Resource": [f"{arn.state_bucket}/{p}*" for p in own],
                },
            )
        return statements

    def _preview_statements(self, arn: _Arns) -> list[Statement]:
        """`pulumi preview` reads state and decrypts secrets; it calls no AWS API for unchanged resources."""
        return self._state_statements(arn, write=False)

    def _deploy_statements(self, arn: _Arns) -> list[Statement]:
        """What CI needs to run the pipeline (dev), promote, and apply what a promotion changes.

        Everything else (buckets, keys, roles, the alert topic, the retrain dispatch) belongs to the
        administrator's `pulumi up`, and a deploy role can change no IAM at all: no path from a
        merged pull request to administrator (tests/infra/iam/). Each grant below is needed by a
        resource the promotion creates, updates or deletes, or by a call the pipeline makes; the
        permission tests say which when one is missing.
        """
        args = self._args
        scoped = f"{args.prefix}-{args.env}"
        sagemaker = f"arn:aws:sagemaker:{args.region}:{args.account_id}"
        own_key = {"ForAnyValue:StringEquals": {"kms:ResourceAliases": names.kms_key_alias(args.prefix, args.env)}}
        statements: list[Statement] = [
            *self._state_statements(arn, write=True),
            {"Sid": "PipelineBuckets", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": arn.buckets},
            {
                "Sid": "PipelineObjects",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                "Resource": arn.objects,
            },
            {
                # The monitor's code, uploaded by `pulumi up` (content-addressed, tagged by default).
                "Sid": "MonitoringCode",
                "Effect": "Allow",
                "Action": ["s3:DeleteObject", "s3:GetObjectTagging", "s3:PutObjectTagging"],
                "Resource": arn.monitoring_code,
            },
            {
                # S3 objects are SSE-KMS with the environment's key; SageMaker takes grants on it.
                "Sid": "UseOwnKey",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey", "kms:CreateGrant"],
                "Resource": arn.any_key,
                "Condition": own_key,
            },
            {
                "Sid": "PassExecutionRoleToSageMaker",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": arn.execution_role,
                "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            },
            {
                "Sid": "PassSchedulerRole",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": arn.scheduler_role,
                "Condition": {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
            },
            {
                "Sid": "EndpointResources",
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
                    # Application Auto Scaling checks that whoever registers a variant may scale it.
                    "sagemaker:UpdateEndpointWeightsAndCapacities",
                    "sagemaker:InvokeEndpoint",
                    "sagemaker:AddTags",
                    "sagemaker:ListTags",
                    "sagemaker:DeleteTags",
                ],
                "Resource": [
                    f"{sagemaker}:model/{scoped}-*",
                    f"{sagemaker}:endpoint-config/{scoped}-*",
                    f"{sagemaker}:endpoint/{scoped}",
                ],
            },
            {
                # Listings carry no data, and IAM authorises them on "*" when the request names no ARN:
                # `make prune-endpoint-configs` filters configs and models by this endpoint's names,
                # and the registry lists one group's packages by its name (ListModelPackages).
                "Sid": "Listings",
                "Effect": "Allow",
                "Action": ["sagemaker:ListEndpointConfigs", "sagemaker:ListModels", "sagemaker:ListModelPackages"],
                "Resource": "*",
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
                "Resource": [arn.monitor_pipeline, arn.batch_pipeline],
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
                "Resource": [arn.monitor_schedule, arn.batch_schedule],
            },
            {
                "Sid": "AlarmsAndDashboard",
                "Effect": "Allow",
                "Action": [
                    "cloudwatch:PutMetricAlarm",
                    "cloudwatch:DeleteAlarms",
                    "cloudwatch:DescribeAlarms",
                    "cloudwatch:TagResource",
                    "cloudwatch:UntagResource",
                    "cloudwatch:ListTagsForResource",
                    "cloudwatch:PutDashboard",
                    "cloudwatch:GetDashboard",
                    "cloudwatch:DeleteDashboards",
                ],
                "Resource": [
                    arn.alarms,
                    # Target tracking creates and deletes its own alarms as the caller.
                    arn.scaling_alarms,
                    f"arn:aws:cloudwatch::{args.account_id}:dashboard/{scoped}",
                ],
            },
            {
                "Sid": "EndpointLogGroup",
                "Effect": "Allow",
                "Action": [
                    "logs:CreateLogGroup",
                    "logs:DeleteLogGroup",
                    "logs:PutRetentionPolicy",
                    "logs:DeleteRetentionPolicy",
                    "logs:TagResource",
                    "logs:UntagResource",
                    "logs:ListTagsForResource",
                ],
                "Resource": arn.endpoint_logs,
            },
            {
                "Sid": "DescribeLogGroups",  # takes no resource (Service Authorization Reference)
                "Effect": "Allow",
                "Action": "logs:DescribeLogGroups",
                "Resource": "*",
            },
            {
                "Sid": "EndpointAutoscaling",
                "Effect": "Allow",
                "Action": [
                    "application-autoscaling:RegisterScalableTarget",
                    "application-autoscaling:DeregisterScalableTarget",
                    "application-autoscaling:PutScalingPolicy",
                    "application-autoscaling:DeleteScalingPolicy",
                ],
                "Resource": arn.scalable_targets,
                "Condition": {
                    "StringEquals": {
                        "application-autoscaling:service-namespace": "sagemaker",
                        "application-autoscaling:scalable-dimension": "sagemaker:variant:DesiredInstanceCount",
                    }
                },
            },
            {
                # Tagging carries no namespace or dimension in its request: it cannot be conditioned so.
                "Sid": "TagScalableTargets",
                "Effect": "Allow",
                "Action": [
                    "application-autoscaling:TagResource",
                    "application-autoscaling:UntagResource",
                    "application-autoscaling:ListTagsForResource",
                ],
                "Resource": arn.scalable_targets,
            },
            {
                "Sid": "DescribeAutoscaling",  # Describe* take no resource
                "Effect": "Allow",
                "Action": [
                    "application-autoscaling:DescribeScalableTargets",
                    "application-autoscaling:DescribeScalingPolicies",
                    "application-autoscaling:DescribeScheduledActions",
                ],
                "Resource": "*",
            },
            {
                "Sid": "ReadJobLogs",
                "Effect": "Allow",
                "Action": ["logs:GetLogEvents", "logs:DescribeLogStreams", "logs:FilterLogEvents"],
                "Resource": arn.sagemaker_logs,
            },
            {
                # `make batch` in every environment: a Batch Transform job on the model the stack serves
                # (ml/backends/sagemaker_batch.py), named <prefix>-<env>-batch-<stamp> by ml/names.py,
                # with the environment's key on its volume and answers (the Service Authorization
                # Reference's condition keys for CreateTransformJob).
                "Sid": "BatchTransform",
                "Effect": "Allow",
                "Action": "sagemaker:CreateTransformJob",
                "Resource": f"{sagemaker}:transform-job/{scoped}-batch-*",
                "Condition": arn.transform_condition,
            },
            {
                "Sid": "WatchBatchTransform",  # these requests carry no key or model to condition on
                "Effect": "Allow",
                "Action": ["sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob", "sagemaker:AddTags"],
                "Resource": f"{sagemaker}:transform-job/{scoped}-batch-*",
            },
        ]
        if args.env == "dev":  # only the stack that trains runs the pipeline's jobs
            statements.append(
                {
                    "Sid": "PipelineJobs",
                    "Effect": "Allow",
                    "Action": [
                        "sagemaker:CreateTrainingJob",
                        "sagemaker:DescribeTrainingJob",
                        "sagemaker:StopTrainingJob",
                        "sagemaker:CreateProcessingJob",
                        "sagemaker:DescribeProcessingJob",
                        "sagemaker:StopProcessingJob",
                        "sagemaker:AddTags",
                    ],
                    "Resource": [f"{sagemaker}:training-job/{scoped}-*", f"{sagemaker}:processing-job/{scoped}-*"],
                }
            )
            statements.append(
                {
                    # The sagemaker SDK reads the staging bucket's creation date (ListBuckets) before it
                    # builds a training job, outside any error handling (sagemaker-core session_helper,
                    # Session._create_s3_bucket_if_it_does_not_exist); it lists names only.
                    "Sid": "SdkBucketCheck",
                    "Effect": "Allow",
                    "Action": "s3:ListAllMyBuckets",
                    "Resource": "*",
                }
            )
        if args.mlflow_app_arn is not None:
            statements.append(
                {
                    # Every MLflow REST call to an MLflow App is this one action on the app (the Service
                    # Authorization Reference; sagemaker-mlflow signs them for service "sagemaker").
                    # Its artifacts go to the artifacts bucket with PipelineObjects and UseOwnKey above.
                    "Sid": "LogRunsToMlflow",
                    "Effect": "Allow",
                    "Action": "sagemaker:CallMlflowAppApi",
                    "Resource": args.mlflow_app_arn,
                }
            )
        statements.append(self._registry_statement(arn))
        if arn.registry_objects is not None:
            statements += self._registry_read_statements(arn)
        return statements

    def _registry_statement(self, arn: _Arns) -> Statement:
        actions = [
            "sagemaker:DescribeModelPackageGroup",
            "sagemaker:DescribeModelPackage",
            "sagemaker:ListModelPackages",
        ]
        if not self._args.reads_registry_state:  # the stack that trains registers
            actions += [
                "sagemaker:CreateModelPackage",
                "sagemaker:UpdateModelPackage",
                "sagemaker:AddTags",
                "sagemaker:ListTags",
            ]
        return {"Sid": "ModelRegistry", "Effect": "Allow", "Action": actions, "Resource": arn.registry_resources}

    def _registry_read_statements(self, arn: _Arns) -> list[Statement]:
        # The smoke test scores the registered model offline, from the registry's bucket.
        return [
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


class _Arns:
    """The ARNs one environment's policies refer to, computed once."""

    def __init__(self, args: RolesArgs) -> None:
        account, region = args.account_id, args.region
        registry_account = args.registry_account_id or account
        scoped = f"{args.prefix}-{args.env}"
        self.buckets = [args.data_bucket_arn, args.artifacts_bucket_arn]
        self.objects = [pulumi.Output.concat(bucket, "/*") for bucket in self.buckets]
        # The monitor's code: the monitoring pipeline's copy, and the nightly batch's drift step's.
        self.monitoring_code = [
            pulumi.Output.concat(args.artifacts_bucket_arn, f"/code/{kind}/*")
            for kind in ("monitoring", "batch-monitoring")
        ]
        self.key = args.kms_key_arn
        # Keys named by alias (kms:ResourceAliases): the environment's, and its stack-secrets key.
        self.any_key = f"arn:aws:kms:{region}:{account}:key/*"
        self.state_bucket = f"arn:aws:s3:::{names.state_bucket_name(args.prefix, account)}"
        self.model_package_group = (
            f"arn:aws:sagemaker:{region}:{registry_account}:model-package-group/{args.model_package_group}"
        )
        self.model_packages = (
            f"arn:aws:sagemaker:{region}:{registry_account}:model-package/{args.model_package_group}/*"
        )
        self.registry_resources = [self.model_package_group, self.model_packages]
        self.sagemaker_logs = f"arn:aws:logs:{region}:{account}:log-group:/aws/sagemaker/*"
        self.endpoint_logs = f"arn:aws:logs:{region}:{account}:log-group:/aws/sagemaker/Endpoints/{scoped}"
        self.alarms = f"arn:aws:cloudwatch:{region}:{account}:alarm:{scoped}-*"
        # Application Auto Scaling names target tracking alarms "TargetTracking-<resource id>-...".
        self.scaling_alarms = f"arn:aws:cloudwatch:{region}:{account}:alarm:TargetTracking-endpoint/{scoped}/*"
        # A scalable target's ARN carries an id AWS makes up; the variant's own naming is all one can scope.
        self.scalable_targets = f"arn:aws:application-autoscaling:{region}:{account}:scalable-target/*"
        self.execution_role = f"arn:aws:iam::{account}:role/{names.execution_role_name(args.prefix, args.env)}"
        self.monitor_pipeline = f"arn:aws:sagemaker:{region}:{account}:pipeline/{scoped}-monitor"
        # SageMaker Pipelines name the jobs they start "pipelines-<execution>-<step>-<hash>".
        self.pipeline_jobs = f"arn:aws:sagemaker:{region}:{account}:processing-job/pipelines-*"
        self.pipeline_transform_jobs = f"arn:aws:sagemaker:{region}:{account}:transform-job/pipelines-*"
        # Pulumi names the stack's model after its endpoint (infra/components/endpoint.py), plus a suffix.
        served_models = (
            f"arn:aws:sagemaker:{region}:{account}:model/{names.endpoint_name(args.prefix, args.env)}-model-*"
        )
        # A transform job runs on the stack's model, with the environment's key on its volume and output;
        # a request without a key lacks the condition's key, and is refused.
        self.transform_condition = {
            "ArnEquals": {"sagemaker:VolumeKmsKey": args.kms_key_arn, "sagemaker:OutputKmsKey": args.kms_key_arn},
            "ArnLike": {"sagemaker:ModelArn": served_models},
        }
        self.batch_pipeline = f"arn:aws:sagemaker:{region}:{account}:pipeline/{scoped}-batch"
        self.batch_schedule = f"arn:aws:scheduler:{region}:{account}:schedule/default/{scoped}-batch"
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
