"""`make batch` in AWS: a SageMaker Batch Transform job on the model the stack serves; and the
nightly batch's drift step.

moto plays the account and validates each request against botocore's model of the SageMaker API;
tests/aws/emulator.py plays the transform job with the model's own handlers, and the drift step's
processing job from the code Pulumi uploads. botocore's Stubber checks the job's request field by
field, and a failed job with its reason.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from infra.components.batch_schedule import DRIFT_STEP, SIGNALS, pipeline_name
from infra.mocks import StackRun, run_stack
from ml import names
from ml.__main__ import main
from ml.backends.sagemaker_batch import SageMakerBatchTransform, TransformSpec, transform_request
from ml.errors import JobFailedError
from tests.aws.emulator import Outcome
from tests.aws.iam_calls import Recorder, job_calls_judged
from tests.aws.steps import CONFIG, MODEL, run_steps, serve_in_stack, stack_values, upload_stack_code
from tests.aws_fixtures import Account
from tests.botocore_limits import input_shape, limit_violations
from tests.data_factory import csv_line, drifted_frame, example_frame, project_schema, write_csv
from tests.infra.test_monitoring_job import resolved

pytestmark = pytest.mark.xdist_group("aws-batch")
SCHEMA = project_schema()


@pytest.fixture(scope="module")
def served(aws_module: Account) -> Account:
    run_steps()  # v1 trained, registered Approved and promoted in dev
    serve_in_stack(aws_module, 1)
    return aws_module


def rows_of(path: Path) -> list[list[str]]:
    return list(csv.reader(path.open(newline="")))


def test_batch_in_aws_scores_with_the_stacks_model_and_writes_what_a_local_run_writes(
    served: Account, tmp_path: Path
) -> None:
    frame = example_frame().sample(n=120, random_state=1)
    source = write_csv(frame, tmp_path, "nightly.csv")
    lines = source.read_text().splitlines()
    lines[3] = ",".join(lines[3].split(",")[:-1])  # refused before it is sent: one value too few
    source.write_text("\n".join(lines) + "\n")
    assert main(["batch", "--input", str(source)]) == 0
    request = served.emulator.requests["transform"][-1]
    key = CONFIG.project.resource_prefix
    assert request["ModelName"] == MODEL and request["TransformJobName"].startswith(f"{key}-dev-batch-")
    assert request["Environment"] == {"MLOPS_REJECT_ROWS": "1"}
    kms = served.outputs["kms_key_arn"]
    assert request["TransformOutput"]["KmsKeyId"] == kms
    assert request["TransformResources"]["VolumeKmsKeyId"] == kms
    assert request["DataCaptureConfig"]["KmsKeyId"] == kms
    assert (request["BatchStrategy"], request["MaxPayloadInMB"]) == ("MultiRecord", CONFIG.batch.max_payload_mb)
    # Each uploaded line: its number, the other columns, then the features; an open range sends the
    # features alone (a list of their indices is longer than InputFilter's 63 characters).
    others = len(frame.columns) - len(SCHEMA.names)
    assert request["DataProcessing"]["InputFilter"] == f"$[{1 + others}:]"
    # No inference ids: they would append two columns to every answer line.
    assert request["DataCaptureConfig"]["GenerateInferenceId"] is False
    assert not limit_violations(request, input_shape("sagemaker", "CreateTransformJob"))
    summary = json.loads((tmp_path / "nightly.batch.json").read_text())
    assert (summary["version"], summary["transform_job"]) == (1, request["TransformJobName"])
    assert (summary["rows"], summary["scored"], summary["rejected"]) == (120, 119, 1)
    predictions = rows_of(tmp_path / "nightly.predictions.csv")
    assert predictions[0][: len(frame.columns)] == list(frame.columns)
    assert len(predictions) == 120 and all(row[len(frame.columns)] for row in predictions[1:])
    rejects = rows_of(tmp_path / "nightly.rejects.csv")
    assert [row[0] for row in rejects[1:]] == ["4"] and "values, the header" in rejects[1][-1]


def test_rows_the_container_refuses_come_back_with_the_containers_reason(served: Account, tmp_path: Path) -> None:
    frame = example_frame().sample(n=100, random_state=2).astype(object)
    numeric = next(f.name for f in SCHEMA.features if f.kind.value == "numeric")
    frame.iloc[5, list(frame.columns).index(numeric)] = "n/a"
    source = write_csv(frame, tmp_path, "in.csv")
    assert main(["batch", "--input", str(source)]) == 0
    rejects = rows_of(tmp_path / "in.rejects.csv")
    assert [row[0] for row in rejects[1:]] == ["7"]
    assert f"for {numeric!r}, where a number belongs" in rejects[1][-1]


def test_a_failed_transform_job_says_why_and_leaves_no_predictions(
    served: Account, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "1000")
    monkeypatch.setattr(served.emulator, "transform_outcome", Outcome("Failed", "ClientError: out of memory"))
    source = write_csv(example_frame().head(60), tmp_path, "in.csv")
    assert main(["batch", "--input", str(source)]) == 1
    assert "Failed: ClientError: out of memory" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_batch_refuses_when_the_stack_serves_another_version_than_the_desired_state(
    served: Account, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "1000")
    outputs = served.stack_dir.parent / "dev.json"
    before = outputs.read_text()
    outputs.write_text(json.dumps({**served.outputs, "model_version": "7"}))
    try:
        source = write_csv(example_frame().head(60), tmp_path, "in.csv")
        assert main(["batch", "--input", str(source)]) == 1
    finally:
        outputs.write_text(before)
    assert "applied v7, and the desired state names v1" in capsys.readouterr().out


# ---- the request, field by field, against botocore's model of the API ----


def spec() -> TransformSpec:
    return TransformSpec(
        job_name="p-dev-batch-20261201-000000-0a1b",
        model_name=MODEL,
        input_uri="s3://artifacts/batch/p-dev-batch-20261201-000000-0a1b/input/in.csv",
        output_uri="s3://artifacts/batch/p-dev-batch-20261201-000000-0a1b/output/",
        capture_uri="s3://artifacts/batch-capture/p-dev-batch-20261201-000000-0a1b/",
        kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/k",
        instance_type="ml.m5.large",
        max_payload_mb=6,
        input_filter="$[2:]",
        environment={"MLOPS_REJECT_ROWS": "1"},
        tags={"project": "p"},
    )


def stubbed(*statuses: dict[str, Any]) -> tuple[SageMakerBatchTransform, Stubber]:
    client = boto3.client("sagemaker", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    stubber.add_response("create_transform_job", {"TransformJobArn": "arn:x"}, transform_request(spec()))
    for status in statuses:
        stubber.add_response(
            "describe_transform_job",
            {
                "TransformJobName": spec().job_name,
                "TransformJobArn": "arn:x",
                "ModelName": MODEL,
                "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://a/b"}}},
                "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
                "CreationTime": "2026-12-01T00:00:00Z",
                **status,
            },
            {"TransformJobName": spec().job_name},
        )
    return SageMakerBatchTransform(client, poll_seconds=0), stubber


def test_a_filter_over_sagemakers_limit_is_refused_before_any_request() -> None:
    too_long = f"$[{','.join(str(i) for i in range(1, 31))}]"  # 30 feature columns by index
    assert limit_violations(
        transform_request(replace(spec(), input_filter="$[1:]")) | {"DataProcessing": {"InputFilter": too_long}},
        input_shape("sagemaker", "CreateTransformJob"),
    )  # botocore's model says 63 characters at most
    with pytest.raises(ValueError, match="longer than SageMaker's 63 characters"):
        transform_request(replace(spec(), input_filter=too_long))


def test_the_request_is_one_the_sagemaker_api_accepts_and_waits_for_completion() -> None:
    assert not limit_violations(transform_request(spec()), input_shape("sagemaker", "CreateTransformJob"))
    runner, stubber = stubbed({"TransformJobStatus": "InProgress"}, {"TransformJobStatus": "Completed"})
    with stubber:
        assert runner.run(spec())["TransformJobStatus"] == "Completed"
    stubber.assert_no_pending_responses()


def test_a_failed_job_raises_with_its_failure_reason() -> None:
    runner, stubber = stubbed(
        {"TransformJobStatus": "Failed", "FailureReason": "AlgorithmError: model_fn could not load the model"}
    )
    with stubber, pytest.raises(JobFailedError, match="Failed: AlgorithmError: model_fn could not load the model"):
        runner.run(spec())


# ---- the nightly batch's drift step (infra/components/batch_schedule.py) ----

PIPELINE = pipeline_name(CONFIG.project.resource_prefix, "dev")
NAMESPACE = names.metrics_namespace(CONFIG.project.resource_prefix)


@pytest.fixture(scope="module")
def recorder(served: Account) -> Recorder:
    return Recorder.on(served)


@pytest.fixture(scope="module")
def nightly(served: Account, recorder: Recorder) -> StackRun:
    """The dev stack as the promotion left it, with the nightly batch on over incoming/."""
    values = {**stack_values(served), "batch_schedule": "cron(0 2 * * ? *)",
              "batch_input": f"s3://{served.outputs['data_bucket']}/incoming/"}  # fmt: skip
    run = run_stack("dev", values)
    upload_stack_code(served, run)
    return run


def drift_run(aws: Account, stack: StackRun, rows: list[str], execution_id: str) -> dict[str, Any]:
    """Land one night's file, run the drift step as the pipeline would, and read its metrics and flags."""
    s3 = aws.client("s3")
    data = aws.outputs["data_bucket"]
    for item in s3.list_objects_v2(Bucket=data, Prefix="incoming/").get("Contents", []):
        s3.delete_object(Bucket=data, Key=item["Key"])  # scored files are moved away (README)
    s3.put_object(Bucket=data, Key="incoming/night.csv", Body=("\n".join(rows) + "\n").encode())
    [pipeline] = [p for p in stack.of_type("aws:sagemaker/pipeline:Pipeline") if p.inputs["pipelineName"] == PIPELINE]
    steps = {step["Name"]: step for step in json.loads(pipeline.inputs["pipelineDefinition"])["Steps"]}
    request = resolved(steps[DRIFT_STEP]["Arguments"], execution_id)
    started = datetime.now(UTC) - timedelta(seconds=1)
    aws.client("sagemaker").create_processing_job(ProcessingJobName=f"pipelines-{execution_id}-drift", **request)
    key = f"batch-monitoring/{PIPELINE}/{execution_id}/metrics.json"
    metrics = json.loads(s3.get_object(Bucket=aws.outputs["artifacts_bucket"], Key=key)["Body"].read())
    cloudwatch = aws.client("cloudwatch")
    flags = {}
    listed = cloudwatch.list_metrics(Namespace=NAMESPACE, Dimensions=[{"Name": "Batch", "Value": PIPELINE}])
    for metric in (m for m in listed["Metrics"] if len(m["Dimensions"]) == 1):
        data = cloudwatch.get_metric_statistics(
            Namespace=NAMESPACE, MetricName=metric["MetricName"], Dimensions=metric["Dimensions"],
            StartTime=started, EndTime=datetime.now(UTC) + timedelta(minutes=1), Period=60, Statistics=["Maximum"],
        )["Datapoints"]  # fmt: skip
        flags[metric["MetricName"]] = max(d["Maximum"] for d in data)  # this run's: it started after `started`
    return {"metrics": metrics, "flags": flags}


