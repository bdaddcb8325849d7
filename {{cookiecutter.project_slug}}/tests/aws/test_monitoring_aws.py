"""The AWS monitoring job, run against moto: S3 capture and ground truth in, report and metrics out.

The steps train, register and promote a model in moto; the stack file that `make promote` wrote
is run through the Pulumi program under mocks; the monitoring pipeline's one step is then sent
to (moto's) SageMaker as the CreateProcessingJob request SageMaker Pipelines would make, and the
emulator runs the job from the code Pulumi uploads. Traffic is served by the model's own
handlers in the local endpoint's WSGI application, which writes SageMaker's capture format.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from infra.components.monitoring_job import SIGNALS
from infra.mocks import StackRun, run_stack
from ml import names
from ml.__main__ import changed_label
from ml.backends.sagemaker_endpoint import SageMakerEndpoint
from ml.serving import BackgroundCapture, ContainerApp, DataCapture, unpack
from ml.steps.monitor import ground_truth_records
from tests.aws.iam_calls import Recorder, job_calls_judged
from tests.aws.steps import CONFIG, packages, run_steps, stack_values, upload_stack_code
from tests.aws_fixtures import Account
from tests.data_factory import csv_line, drifted_frame, example_frame, project_schema, schema_label_text

SCHEMA = project_schema()

pytestmark = pytest.mark.xdist_group("aws-monitoring")
PREFIX = CONFIG.project.resource_prefix
ENDPOINT = names.endpoint_name(PREFIX, "dev")
NAMESPACE = names.metrics_namespace(PREFIX)


@pytest.fixture(scope="module")
def recorder(aws_module: Account) -> Recorder:
    return Recorder.on(aws_module)


@pytest.fixture(scope="module")
def promoted(aws_module: Account, recorder: Recorder) -> Account:
    run_steps()
    return aws_module


@pytest.fixture(scope="module")
def stack(promoted: Account) -> StackRun:
    """The dev stack as the promotion left it, with a real-time endpoint that captures."""
    values = stack_values(promoted)
    assert values["monitoring_evaluation"].startswith("s3://"), "make promote did not write the model's evaluation"
    overrides = {"endpoint_type": "real-time", "instance_count": 1, "data_capture_percent": 100,
                 "github_dispatch_token": "token"}  # fmt: skip
    run = run_stack("dev", {**values, **overrides})
    upload_stack_code(promoted, run)
    return run


def resolved(value: Any, execution_id: str) -> Any:
    """The step's arguments as SageMaker Pipelines evaluates them for one execution."""
    if isinstance(value, dict):
        if value == {"Get": "Execution.PipelineExecutionId"}:
            return execution_id
        if set(value) == {"Std:Join"}:
            return value["Std:Join"]["On"].join(str(resolved(v, execution_id)) for v in value["Std:Join"]["Values"])
        return {k: resolved(v, execution_id) for k, v in value.items()}
    if isinstance(value, list):
        return [resolved(v, execution_id) for v in value]
    return value


def model(aws: Account, tmp_path: Path) -> ContainerApp:
    """The promoted version's model.tar.gz, served by the local endpoint's WSGI application, capturing."""
    (package,) = packages(aws)
    uri = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    bucket, key = uri[5:].split("/", 1)
    tarball = tmp_path / "model.tar.gz"
    aws.client("s3").download_file(bucket, key, str(tarball))
    capture = BackgroundCapture(DataCapture(tmp_path / "capture", ENDPOINT), lambda stats: None)
    return ContainerApp(unpack(tarball, tmp_path / "model"), capture, 10.0)


