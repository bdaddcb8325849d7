"""The nightly batch under Pulumi's mocks: the transform and drift steps, the schedule, the alarms, the roles.

The steps are validated against botocore's models of CreateTransformJob and CreateProcessingJob, as
SageMaker Pipelines hands them on, and the drift step's arguments by the monitor's own parser; the
roles' grants are read from the policies the program declares. tests/aws/test_batch_aws.py runs the
drift step against moto.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from infra.components import batch_schedule, monitoring_job
from infra.mocks import StackRun, run_stack
from infra.settings import StackConfigError
from ml import monitor_job, names
from ml.config import load_config
from tests.botocore_limits import refusals
from tests.infra.test_monitoring_job import MONITORED, allows, policy_of, resolved

CONFIG = load_config()
PROJECT = CONFIG.project
PREFIX, REGION = PROJECT.resource_prefix, PROJECT.aws_region
DATA = names.bucket_name(PREFIX, "prod", "data", PROJECT.account("prod"))
NIGHTLY = {**MONITORED, "batch_schedule": "cron(0 2 * * ? *)", "batch_input": f"s3://{DATA}/incoming/"}
PIPELINE = "aws:sagemaker/pipeline:Pipeline"
SCHEDULE = "aws:scheduler/schedule:Schedule"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


@pytest.fixture(scope="module")
def nightly() -> StackRun:
    return run_stack("prod", NIGHTLY)


def batch_pipeline(run: StackRun) -> Any:
    [pipeline] = [p for p in run.of_type(PIPELINE) if p.inputs["pipelineName"] == f"{PREFIX}-prod-batch"]
    return pipeline


def steps_of(run: StackRun) -> dict[str, dict[str, Any]]:
    return {step["Name"]: step for step in json.loads(batch_pipeline(run).inputs["pipelineDefinition"])["Steps"]}


def step_of(run: StackRun) -> dict[str, Any]:
    return steps_of(run)[batch_schedule.STEP]


def drift_request(run: StackRun) -> dict[str, Any]:
    """The drift step as SageMaker Pipelines sends it to CreateProcessingJob."""
    return {"ProcessingJobName": "pipelines-exec1-Drift-a1b2c3", **resolved(steps_of(run)["Drift"]["Arguments"])}


def transform_request(run: StackRun) -> dict[str, Any]:
    """The step's arguments as SageMaker Pipelines sends them: the functions evaluated, the job named."""
    return {"TransformJobName": "pipelines-exec1-Batch-a1b2c3", **resolved(step_of(run)["Arguments"])}


def test_the_step_is_a_create_transform_job_request_botocore_accepts(nightly: StackRun) -> None:
    step = step_of(nightly)
    assert (step["Name"], step["Type"]) == (batch_schedule.STEP, "Transform")
    assert not refusals("sagemaker", "CreateTransformJob", transform_request(nightly))  # types, lengths, enums


def test_the_step_scores_with_the_stacks_model_the_way_make_batch_does(nightly: StackRun) -> None:
    request = transform_request(nightly)
    model = nightly.one("aws:sagemaker/model:Model")
    assert request["ModelName"] == model.inputs["name"] == nightly.outputs["model_name"]
    assert request["Environment"] == {"MLOPS_REJECT_ROWS": "1"}
    assert (request["BatchStrategy"], request["MaxPayloadInMB"]) == ("MultiRecord", CONFIG.batch.max_payload_mb)
    # The landed files hold the features alone; no inference ids, which would append two columns.
    assert request["DataProcessing"] == {"InputFilter": "$", "JoinSource": "Input", "OutputFilter": "$"}
    assert request["DataCaptureConfig"]["GenerateInferenceId"] is False
    assert {t["Key"]: t["Value"] for t in request["Tags"]} == {"project": PREFIX, "environment": "prod"}
    assert request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == NIGHTLY["batch_input"]
    # Beside the input, one folder per run: never inside it, where the next run would score the answers.
    assert request["TransformOutput"]["S3OutputPath"] == f"s3://{DATA}/incoming-predictions/exec-1"
    key = nightly.outputs["kms_key_arn"]
    assert request["TransformOutput"]["KmsKeyId"] == request["TransformResources"]["VolumeKmsKeyId"] == key
    assert request["DataCaptureConfig"]["KmsKeyId"] == key
    assert request["DataCaptureConfig"]["DestinationS3Uri"].startswith(f"s3://{nightly.outputs['artifacts_bucket']}/")
    assert batch_pipeline(nightly).inputs["roleArn"] == nightly.outputs["execution_role_arn"]