def test_the_nightly_drift_step_judges_the_landed_files_and_publishes_what_its_alarms_read(
    served: Account, nightly: StackRun
) -> None:
    frame = example_frame()
    clean = drift_run(served, nightly, [csv_line(row, SCHEMA.names) for _, row in frame.iterrows()], "night-1")
    assert (clean["metrics"]["rows"], clean["metrics"]["drift"]) == (len(frame), 0)
    assert clean["flags"]["Drift"] == clean["flags"]["UnreadableTraffic"] == 0.0
    moved = drifted_frame(frame, SCHEMA, 3.0)
    rows = [csv_line(row, SCHEMA.names) for _, row in moved.iterrows()]
    drifted = drift_run(served, nightly, rows, "night-2")
    assert drifted["metrics"]["drift"] == 1 and drifted["flags"]["Drift"] == 1.0
    # Each of the batch's alarms reads a flag the step published, under the dimension it publishes.
    alarms = {a.inputs["metricName"]: a.inputs for a in nightly.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
              if a.inputs.get("dimensions") == {"Batch": PIPELINE}}  # fmt: skip
    assert set(alarms) == {metric for _, metric, _ in SIGNALS} <= set(drifted["flags"])
    assert all(alarm["namespace"] == NAMESPACE for alarm in alarms.values())


def test_a_nightly_file_in_the_wrong_shape_is_reported_unreadable(served: Account, nightly: StackRun) -> None:
    rows = [csv_line(row, SCHEMA.names) for _, row in example_frame().iterrows()]
    run = drift_run(served, nightly, [",".join(row.split(",")[:-1]) for row in rows], "night-3")  # a column short
    assert run["flags"]["UnreadableTraffic"] == 1.0 and run["metrics"]["rows"] == 0


def test_the_drift_step_calls_only_what_the_execution_role_allows(
    served: Account, nightly: StackRun, recorder: Recorder
) -> None:
    rows = [csv_line(row, SCHEMA.names) for _, row in example_frame().iterrows()]
    recorder.calls.clear()
    drift_run(served, nightly, rows, "night-4")
    project = CONFIG.project
    actions, refused = job_calls_judged(recorder, nightly, served.outputs, project.aws_region, project.aws_account_id)
    assert "cloudwatch:PutMetricData" in actions
    assert not refused, "\n".join(refused)