def invoke(app: ContainerApp, row: str, inference_id: str) -> str:
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    body = f"{row}\n".encode()
    environ.update(REQUEST_METHOD="POST", PATH_INFO="/invocations", CONTENT_TYPE="text/csv",
                   CONTENT_LENGTH=str(len(body)), HTTP_ACCEPT="application/json",
                   HTTP_X_AMZN_SAGEMAKER_INFERENCE_ID=inference_id, **{"wsgi.input": io.BytesIO(body)})  # fmt: skip
    statuses: list[str] = []
    answer = b"".join(app(environ, lambda status, headers: statuses.append(status)))
    assert statuses == ["200 OK"], answer
    return str(json.loads(answer)["predictions"][0])


def traffic(aws: Account, tmp_path: Path, shift: float, wrong_labels: float, run_id: str) -> None:
    """Serve the example rows (shifted by `shift` standard deviations), upload capture and labels."""
    app = model(aws, tmp_path)
    frame = example_frame()
    moved = drifted_frame(frame, SCHEMA, shift) if shift else frame
    truths = [{SCHEMA.label: schema_label_text(v)} for v in frame[SCHEMA.label]]
    labels = []
    for number, (_, row) in enumerate(moved.iterrows()):
        inference_id = f"{run_id}-{number}"
        invoke(app, csv_line(row, SCHEMA.names), inference_id)
        wrong = number % 100 < wrong_labels * 100
        truth = truths[number][SCHEMA.label]
        labels.append((inference_id, changed_label(SCHEMA, truth, truths) if wrong else truth))
    assert app.capture is not None
    app.capture.close()  # as a worker exits: what is queued is written
    assert app.capture.stats["captured"] == len(frame), app.capture.stats
    s3 = aws.client("s3")
    bucket = aws.outputs["artifacts_bucket"]
    for path in sorted((tmp_path / "capture").rglob("*.jsonl")):
        # As the endpoint's DataCaptureConfig writes it: s3://<bucket>/data-capture/<endpoint>/AllTraffic/...
        s3.upload_file(str(path), bucket, f"data-capture/{path.relative_to(tmp_path / 'capture').as_posix()}")
    # As `make label` writes it in AWS (ml/backends/sagemaker_endpoint.py).
    endpoint = SageMakerEndpoint(
        aws.client("sagemaker"), aws.client("sagemaker-runtime"), ENDPOINT, "dev", aws.stack_dir,
        s3_client=s3, capture_uri=f"s3://{bucket}/data-capture/{ENDPOINT}",
    )  # fmt: skip
    label_file = tmp_path / "labels.jsonl"
    label_file.write_text("\n".join(ground_truth_records(labels)) + "\n")
    endpoint.record_ground_truth(label_file, datetime.now(UTC).strftime("%Y/%m/%d/%H"))


def run_job(aws: Account, stack: StackRun, execution_id: str) -> dict[str, Any]:
    [step] = json.loads(stack.one("aws:sagemaker/pipeline:Pipeline").inputs["pipelineDefinition"])["Steps"]
    request = resolved(step["Arguments"], execution_id)
    aws.client("sagemaker").create_processing_job(ProcessingJobName=f"pipelines-{execution_id}-monitor", **request)
    return dict(request)


def report(aws: Account, execution_id: str) -> dict[str, bytes]:
    s3 = aws.client("s3")
    bucket = aws.outputs["artifacts_bucket"]
    prefix = f"monitoring/{ENDPOINT}/{execution_id}/"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"][len(prefix) :]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def published(aws: Account) -> dict[str, float]:
    """The latest value of every metric the job published in the project's namespace."""
    cloudwatch = aws.client("cloudwatch")
    values = {}
    for metric in cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"]:
        dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
        assert dimensions.get("Endpoint") == ENDPOINT, metric
        name = metric["MetricName"] + (f"/{dimensions['Feature']}" if "Feature" in dimensions else "")
        data = cloudwatch.get_metric_statistics(
            Namespace=NAMESPACE, MetricName=metric["MetricName"], Dimensions=metric["Dimensions"],
            StartTime=datetime(2020, 1, 1, tzinfo=UTC), EndTime=datetime(2100, 1, 1, tzinfo=UTC), Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]  # fmt: skip
        values[name] = max(d["Maximum"] for d in data)
    return values


