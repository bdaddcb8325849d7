"""Drift and model-quality monitoring in AWS: the project's own monitor, on a schedule.

SageMaker Model Monitor closed to new customers on 2026-07-30, so the template does not use it.
The same ml/monitor_job.py that `make monitor` runs locally runs here as a processing job in
the pinned scikit-learn image, over the endpoint's S3 data capture and ground truth, with the
thresholds of mlops.toml's [monitor]; it writes its report to S3 and publishes metrics in the
project's CloudWatch namespace. The alarms watch those metrics and notify the environment's alert
topic; a drift, quality or age alarm sends GitHub a `repository_dispatch` of type `retrain`
through the dispatch of infra/components/monitoring.py, which exists from the first `pulumi up`.

Why a SageMaker Pipeline started by EventBridge Scheduler, not Scheduler starting the job: a
processing job needs a name no job had before, and a schedule sends the same request every
time; a pipeline execution names its jobs itself (and keeps a history of runs to read).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from ml import names
from ml.monitor_job import FILES

ROOT = "/opt/ml/processing"
JOB_FILES = FILES
ML = Path(__file__).resolve().parents[2] / "ml"
STEP = "Monitor"

# (alarm signal, the job's 0/1 metric, what it means, whether it starts retraining)
SIGNALS = (
    ("drift", "Drift", "the traffic's features drifted from training", True),
    ("quality", "QualityDrop", "the model's metrics on labelled traffic dropped below the registered", True),
    ("unreadable", "UnreadableTraffic", "too many captured requests could not be read", False),
    ("model-age", "ModelTooOld", "the serving model is older than [monitor].max_model_age_days", True),
    ("monitor-silent", "MonitorRuns", "the monitoring job has not reported for two periods", False),
)


def retraining_alarm_names(prefix: str, env: str) -> list[str]:
    """The alarms whose ALARM state sends `repository_dispatch` `retrain` (infra/components/monitoring.py)."""
    return [names.alarm_name(prefix, env, f"monitor-{signal}") for signal, _, _, retrains in SIGNALS if retrains]


@dataclass
class MonitoringJobArgs:
    prefix: str
    env: str
    region: str
    account_id: str
    github_repository: str
    endpoint_name: pulumi.Input[str]
    execution_role_arn: pulumi.Input[str]
    scheduler_role_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    artifacts_bucket: pulumi.Input[str]
    image_uri: pulumi.Input[str]
    model_version: int
    baseline_statistics: str
    baseline_constraints: str
    evaluation: str
    model_created_at: str
    job_arguments: list[str]  # the thresholds, from mlops.toml's [monitor]
    schedule: str
    schedule_seconds: int  # how often the schedule runs: the alarms' period
    alert_topic_arn: pulumi.Input[str]
    dead_letter_queue_arn: pulumi.Input[str]


def code_prefix(kind: str = "monitoring") -> str:
    """The job's code, addressed by its content: a change uploads new files, never edits old ones.

    Each pipeline that runs the job (the monitor's, the nightly batch's drift step) has its own
    copy under code/<kind>/, so neither stack resource deletes a file the other still reads.
    """
    digest = hashlib.sha256()
    for name in JOB_FILES:
        digest.update(name.encode() + b"\0" + (ML / name).read_bytes())
    return f"code/{kind}/{digest.hexdigest()[:16]}"


def upload_code(
    name: str, kind: str, bucket: pulumi.Input[str], kms_key_arn: pulumi.Input[str], opts: pulumi.ResourceOptions
) -> tuple[list[aws.s3.BucketObjectv2], pulumi.Output[str]]:
    """The job's files in the artifacts bucket, and the S3 prefix a processing input reads them from."""
    prefix = code_prefix(kind)
    objects = [
        aws.s3.BucketObjectv2(
            f"{name}-code-{file}",
            bucket=bucket,
            key=f"{prefix}/{file}",
            source=pulumi.FileAsset(str(ML / file)),
            server_side_encryption="aws:kms",
            kms_key_id=kms_key_arn,
            opts=opts,
        )
        for file in JOB_FILES
    ]
    return objects, pulumi.Output.concat("s3://", bucket, "/", prefix, "/")