def test_the_drift_step_is_a_create_processing_job_request_botocore_accepts(nightly: StackRun) -> None:
    assert set(steps_of(nightly)) == {batch_schedule.STEP, batch_schedule.DRIFT_STEP}
    step = steps_of(nightly)[batch_schedule.DRIFT_STEP]
    # Side by side with the transform: a failed scoring still gets its input's drift judged.
    assert step["Type"] == "Processing" and "DependsOn" not in step
    assert not refusals("sagemaker", "CreateProcessingJob", drift_request(nightly))  # types, lengths, enums


def test_the_drift_step_runs_the_monitor_over_the_batch_input_against_the_served_baseline(nightly: StackRun) -> None:
    request = drift_request(nightly)
    app = request["AppSpecification"]
    assert app["ContainerEntrypoint"] == ["python3", "/opt/ml/processing/input/code/monitor_job.py"]
    # The monitor's own parser takes the arguments: mlops.toml's thresholds, the Batch dimension.
    args = monitor_job.parse_args(app["ContainerArguments"])
    expected = monitor_job.parse_args([*CONFIG.monitor.job_arguments(), "--batch-input", "x"]).__dict__
    assert args.__dict__ == expected | {
        "batch_input": "/opt/ml/processing/input/batch",
        "version": "4",
        "model_created_at": NIGHTLY["monitoring_model_created_at"],
        "namespace": names.metrics_namespace(PREFIX),
        "batch": f"{PREFIX}-prod-batch",
        "region": REGION,
    }
    inputs = {i["InputName"]: i["S3Input"] for i in request["ProcessingInputs"]}
    bucket = nightly.outputs["artifacts_bucket"]
    code = monitoring_job.code_prefix("batch-monitoring")
    assert {name: i["S3Uri"] for name, i in inputs.items()} == {
        "code": f"s3://{bucket}/{code}/",
        "statistics": NIGHTLY["monitoring_baseline_statistics"],
        "constraints": NIGHTLY["monitoring_baseline_constraints"],
        "batch": NIGHTLY["batch_input"],  # what the transform scores, downloaded where the monitor reads it
    }
    assert inputs["batch"]["LocalPath"] == args.batch_input
    uploaded = {o.inputs["key"] for o in nightly.of_type("aws:s3/bucketObjectv2:BucketObjectv2")}
    assert {f"{code}/{name}" for name in monitoring_job.JOB_FILES} <= uploaded
    [output] = request["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["S3Uri"] == f"s3://{bucket}/batch-monitoring/{PREFIX}-prod-batch/exec-1"
    kms = nightly.outputs["kms_key_arn"]
    assert (
        request["ProcessingOutputConfig"]["KmsKeyId"]
        == request["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"]
        == kms
    )
    assert request["RoleArn"] == nightly.outputs["execution_role_arn"]


def test_the_execution_role_may_run_the_drift_step_and_publish_its_flags(nightly: StackRun) -> None:
    statements = policy_of(nightly, "prod-sagemaker-execution-policy")
    job = f"arn:aws:sagemaker:{REGION}:{PROJECT.account('prod')}:processing-job/pipelines-exec1-drift-a1b2c3"
    for action in ("CreateProcessingJob", "DescribeProcessingJob", "StopProcessingJob", "AddTags"):
        assert allows(statements, f"sagemaker:{action}", job), action
    assert allows(statements, "s3:GetObject", f"arn:aws:s3:::{DATA}/incoming/x.csv")
    assert allows(statements, "s3:PutObject", f"arn:aws:s3:::{nightly.outputs['artifacts_bucket']}/batch-monitoring/x")
    [publish] = [s for s in statements if s.get("Sid") == "PublishMetrics"]
    assert names.metrics_namespace(PREFIX) in publish["Condition"]["StringLike"]["cloudwatch:namespace"]


def test_drift_and_unreadable_input_alarm_the_alert_topic(nightly: StackRun) -> None:
    alarms = {a.inputs["name"]: a.inputs for a in nightly.of_type(ALARM)}
    topic = nightly.one("aws:sns/topic:Topic").inputs["arn"]
    for signal, metric, _ in batch_schedule.SIGNALS:
        alarm = alarms[names.alarm_name(PREFIX, "prod", f"batch-{signal}")]
        assert metric in monitor_job.FLAGS  # a flag the monitor publishes
        assert (alarm["namespace"], alarm["metricName"]) == (names.metrics_namespace(PREFIX), metric)
        assert alarm["dimensions"] == {"Batch": f"{PREFIX}-prod-batch"}
        assert alarm["alarmActions"] == alarm["okActions"] == [topic]


def test_the_schedule_starts_the_batch_pipeline_as_the_scheduler_role(nightly: StackRun) -> None:
    [schedule] = [s.inputs for s in nightly.of_type(SCHEDULE) if s.inputs["name"] == f"{PREFIX}-prod-batch"]
    assert schedule["scheduleExpression"] == NIGHTLY["batch_schedule"]
    target = schedule["target"]
    pipeline = batch_pipeline(nightly).inputs["arn"]
    assert target["arn"] == pipeline
    assert target["roleArn"] == nightly.one("aws:iam/role:Role", "prod-monitor-scheduler").inputs["arn"]
    assert target["deadLetterConfig"] == {"arn": nightly.one("aws:sqs/queue:Queue").inputs["arn"]}
    assert allows(policy_of(nightly, "prod-monitor-scheduler-policy"), "sagemaker:StartPipelineExecution", pipeline)


def test_the_execution_role_may_run_the_pipelines_transform_job(nightly: StackRun) -> None:
    statements = policy_of(nightly, "prod-sagemaker-execution-policy")
    job = f"arn:aws:sagemaker:{REGION}:{PROJECT.account('prod')}:transform-job/pipelines-exec1-batch-a1b2c3"
    for action in ("CreateTransformJob", "DescribeTransformJob", "StopTransformJob", "AddTags"):
        assert allows(statements, f"sagemaker:{action}", job), action
    for bucket in (DATA, nightly.outputs["artifacts_bucket"]):  # reads the input, writes answers and capture
        for action in ("s3:GetObject", "s3:PutObject"):
            assert allows(statements, action, f"arn:aws:s3:::{bucket}/incoming/x.csv"), (action, bucket)


def test_the_execution_role_runs_a_transform_only_on_the_stacks_model_with_its_key(nightly: StackRun) -> None:
    # IAM's own rules (principalmapper's evaluator) over the request's condition keys, as the
    # Service Authorization Reference lists them for CreateTransformJob.
    import tests.infra.iam  # noqa: F401  (principalmapper's import shim)
    from tests.aws.iam_calls import Call, needs_of
    from tests.infra.iam.evaluate import allowed, role

    policy = nightly.one("aws:iam/rolePolicy:RolePolicy", "prod-sagemaker-execution-policy").inputs["policy"]
    execution = role(nightly.outputs["execution_role_arn"], policy)

    def refused(request: dict[str, Any]) -> list[str]:
        needs = needs_of(Call("sagemaker", "CreateTransformJob", request, True), REGION, PROJECT.account("prod"), {})
        return [n.action for n in needs if not allowed(execution, n.action, n.resource, n.context)]

    assert refused(transform_request(nightly)) == []
    changes: list[tuple[str, Callable[[dict[str, Any]], object]]] = [
        ("TransformResources", lambda r: r["TransformResources"].pop("VolumeKmsKeyId")),
        ("TransformOutput", lambda r: r["TransformOutput"].update(KmsKeyId="arn:aws:kms:eu-west-1:1:key/other")),
        ("ModelName", lambda r: r.update(ModelName="another-model")),
    ]
    for field, change in changes:
        request = json.loads(json.dumps(transform_request(nightly)))
        change(request)
        assert refused(request) == ["sagemaker:CreateTransformJob"], field


def test_a_failed_run_raises_an_alarm_to_the_alert_topic(nightly: StackRun) -> None:
    [alarm] = [a.inputs for a in nightly.of_type(ALARM) if a.inputs["name"].endswith("-batch-failed")]
    assert (alarm["namespace"], alarm["metricName"]) == (batch_schedule.PIPELINE_METRICS, "ExecutionFailed")
    assert alarm["dimensions"] == {"PipelineName": f"{PREFIX}-prod-batch"}
    assert alarm["alarmActions"] == [nightly.one("aws:sns/topic:Topic").inputs["arn"]]


def test_the_deploy_role_may_create_and_update_the_batch_pipeline_and_schedule(nightly: StackRun) -> None:
    statements = policy_of(nightly, "prod-github-deploy-policy")
    pipeline = batch_pipeline(nightly).inputs["arn"]
    for action in ("CreatePipeline", "UpdatePipeline", "DescribePipeline", "DeletePipeline", "AddTags"):
        assert allows(statements, f"sagemaker:{action}", pipeline), action
    [schedule] = [s.inputs["arn"] for s in nightly.of_type(SCHEDULE) if s.inputs["name"] == f"{PREFIX}-prod-batch"]
    for action in ("CreateSchedule", "GetSchedule", "UpdateSchedule", "DeleteSchedule"):
        assert allows(statements, f"scheduler:{action}", schedule), action
    for signal in ("failed", *(signal for signal, _, _ in batch_schedule.SIGNALS)):
        [alarm] = [a.inputs["arn"] for a in nightly.of_type(ALARM) if a.inputs["name"].endswith(f"-batch-{signal}")]
        assert allows(statements, "cloudwatch:PutMetricAlarm", alarm), signal
    for code in nightly.of_type("aws:s3/bucketObjectv2:BucketObjectv2"):  # the drift step's code, replaced on change
        key = f"arn:aws:s3:::{code.inputs['bucket']}/{code.inputs['key']}"
        for action in ("s3:PutObject", "s3:DeleteObject", "s3:PutObjectTagging"):
            assert allows(statements, action, key), (action, key)
    assert nightly.outputs["batch_pipeline"] == f"{PREFIX}-prod-batch"


@pytest.mark.parametrize(
    "changes",
    [{"batch_schedule": None, "batch_input": None}, {"model_version": None}],
    ids=["not-scheduled", "no-model"],
)
def test_no_batch_pipeline_unless_scheduled_with_a_model(changes: dict[str, Any]) -> None:
    run = run_stack("prod", {**NIGHTLY, **changes})
    assert not [p for p in run.of_type(PIPELINE) if p.inputs["pipelineName"].endswith("-batch")]
    assert not [s for s in run.of_type(SCHEDULE) if s.inputs["name"].endswith("-batch")]
    assert "batch_pipeline" not in run.outputs


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"batch_input": None}, "batch_input is required with batch_schedule"),
        ({"batch_input": "s3://someone-elses-bucket/in/"}, "outside this environment's data bucket"),
        ({"batch_input": f"s3://{DATA}/incoming"}, "batch_input"),  # a prefix ends with /
        ({"batch_input": f"s3://{DATA}/"}, "batch_input"),  # the root: its answers would go to another bucket
        ({"batch_schedule": "nightly"}, "batch_schedule"),
        ({"monitoring_baseline_statistics": None}, "monitoring_baseline_statistics is missing: `make promote`"),
        (
            {"monitoring_baseline_statistics": None, "monitoring_baseline_constraints": None},
            "monitoring_baseline_statistics and monitoring_baseline_constraints are missing",
        ),
    ],
    ids=["no-input", "other-bucket", "not-a-prefix", "bucket-root", "bad-expression", "no-baseline", "neither"],
)
def test_a_bad_batch_setting_is_refused_by_name(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(StackConfigError, match=problem):
        run_stack("prod", {**NIGHTLY, **changes})