@dataclass(frozen=True)
class Run:
    request: dict[str, Any]
    files: dict[str, bytes]
    metrics: dict[str, float]

    @property
    def checks(self) -> set[str]:
        violations = json.loads(self.files["constraint_violations.json"])["violations"]
        return {v["constraint_check_type"] for v in violations}


@pytest.fixture(scope="module")
def healthy(promoted: Account, stack: StackRun, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Clean traffic whose labels agree with the data set."""
    traffic(promoted, tmp_path_factory.mktemp("healthy"), shift=0.0, wrong_labels=0.0, run_id="healthy")
    request = run_job(promoted, stack, "exec-healthy")
    return Run(request, report(promoted, "exec-healthy"), published(promoted))


@pytest.fixture(scope="module")
def drifted(healthy: Run, promoted: Account, stack: StackRun, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Then as much traffic again, shifted by three standard deviations, two labels in five wrong."""
    traffic(promoted, tmp_path_factory.mktemp("drifted"), shift=3.0, wrong_labels=0.4, run_id="drifted")
    request = run_job(promoted, stack, "exec-drifted")
    return Run(request, report(promoted, "exec-drifted"), published(promoted))


def test_healthy_traffic_passes_and_says_so_in_its_metrics(healthy: Run) -> None:
    assert healthy.checks == set()
    assert healthy.metrics["Drift"] == healthy.metrics["QualityDrop"] == healthy.metrics["UnreadableTraffic"] == 0.0
    assert healthy.metrics["MonitorRuns"] == 1.0
    window = json.loads(healthy.files["metrics.json"])
    assert window["rows"] == len(example_frame())  # read from S3, a line at a time


def test_drifted_traffic_and_wrong_labels_are_reported_and_published(drifted: Run) -> None:
    assert {"constraint_violations.json", "metrics.json", "report.md"} <= set(drifted.files)
    assert any(name.startswith("plots/") and name.endswith(".svg") for name in drifted.files)
    assert {"baseline_drift_check", "model_quality_check"} <= drifted.checks
    assert drifted.metrics["Drift"] == drifted.metrics["QualityDrop"] == 1.0
    assert {f"FeatureDriftScore/{feature}" for feature in SCHEMA.names} <= set(drifted.metrics)


def test_every_monitoring_alarm_reads_a_metric_the_job_publishes(drifted: Run, stack: StackRun) -> None:
    alarms = [a.inputs for a in stack.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")]
    ours = [a for a in alarms if a["namespace"] == NAMESPACE]
    assert {a["metricName"] for a in ours} == {metric for _, metric, _, _ in SIGNALS}
    for alarm in ours:
        assert alarm["metricName"] in drifted.metrics, alarm["name"]
        assert alarm["dimensions"] == {"Endpoint": ENDPOINT}, alarm["name"]


def test_the_job_calls_only_what_the_execution_role_allows(
    drifted: Run, promoted: Account, stack: StackRun, recorder: Recorder
) -> None:
    """The monitoring job reads S3 and publishes metrics as the execution role the pipeline runs it as."""
    project = CONFIG.project
    actions, refused = job_calls_judged(recorder, stack, promoted.outputs, project.aws_region, project.aws_account_id)
    assert {"cloudwatch:PutMetricData", "s3:GetObject", "s3:ListBucket"} <= actions
    assert not refused, "\n".join(refused)


def test_each_run_reports_into_its_own_folder(healthy: Run, drifted: Run) -> None:
    for run, execution in ((healthy, "exec-healthy"), (drifted, "exec-drifted")):
        [output] = run.request["ProcessingOutputConfig"]["Outputs"]
        assert output["S3Output"]["S3Uri"].endswith(f"/monitoring/{ENDPOINT}/{execution}")
    assert healthy.files["report.md"] != drifted.files["report.md"]
