"""The monitoring job in AWS under Pulumi's mocks: where it exists, what it runs, its alarms, the dispatch.

Where the cloud's own machinery can judge a part, it does: the processing step's arguments are
validated against botocore's model of CreateProcessingJob, the image against the sagemaker SDK's
image table, and the job's arguments by the job's own parser. tests/aws/test_monitoring_aws.py
runs the same step against moto.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.components import monitoring_job
from infra.mocks import StackRun, run_stack
from infra.settings import REAL_TIME_ONLY, StackConfigError
from ml import monitor_job, names
from ml.config import load_config
from tests.botocore_limits import refusals

CONFIG = load_config()
PROJECT = CONFIG.project
PREFIX, REGION = PROJECT.resource_prefix, PROJECT.aws_region
MONITORED = {
    "model_version": 4,
    "endpoint_type": "real-time",
    "instance_count": 2,
    "data_capture_percent": 20,
    "monitoring_baseline_statistics": "s3://bucket/sha256/aa/statistics.json",
    "monitoring_baseline_constraints": "s3://bucket/sha256/bb/constraints.json",
    "monitoring_evaluation": "s3://bucket/sha256/cc/evaluation.json",
    "monitoring_model_created_at": "2026-11-30T08:00:00+00:00",
    "github_dispatch_token": "secret-token",
    "alert_emails": "oncall@example.com, ml-team@example.com",
}
PIPELINE = "aws:sagemaker/pipeline:Pipeline"
SCHEDULE = "aws:scheduler/schedule:Schedule"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
# Resource types of SageMaker Model Monitor, closed to new customers on 2026-07-30.
MODEL_MONITOR_TYPES = (
    "aws:sagemaker/dataQualityJobDefinition:DataQualityJobDefinition",
    "aws:sagemaker/modelQualityJobDefinition:ModelQualityJobDefinition",
    "aws:sagemaker/monitoringSchedule:MonitoringSchedule",
)


@pytest.fixture(scope="module")
def monitored() -> StackRun:
    return run_stack("prod", MONITORED)


def step_of(run: StackRun) -> dict[str, Any]:
    [step] = json.loads(run.one(PIPELINE).inputs["pipelineDefinition"])["Steps"]
    return dict(step)


def resolved(value: Any, execution_id: str = "exec-1") -> Any:
    """The definition as SageMaker Pipelines hands it to CreateProcessingJob: its two functions evaluated."""
    if isinstance(value, dict):
        if set(value) == {"Get"} and value["Get"] == "Execution.PipelineExecutionId":
            return execution_id
        if set(value) == {"Std:Join"}:
            return value["Std:Join"]["On"].join(str(resolved(v, execution_id)) for v in value["Std:Join"]["Values"])
        return {k: resolved(v, execution_id) for k, v in value.items()}
    if isinstance(value, list):
        return [resolved(v, execution_id) for v in value]
    return value


def flat_imports(files: tuple[str, ...]) -> set[str]:
    """The modules the job's files import that are neither stdlib nor the image's libraries."""
    found: set[str] = set()
    for name in files:
        for node in ast.walk(ast.parse((monitoring_job.ML / name).read_text())):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            found |= {m.split(".")[0] for m in modules}
    return found - set(sys.stdlib_module_names) - {"__future__", "boto3", "scipy", "numpy", "ml"}


def processing_request(run: StackRun, job_name: str = "pipelines-exec1-Monitor-a1b2c3") -> dict[str, Any]:
    return {"ProcessingJobName": job_name, **resolved(step_of(run)["Arguments"])}


def policy_of(run: StackRun, name: str) -> list[dict[str, Any]]:
    return list(json.loads(run.one("aws:iam/rolePolicy:RolePolicy", name).inputs["policy"])["Statement"])


def allows(statements: list[dict[str, Any]], action: str, resource: str) -> bool:
    def listed(value: Any) -> list[str]:
        return value if isinstance(value, list) else [value]

    return any(
        s["Effect"] == "Allow"
        and action in listed(s["Action"])
        and any(fnmatch.fnmatchcase(resource, pattern) for pattern in listed(s["Resource"]))
        for s in statements
    )


def test_the_step_is_a_create_processing_job_request_botocore_accepts(monitored: StackRun) -> None:
    step = step_of(monitored)
    assert step["Type"] == "Processing"
    assert not refusals("sagemaker", "CreateProcessingJob", processing_request(monitored))  # types, lengths, enums


def test_the_job_runs_the_projects_monitor_in_the_image_the_model_serves_in(monitored: StackRun) -> None:
    from ml.backends.sagemaker_jobs import sklearn_image_uri

    app = processing_request(monitored)["AppSpecification"]
    # The sagemaker SDK's own image table says which image that is in this region.
    assert app["ImageUri"] == sklearn_image_uri(REGION, CONFIG.framework.sagemaker_image_version, "ml.m5.large")
    assert app["ContainerEntrypoint"] == ["python3", "/opt/ml/processing/input/code/monitor_job.py"]
    # The job's own parser takes the arguments, and they carry mlops.toml's thresholds.
    args = monitor_job.parse_args(app["ContainerArguments"])
    assert (
        monitor_job.parse_args([*CONFIG.monitor.job_arguments(), "--capture", "x"]).__dict__
        | {
            "capture": args.capture,
            "ground_truth": args.ground_truth,
            "version": "4",
            "model_created_at": MONITORED["monitoring_model_created_at"],
            "namespace": names.metrics_namespace(PREFIX),
            "endpoint": names.endpoint_name(PREFIX, "prod"),
            "region": REGION,
        }
        == args.__dict__
    )


def test_the_job_reads_where_the_endpoint_captures_and_labels_land(monitored: StackRun) -> None:
    args = monitor_job.parse_args(processing_request(monitored)["AppSpecification"]["ContainerArguments"])
    endpoint = names.endpoint_name(PREFIX, "prod")
    config = monitored.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration").inputs
    # SageMaker writes capture under <destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/.
    assert args.capture == f"{config['dataCaptureConfig']['destinationS3Uri']}/{endpoint}/AllTraffic/"
    bucket = monitored.outputs["artifacts_bucket"]
    # Where `make label` puts ground truth (ml/backends/sagemaker_endpoint.py).
    assert args.ground_truth == f"s3://{bucket}/ground-truth/{endpoint}/"


def test_the_job_gets_the_promoted_models_baseline_and_its_own_code(monitored: StackRun) -> None:
    request = processing_request(monitored)
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in request["ProcessingInputs"]}
    bucket = monitored.outputs["artifacts_bucket"]
    prefix = monitoring_job.code_prefix()
    assert inputs == {
        "code": f"s3://{bucket}/{prefix}/",
        "statistics": MONITORED["monitoring_baseline_statistics"],
        "constraints": MONITORED["monitoring_baseline_constraints"],
        "evaluation": MONITORED["monitoring_evaluation"],
    }
    uploaded = {o.inputs["key"] for o in monitored.of_type("aws:s3/bucketObjectv2:BucketObjectv2")}
    assert uploaded == {f"{prefix}/{name}" for name in monitoring_job.JOB_FILES}
    # Every module of the project the job imports (flat, beside it in the container) is uploaded too.
    assert flat_imports(monitoring_job.JOB_FILES) <= {Path(name).stem for name in monitoring_job.JOB_FILES}
    # One report folder per run, encrypted like everything else.
    [output] = request["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["S3Uri"] == f"s3://{bucket}/monitoring/{names.endpoint_name(PREFIX, 'prod')}/exec-1"
    kms = monitored.outputs["kms_key_arn"]
    assert request["ProcessingOutputConfig"]["KmsKeyId"] == kms
    assert request["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == kms
    assert request["RoleArn"] == monitored.outputs["execution_role_arn"]


def test_changed_code_is_uploaded_under_a_new_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    before = monitoring_job.code_prefix()
    for name in monitoring_job.JOB_FILES:
        (tmp_path / name).write_bytes((monitoring_job.ML / name).read_bytes())
    (tmp_path / "monitor.py").write_text((tmp_path / "monitor.py").read_text() + "\n# changed\n")
    monkeypatch.setattr(monitoring_job, "ML", tmp_path)
    assert monitoring_job.code_prefix() != before


def test_the_schedule_starts_the_pipeline_as_a_role_that_may_only_do_that(monitored: StackRun) -> None:
    pipeline = monitored.one(PIPELINE)
    schedule = monitored.one(SCHEDULE).inputs
    assert schedule["scheduleExpression"] == monitored.settings.monitoring_schedule == "rate(1 hour)"
    target = schedule["target"]
    assert target["arn"] == pipeline.inputs["arn"]
    role = monitored.one("aws:iam/role:Role", "prod-monitor-scheduler")
    assert target["roleArn"] == role.inputs["arn"]
    assert json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Principal"] == {
        "Service": "scheduler.amazonaws.com"
    }
    queue = monitored.one("aws:sqs/queue:Queue")
    assert target["deadLetterConfig"] == {"arn": queue.inputs["arn"]}
    statements = policy_of(monitored, "prod-monitor-scheduler-policy")
    assert allows(statements, "sagemaker:StartPipelineExecution", pipeline.inputs["arn"])
    assert allows(statements, "sqs:SendMessage", queue.inputs["arn"])
    assert {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])} == {
        "sagemaker:StartPipelineExecution",
        "sqs:SendMessage",
        "kms:GenerateDataKey",
        "kms:Decrypt",
    }


def test_the_execution_role_may_run_the_step_and_publish_where_the_alarms_read(monitored: StackRun) -> None:
    statements = policy_of(monitored, "prod-sagemaker-execution-policy")
    account = PROJECT.account("prod")
    job = f"arn:aws:sagemaker:{REGION}:{account}:processing-job/pipelines-exec1-monitor-a1b2c3"
    assert allows(statements, "sagemaker:CreateProcessingJob", job)
    assert allows(statements, "iam:PassRole", monitored.outputs["execution_role_arn"])
    [publish] = [s for s in statements if s["Action"] == "cloudwatch:PutMetricData"]
    namespaces = publish["Condition"]["StringLike"]["cloudwatch:namespace"]
    alarms = [a.inputs for a in monitored.of_type(ALARM) if a.inputs["name"].startswith(f"{PREFIX}-prod-monitor-")]
    assert {a["namespace"] for a in alarms} == {names.metrics_namespace(PREFIX)}
    assert all(any(fnmatch.fnmatchcase(a["namespace"], n) for n in namespaces) for a in alarms)


def test_one_alarm_per_check_each_telling_the_alert_topic(monitored: StackRun) -> None:
    topic = monitored.one("aws:sns/topic:Topic").inputs["arn"]
    alarms = {a.inputs["metricName"]: a.inputs for a in monitored.of_type(ALARM)}
    for _, metric, _, _ in monitoring_job.SIGNALS:
        alarm = alarms[metric]
        assert alarm["namespace"] == names.metrics_namespace(PREFIX)
        assert alarm["dimensions"] == {"Endpoint": names.endpoint_name(PREFIX, "prod")}
        assert alarm["alarmActions"] == [topic]
    # The flags ml/monitor_job.py publishes are the ones alarmed on.
    assert set(monitor_job.FLAGS) | {"MonitorRuns"} == {metric for _, metric, _, _ in monitoring_job.SIGNALS}
    silent = alarms["MonitorRuns"]
    assert (silent["treatMissingData"], silent["comparisonOperator"], silent["evaluationPeriods"]) == (
        "breaching",
        "LessThanThreshold",
        2,
    )


def test_a_daily_schedule_stretches_the_alarm_periods() -> None:
    run = run_stack("prod", {**MONITORED, "monitoring_schedule": "rate(1 day)"})
    alarms = {a.inputs["metricName"]: a.inputs for a in run.of_type(ALARM)}
    assert alarms["MonitorRuns"]["period"] == alarms["Drift"]["period"] == 86400


def test_drift_quality_and_age_alarms_send_repository_dispatch_retrain(monitored: StackRun) -> None:
    destination = monitored.one("aws:cloudwatch/eventApiDestination:EventApiDestination").inputs
    assert destination["invocationEndpoint"] == f"https://api.github.com/repos/{PROJECT.github_repository}/dispatches"
    assert destination["httpMethod"] == "POST"
    connection = monitored.one("aws:cloudwatch/eventConnection:EventConnection").inputs
    assert connection["authorizationType"] == "API_KEY"
    pattern = json.loads(monitored.one("aws:cloudwatch/eventRule:EventRule").inputs["eventPattern"])
    alarm_names = {a.inputs["name"]: a.inputs["metricName"] for a in monitored.of_type(ALARM)}
    assert {alarm_names[name] for name in pattern["detail"]["alarmName"]} == {"Drift", "QualityDrop", "ModelTooOld"}
    assert pattern["detail"]["state"] == {"value": ["ALARM"]}
    target = monitored.one("aws:cloudwatch/eventTarget:EventTarget").inputs
    assert json.loads(target["input"]) == {
        "event_type": "retrain",
        "client_payload": {"environment": "prod", "reason": "monitoring"},
    }
    assert target["deadLetterConfig"] == {"arn": monitored.one("aws:sqs/queue:Queue").inputs["arn"]}
    role = monitored.one("aws:iam/role:Role", "prod-events-dispatch")
    assert target["roleArn"] == role.inputs["arn"]
    statements = policy_of(monitored, "prod-events-dispatch-policy")
    assert allows(statements, "events:InvokeApiDestination", destination["arn"])
    assert [s["Action"] for s in statements] == ["events:InvokeApiDestination"]


def test_the_dispatch_is_built_with_the_first_pulumi_up_not_by_a_promotion() -> None:
    # A stack file with the token but no model yet: the administrator's first `pulumi up`.
    run = run_stack("prod", {"github_dispatch_token": "secret-token"})
    assert run.of_type("aws:cloudwatch/eventConnection:EventConnection")
    assert not run.of_type(PIPELINE)
    # So the deploy role, which a promotion runs as, needs nothing of EventBridge or Secrets Manager.
    actions = {
        action
        for s in policy_of(run, "prod-github-deploy-policy")
        for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert not {a for a in actions if a.startswith(("events:", "secretsmanager:"))}


def test_the_deploy_role_may_create_and_update_the_monitoring_job(monitored: StackRun) -> None:
    statements = policy_of(monitored, "prod-github-deploy-policy")
    pipeline, schedule = monitored.one(PIPELINE).inputs["arn"], monitored.one(SCHEDULE).inputs["arn"]
    for action in ("CreatePipeline", "UpdatePipeline", "DescribePipeline", "DeletePipeline", "AddTags"):
        assert allows(statements, f"sagemaker:{action}", pipeline), action
    for action in ("CreateSchedule", "GetSchedule", "UpdateSchedule", "DeleteSchedule"):
        assert allows(statements, f"scheduler:{action}", schedule), action
    scheduler_role = monitored.one("aws:iam/role:Role", "prod-monitor-scheduler").inputs["arn"]
    assert allows(statements, "iam:PassRole", scheduler_role)
    bucket_arn = f"arn:aws:s3:::{monitored.outputs['artifacts_bucket']}"
    for code in monitored.of_type("aws:s3/bucketObjectv2:BucketObjectv2"):
        for action in ("s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:PutObjectTagging"):
            assert allows(statements, action, f"{bucket_arn}/{code.inputs['key']}"), action
    for alarm in monitored.of_type(ALARM):
        assert allows(statements, "cloudwatch:PutMetricAlarm", alarm.inputs["arn"]), alarm.inputs["name"]


@pytest.mark.parametrize(
    ("stack", "changes"),
    [
        # Whatever the stack file holds for real-time endpoints is dropped with the switch.
        ("staging", {**MONITORED, "endpoint_type": "serverless", **dict.fromkeys(REAL_TIME_ONLY)}),
        ("prod", {**MONITORED, "data_capture_percent": 0}),
        ("prod", {**MONITORED, "model_version": None}),
        ("prod", {**MONITORED, "monitoring_baseline_constraints": None}),
        ("prod", {**MONITORED, "monitoring_evaluation": None}),
    ],
    ids=["serverless", "no-capture", "no-model", "no-baseline", "no-evaluation"],
)
def test_no_monitoring_job_where_it_cannot_work(stack: str, changes: dict[str, Any]) -> None:
    run = run_stack(stack, changes)
    assert not run.of_type(PIPELINE)
    assert not run.of_type(SCHEDULE)
    assert "monitoring_pipeline" not in run.outputs


def test_no_model_monitor_resource_in_any_committed_stack_or_a_monitored_one(monitored: StackRun) -> None:
    runs = [monitored, *(run_stack(stack, {"model_version": 3}) for stack in ("dev", "staging", "prod"))]
    for run in runs:
        assert not [r.name for r in run.resources if r.type in MODEL_MONITOR_TYPES]


def test_monitoring_without_a_dispatch_token_names_the_key() -> None:
    with pytest.raises(StackConfigError, match=r"github_dispatch_token.*pulumi config set --secret"):
        run_stack("prod", {**MONITORED, "github_dispatch_token": None})


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [("cron(0 * * *)", "monitoring_schedule"), ("every hour", "monitoring_schedule"), ("rate(7 days)", "3 days")],
)
def test_a_bad_schedule_is_refused_by_name(schedule: str, problem: str) -> None:
    with pytest.raises(StackConfigError, match=problem):
        run_stack("prod", {**MONITORED, "monitoring_schedule": schedule})


def test_pipeline_output_names_the_pipeline(monitored: StackRun) -> None:
    assert monitored.outputs["monitoring_pipeline"] == f"{PREFIX}-prod-monitor"
    assert monitored.one(PIPELINE).inputs["roleArn"] == monitored.outputs["execution_role_arn"]