class MonitoringJob(pulumi.ComponentResource):
    pipeline: aws.sagemaker.Pipeline
    schedule: aws.scheduler.Schedule
    alarm_names: list[str]

    def __init__(self, name: str, args: MonitoringJobArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:monitoring:MonitoringJob", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        scoped = f"{args.prefix}-{args.env}"
        code, code_uri = upload_code(name, "monitoring", args.artifacts_bucket, args.kms_key_arn, child)
        self.pipeline = aws.sagemaker.Pipeline(
            f"{name}-pipeline",
            pipeline_name=f"{scoped}-monitor",
            pipeline_display_name=f"{scoped}-monitor",
            pipeline_description=f"Monitors {args.env}'s endpoint: the window of traffic against model v{args.model_version}",
            role_arn=args.execution_role_arn,
            pipeline_definition=pulumi.Output.json_dumps(definition(args, code_uri)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=code),
        )
        self.schedule = pipeline_schedule(
            f"{name}-schedule", f"{scoped}-monitor", "Starts the monitoring pipeline", args.schedule,
            self.pipeline.arn, args.scheduler_role_arn, args.dead_letter_queue_arn, child,
        )  # fmt: skip
        # The job publishes a 0/1 flag per check (ml/monitor_job.py); an alarm per flag.
        namespace = names.metrics_namespace(args.prefix)
        self.alarm_names = []
        for signal, metric, description, _ in SIGNALS:
            alarm = names.alarm_name(args.prefix, args.env, f"monitor-{signal}")
            silent = metric == "MonitorRuns"
            # One run per period publishes each flag once; the silent alarm wants a run in two periods.
            # CloudWatch takes periods over an hour in whole hours.
            period = max(3600, -(-args.schedule_seconds // 3600) * 3600)
            aws.cloudwatch.MetricAlarm(
                f"{name}-{signal}",
                name=alarm,
                alarm_description=f"{description} ({args.env}, model v{args.model_version})",
                namespace=namespace,
                metric_name=metric,
                dimensions={"Endpoint": args.endpoint_name},
                statistic="Maximum" if not silent else "SampleCount",
                period=period,
                evaluation_periods=2 if silent else 1,
                threshold=0 if not silent else 1,
                comparison_operator="GreaterThanThreshold" if not silent else "LessThanThreshold",
                # A run that did not report is itself worth an alarm; for the others, no data is no finding.
                treat_missing_data="breaching" if silent else "notBreaching",
                alarm_actions=[args.alert_topic_arn],
                ok_actions=[args.alert_topic_arn],
                opts=child,
            )
            self.alarm_names.append(alarm)
        self.register_outputs({"monitoring_pipeline": self.pipeline.pipeline_name, "alarm_names": self.alarm_names})


def pipeline_schedule(
    resource: str,
    name: str,
    description: str,
    expression: str,
    pipeline_arn: pulumi.Input[str],
    role_arn: pulumi.Input[str],
    dead_letter_queue_arn: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> aws.scheduler.Schedule:
    """An EventBridge Scheduler schedule that starts a SageMaker pipeline: the monitor's, the nightly batch's."""
    return aws.scheduler.Schedule(
        resource,
        name=name,
        description=description,
        schedule_expression=expression,
        flexible_time_window={"mode": "OFF"},
        # The schedule carries no data, only the pipeline's name: AWS's own key encrypts it.
        target={
            "arn": pipeline_arn,
            "role_arn": role_arn,
            "sagemaker_pipeline_parameters": {},
            "dead_letter_config": {"arn": dead_letter_queue_arn},
            "retry_policy": {"maximum_retry_attempts": 3, "maximum_event_age_in_seconds": 3600},
        },
        opts=opts,
    )


def s3_input(input_name: str, uri: pulumi.Input[str], local: str) -> dict[str, object]:
    return {
        "InputName": input_name,
        "S3Input": {"S3Uri": uri, "LocalPath": f"{ROOT}/{local}", "S3DataType": "S3Prefix", "S3InputMode": "File"},
    }


def monitor_step(
    step: str,
    *,
    image_uri: pulumi.Input[str],
    execution_role_arn: pulumi.Input[str],
    kms_key_arn: pulumi.Input[str],
    code_uri: pulumi.Input[str],
    arguments: list[pulumi.Input[str]],
    inputs: list[dict[str, object]],
    report_uri: pulumi.Input[str],
) -> dict[str, object]:
    """A pipeline step that runs ml/monitor_job.py as a processing job (CreateProcessingJob's request)."""
    return {
        "Name": step,
        "Type": "Processing",
        "Arguments": {
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                    "VolumeSizeInGB": 20,
                    "VolumeKmsKeyId": kms_key_arn,
                }
            },
            "AppSpecification": {
                "ImageUri": image_uri,
                "ContainerEntrypoint": ["python3", f"{ROOT}/input/code/monitor_job.py"],
                "ContainerArguments": arguments,
            },
            "RoleArn": execution_role_arn,
            "ProcessingInputs": [s3_input("code", code_uri, "input/code"), *inputs],
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": "monitoring",
                        "S3Output": {
                            # One folder per run: the execution id names it.
                            "S3Uri": {
                                "Std:Join": {
                                    "On": "/",
                                    "Values": [report_uri, {"Get": "Execution.PipelineExecutionId"}],
                                }
                            },
                            "LocalPath": f"{ROOT}/output/monitoring",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ],
                "KmsKeyId": kms_key_arn,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 1800},
        },
    }


def judging(
    prefix: str,
    region: str,
    model_version: int,
    model_created_at: str,
    job_arguments: list[str],
    baseline_statistics: str,
    baseline_constraints: str,
) -> tuple[list[pulumi.Input[str]], list[dict[str, object]]]:
    """What every run of the monitor is judged by, whatever it reads: the served model's version,
    age and baseline, mlops.toml's [monitor] thresholds, and where it publishes (arguments, inputs)."""
    arguments: list[pulumi.Input[str]] = [
        "--version", str(model_version),
        "--model-created-at", model_created_at,
        *job_arguments,
        "--namespace", names.metrics_namespace(prefix),
        "--region", region,
    ]  # fmt: skip
    inputs = [
        s3_input("statistics", baseline_statistics, "input/statistics"),
        s3_input("constraints", baseline_constraints, "input/constraints"),
    ]
    return arguments, inputs


def definition(args: MonitoringJobArgs, code_uri: pulumi.Input[str]) -> dict[str, object]:
    """The SageMaker Pipelines definition (schema 2020-12-01): one processing step, the monitor."""
    capture = pulumi.Output.concat("s3://", args.artifacts_bucket, "/data-capture/", args.endpoint_name, "/AllTraffic/")
    ground_truth = pulumi.Output.concat("s3://", args.artifacts_bucket, "/ground-truth/", args.endpoint_name, "/")
    arguments, inputs = judging(
        args.prefix, args.region, args.model_version, args.model_created_at, args.job_arguments,
        args.baseline_statistics, args.baseline_constraints,
    )  # fmt: skip
    step = monitor_step(
        STEP,
        image_uri=args.image_uri,
        execution_role_arn=args.execution_role_arn,
        kms_key_arn=args.kms_key_arn,
        code_uri=code_uri,
        arguments=["--capture", capture, "--ground-truth", ground_truth, "--endpoint", args.endpoint_name, *arguments],
        inputs=[*inputs, s3_input("evaluation", args.evaluation, "input/evaluation")],
        report_uri=pulumi.Output.concat("s3://", args.artifacts_bucket, "/monitoring/", args.endpoint_name),
    )
    return {"Version": "2020-12-01", "Metadata": {}, "Parameters": [], "Steps": [step]}
