"""Drift monitoring in AWS: a Model Monitor data-quality schedule on a real-time endpoint, alarms on
its per-feature drift metrics, and an EventBridge rule that turns an alarm into a GitHub
`repository_dispatch` of type `retrain` (retrain.yml), through an API destination.

The GitHub token lives in Secrets Manager: EventBridge connections keep their credentials there.
Serverless endpoints cannot capture data, so they get none of this (see README).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from ml import names

ROOT = "/opt/ml/processing"


@dataclass
class DriftMonitoringArgs:
    prefix: str
    env: str
    github_repository: str
    endpoint_name: pulumi.Input[str]
    execution_role_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    artifacts_bucket: pulumi.Input[str]
    analyzer_image: str
    baseline_statistics: str
    baseline_constraints: str
    features: list[str]
    drift_threshold: float
    schedule: str
    github_token: pulumi.Input[str]


class DriftMonitoring(pulumi.ComponentResource):
    schedule: aws.sagemaker.MonitoringSchedule

    def __init__(self, name: str, args: DriftMonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:drift:DriftMonitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        scoped = f"{args.prefix}-{args.env}"
        job = aws.sagemaker.DataQualityJobDefinition(
            f"{name}-data-quality",
            name=f"{scoped}-data-quality",
            role_arn=args.execution_role_arn,
            data_quality_app_specification={"image_uri": args.analyzer_image},
            data_quality_baseline_config={
                "constraints_resource": {"s3_uri": args.baseline_constraints},
                "statistics_resource": {"s3_uri": args.baseline_statistics},
            },
            data_quality_job_input={
                "endpoint_input": {"endpoint_name": args.endpoint_name, "local_path": f"{ROOT}/input"}
            },
            data_quality_job_output_config={
                "kms_key_id": args.kms_key_arn,
                "monitoring_outputs": {
                    "s3_output": {
                        "s3_uri": pulumi.Output.concat(
                            "s3://", args.artifacts_bucket, "/monitoring/", args.endpoint_name
                        ),
                        "local_path": f"{ROOT}/output",
                        "s3_upload_mode": "EndOfJob",
                    }
                },
            },
            job_resources={
                "cluster_config": {
                    "instance_count": 1,
                    "instance_type": "ml.m5.large",
                    "volume_size_in_gb": 20,
                    "volume_kms_key_id": args.kms_key_arn,
                }
            },
            stopping_condition={"max_runtime_in_seconds": 1800},
            opts=child,
        )
        self.schedule = aws.sagemaker.MonitoringSchedule(
            f"{name}-schedule",
            name=f"{scoped}-data-quality",
            monitoring_schedule_config={
                "monitoring_job_definition_name": job.name,
                "monitoring_type": "DataQuality",
                "schedule_config": {"schedule_expression": args.schedule},
            },
            opts=child,
        )
        # Model Monitor publishes one drift metric per feature when emit_metrics is on in the baseline.
        alarm_prefix = names.alarm_name(args.prefix, args.env, "drift-")
        for feature in args.features:
            aws.cloudwatch.MetricAlarm(
                f"{name}-drift-{feature}",
                name=f"{alarm_prefix}{feature}",
                alarm_description=f"data drift on {feature}: distance from the training baseline above {args.drift_threshold}",
                namespace="aws/sagemaker/Endpoints/data-metrics",
                metric_name=f"feature_baseline_drift_{feature}",
                dimensions={"Endpoint": args.endpoint_name, "MonitoringSchedule": self.schedule.name},
                statistic="Maximum",
                period=3600,
                evaluation_periods=1,
                threshold=args.drift_threshold,
                comparison_operator="GreaterThanThreshold",
                treat_missing_data="notBreaching",
                opts=child,
            )
        connection = aws.cloudwatch.EventConnection(
            f"{name}-github",
            name=f"{scoped}-github",
            description=f"GitHub API for {args.github_repository}; the token is kept in Secrets Manager",
            authorization_type="API_KEY",
            auth_parameters={
                "api_key": {"key": "Authorization", "value": pulumi.Output.concat("Bearer ", args.github_token)}
            },
            opts=child,
        )
        destination = aws.cloudwatch.EventApiDestination(
            f"{name}-dispatch",
            name=f"{scoped}-retrain-dispatch",
            connection_arn=connection.arn,
            http_method="POST",
            invocation_endpoint=f"https://api.github.com/repos/{args.github_repository}/dispatches",
            invocation_rate_limit_per_second=1,
            opts=child,
        )
        rule = aws.cloudwatch.EventRule(
            f"{name}-on-drift",
            name=f"{scoped}-drift-to-retrain",
            description="A drift alarm starts retraining (retrain.yml) through repository_dispatch",
            event_pattern=json.dumps(
                {
                    "source": ["aws.cloudwatch"],
                    "detail-type": ["CloudWatch Alarm State Change"],
                    "detail": {"alarmName": [{"prefix": alarm_prefix}], "state": {"value": ["ALARM"]}},
                }
            ),
            opts=child,
        )
        invoker = aws.iam.Role(
            f"{name}-events-invoker",
            name=f"{scoped}-events-dispatch",
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "events.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-events-invoker-policy",
            role=invoker.id,
            policy=pulumi.Output.json_dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Action": "events:InvokeApiDestination", "Resource": destination.arn}
                    ],
                }
            ),
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-dispatch-target",
            rule=rule.name,
            arn=destination.arn,
            role_arn=invoker.arn,
            http_target={"header_parameters": {"Accept": "application/vnd.github+json"}},
            input=json.dumps({"event_type": "retrain", "client_payload": {"environment": args.env, "reason": "drift"}}),
            opts=child,
        )
        self.register_outputs({"monitoring_schedule": self.schedule.name})


def analyzer_image(region: str) -> str | None:
    """The Model Monitor analyzer image for a region, from the sagemaker SDK's own image table."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sagemaker")
    if spec is None or not spec.submodule_search_locations:
        return None
    table = Path(next(iter(spec.submodule_search_locations))) / "core" / "image_uri_config" / "model-monitor.json"
    registries = json.loads(table.read_text())["versions"][""]["registries"]
    account = registries.get(region)
    return f"{account}.dkr.ecr.{region}.amazonaws.com/sagemaker-model-monitor-analyzer" if account else None
