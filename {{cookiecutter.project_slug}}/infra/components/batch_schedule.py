"""The nightly batch in AWS: a Batch Transform job over a prefix of landed files, on a schedule.

Why a SageMaker Pipeline started by EventBridge Scheduler (as the monitoring job), not a GitHub
workflow on a schedule: the data lands in S3 and the scores belong there, so nothing needs to
leave AWS or hold AWS credentials outside it; the job needs a name no job had before, which a
schedule cannot make but a pipeline execution does; and Scheduler retries, sends what it cannot
deliver to the environment's dead-letter queue, and a pipeline keeps the history of runs.

Two steps, side by side:
- Batch: the same CreateTransformJob request `make batch` sends (ml/backends/sagemaker_batch.py):
  the model the stack serves, MLOPS_REJECT_ROWS=1 so a bad row is answered with its reason, KMS
  on volume, output and captured data. Its answers land beside the input, under
  <input>-predictions/<execution id>/.
- Drift: the project's monitor (ml/monitor_job.py, as the monitoring job runs it) over the same
  input files, against the served model's baseline, with mlops.toml's [monitor] thresholds. Its
  report lands under batch-monitoring/<pipeline>/<execution id>/ in the artifacts bucket; it
  publishes the monitor's flags under the Batch dimension, and the drift and unreadable-input
  alarms read them. It does not wait for the transform: a failed scoring still gets its drift
  judged, and a night's drift is known as early as its scores.
A failed run (either step) raises an alarm to the environment's alert topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.monitoring_job import ROOT, judging, monitor_step, pipeline_schedule, s3_input, upload_code
from ml import names
from ml.batch_request import REJECT_ROWS, TransformSpec, transform_request

STEP = "Batch"
DRIFT_STEP = "Drift"
# (alarm signal, the monitor's 0/1 metric, what it means): the checks a batch's input can fail.
SIGNALS = (
    ("drift", "Drift", "the batch's features drifted from training"),
    ("unreadable", "UnreadableTraffic", "too many of the batch's input lines could not be read"),
)
# SageMaker Pipelines' metrics (SageMaker guide, "Amazon SageMaker AI metrics in Amazon CloudWatch",
# SageMaker pipelines metrics): one ExecutionFailed per failed execution, by PipelineName.
PIPELINE_METRICS = "AWS/Sagemaker/ModelBuildingPipeline"


@dataclass
class BatchScheduleArgs:
    prefix: str
    env: str
    model_name: pulumi.Input[str]
    model_version: int
    input_uri: str  # an S3 prefix of headerless CSV files holding the schema's features, in its order
    execution_role_arn: pulumi.Input[str]
    scheduler_role_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    artifacts_bucket: pulumi.Input[str]
    instance_type: str
    max_payload_mb: int
    max_runtime_seconds: int
    schedule: str
    alert_topic_arn: pulumi.Input[str]
    dead_letter_queue_arn: pulumi.Input[str]
    # The drift step: the monitor's image, the served model's baseline, mlops.toml's [monitor] thresholds.
    image_uri: pulumi.Input[str]
    region: str
    baseline_statistics: str
    baseline_constraints: str
    model_created_at: str
    job_arguments: list[str]


def pipeline_name(prefix: str, env: str) -> str:
    return f"{prefix}-{env}-batch"


def output_uri(input_uri: str) -> str:
    """Beside the input, never inside it (the next run would score the answers)."""
    return f"{input_uri.rstrip('/')}-predictions"


class BatchSchedule(pulumi.ComponentResource):
    pipeline: aws.sagemaker.Pipeline
    schedule: aws.scheduler.Schedule
    alarm: aws.cloudwatch.MetricAlarm
    drift_alarm_names: list[str]

    def __init__(self, name: str, args: BatchScheduleArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:batch:BatchSchedule", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        pipeline = pipeline_name(args.prefix, args.env)
        code, code_uri = upload_code(
            f"{name}-batch", "batch-monitoring", args.artifacts_bucket, args.kms_key_arn, child
        )
        self.pipeline = aws.sagemaker.Pipeline(
            f"{name}-batch-pipeline",
            pipeline_name=pipeline,
            pipeline_display_name=pipeline,
            pipeline_description=f"Scores {args.input_uri} with {args.env}'s model v{args.model_version}, and judges its drift",
            role_arn=args.execution_role_arn,
            pipeline_definition=pulumi.Output.json_dumps(definition(args, code_uri)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=code),
        )
        self.schedule = pipeline_schedule(
            f"{name}-batch-schedule", pipeline, "Starts the batch pipeline", args.schedule,
            self.pipeline.arn, args.scheduler_role_arn, args.dead_letter_queue_arn, child,
        )  # fmt: skip
        namespace = names.metrics_namespace(args.prefix)
        self.drift_alarm_names = []
        for signal, metric, description in SIGNALS:
            alarm = names.alarm_name(args.prefix, args.env, f"batch-{signal}")
            aws.cloudwatch.MetricAlarm(
                f"{name}-batch-{signal}",
                name=alarm,
                alarm_description=f"{description} ({args.env}, model v{args.model_version}, {args.input_uri})",
                namespace=namespace,
                metric_name=metric,
                dimensions={"Batch": pipeline},
                statistic="Maximum",
                period=86400,  # a day: any of the day's batches that drifted raises it
                evaluation_periods=1,
                threshold=0,
                comparison_operator="GreaterThanThreshold",
                treat_missing_data="notBreaching",  # no batch, no finding (the failed-run alarm covers no run)
                alarm_actions=[args.alert_topic_arn],
                ok_actions=[args.alert_topic_arn],
                opts=child,
            )
            self.drift_alarm_names.append(alarm)
        self.alarm = aws.cloudwatch.MetricAlarm(
            f"{name}-batch-failed",
            name=names.alarm_name(args.prefix, args.env, "batch-failed"),
            alarm_description=f"the scheduled batch over {args.input_uri} failed ({args.env}, model v{args.model_version})",
            namespace=PIPELINE_METRICS,
            metric_name="ExecutionFailed",
            dimensions={"PipelineName": pipeline},
            statistic="Sum",
            period=3600,
            evaluation_periods=1,
            threshold=0,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",  # no failed execution, no data
            alarm_actions=[args.alert_topic_arn],
            ok_actions=[args.alert_topic_arn],
            opts=child,
        )
        self.register_outputs(
            {
                "batch_pipeline": self.pipeline.pipeline_name,
                "batch_alarm": self.alarm.name,
                "batch_drift_alarms": self.drift_alarm_names,
            }
        )


def definition(args: BatchScheduleArgs, code_uri: pulumi.Input[str]) -> dict[str, Any]:
    """The SageMaker Pipelines definition (schema 2020-12-01): the transform step and the drift step."""
    spec = TransformSpec(
        job_name="",  # SageMaker Pipelines names the job
        model_name="",
        input_uri=args.input_uri,
        output_uri="",
        capture_uri="",
        kms_key_arn="",
        instance_type=args.instance_type,
        max_payload_mb=args.max_payload_mb,
        input_filter="$",  # the landed files hold the features alone (README, "Batch scoring")
        environment={REJECT_ROWS: "1"},
        tags={"project": args.prefix, "environment": args.env},
        max_runtime_seconds=args.max_runtime_seconds,
    )
    request: dict[str, Any] = transform_request(spec)
    del request["TransformJobName"]  # SageMaker Pipelines names the job
    per_run = {"Get": "Execution.PipelineExecutionId"}  # one folder per run
    request["ModelName"] = args.model_name
    request["TransformOutput"]["S3OutputPath"] = {
        "Std:Join": {"On": "/", "Values": [output_uri(args.input_uri), per_run]}
    }
    request["TransformOutput"]["KmsKeyId"] = args.kms_key_arn
    request["TransformResources"]["VolumeKmsKeyId"] = args.kms_key_arn
    request["DataCaptureConfig"] = {
        "DestinationS3Uri": {
            "Std:Join": {
                "On": "/",
                "Values": [
                    pulumi.Output.concat("s3://", args.artifacts_bucket, "/batch-capture/", args.prefix, "-", args.env),
                    per_run,
                ],
            }
        },
        "KmsKeyId": args.kms_key_arn,
        "GenerateInferenceId": False,  # as make batch: the answers' columns stay the model's
    }
    return {
        "Version": "2020-12-01",
        "Metadata": {},
        "Parameters": [],
        "Steps": [{"Name": STEP, "Type": "Transform", "Arguments": request}, drift_step(args, code_uri)],
    }


def drift_step(args: BatchScheduleArgs, code_uri: pulumi.Input[str]) -> dict[str, object]:
    """The monitor over the batch's input files, as SageMaker downloads them for the processing job."""
    pipeline = pipeline_name(args.prefix, args.env)
    arguments, inputs = judging(
        args.prefix, args.region, args.model_version, args.model_created_at, args.job_arguments,
        args.baseline_statistics, args.baseline_constraints,
    )  # fmt: skip
    return monitor_step(
        DRIFT_STEP,
        image_uri=args.image_uri,
        execution_role_arn=args.execution_role_arn,
        kms_key_arn=args.kms_key_arn,
        code_uri=code_uri,
        arguments=["--batch-input", f"{ROOT}/input/batch", "--batch", pipeline, *arguments],
        inputs=[*inputs, s3_input("batch", args.input_uri, "input/batch")],
        report_uri=pulumi.Output.concat("s3://", args.artifacts_bucket, "/batch-monitoring/", pipeline),
    )
