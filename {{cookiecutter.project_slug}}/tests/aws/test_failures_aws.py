"""Failure behaviour of the AWS path: failed and overrunning jobs, transient and fatal errors,
missing stack outputs and credentials, and the endpoint. botocore's Stubber checks each stubbed
request against the real service model, where moto lacks the state."""

from __future__ import annotations

import datetime
import io
import json
import time
from pathlib import Path
from typing import Any

import boto3
import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from ml.__main__ import main
from ml.backends import make_backends
from ml.backends.aws_session import RETRIES, make_session
from ml.backends.base import ModelPackage, ModelVersion, ProcessingSpec
from ml.backends.s3_artifacts import S3ArtifactStore
from ml.backends.sagemaker_endpoint import SageMakerEndpoint
from ml.backends.sagemaker_jobs import SageMakerJobRunner
from ml.config import PROJECT_ROOT, load_config
from ml.errors import ConfigError, EndpointError, JobFailedError
from ml.stack_outputs import StackOutputs, load_stack_outputs
from tests.aws_fixtures import Account

REGION = load_config().project.aws_region


def arn(resource: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:123456789012:{resource}"


OUTPUTS = StackOutputs(
    region=REGION,
    data_bucket="d",
    artifacts_bucket="a",
    kms_key_arn=f"arn:aws:kms:{REGION}:123456789012:key/k",
    execution_role_arn="arn:aws:iam::123456789012:role/r",
    model_package_group="g",
)


def stubbed(service: str) -> tuple[Any, Stubber]:
    client = boto3.client(service, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    stubber.activate()
    return client, stubber


def evaluation_spec(max_runtime: int = 900) -> ProcessingSpec:
    entry = PROJECT_ROOT / "ml" / "evaluate.py"
    return ProcessingSpec(
        "tc-dev-eval-1", entry, (entry,), {"model": "s3://a/m"}, ("evaluation",), ("--label", "y"), max_runtime
    )


def processing_description(status: str, **extra: str) -> dict[str, Any]:
    """A DescribeProcessingJob answer that botocore's model accepts."""
    return {
        "ProcessingJobName": "tc-dev-eval-1",
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30}
        },
        "AppSpecification": {"ImageUri": "img"},
        "ProcessingJobArn": arn("processing-job/tc-dev-eval-1"),
        "CreationTime": datetime.datetime(2026, 1, 1),
        "ProcessingJobStatus": status,
        **extra,
    }


class NoUploads:
    """An artifact store for runner tests whose S3 side is not under test."""

    def put_at(self, path: Path, key: str) -> str:
        return f"s3://a/{key}"


def test_a_failed_processing_job_reports_its_reason(tmp_path: Path) -> None:
    client, stubber = stubbed("sagemaker")
    stubber.add_response(
        "create_processing_job",
        {"ProcessingJobArn": "arn:aws:sagemaker:x:1:processing-job/tc-dev-eval-1"},
        expected_params={
            "ProcessingJobName": "tc-dev-eval-1",
            "RoleArn": OUTPUTS.execution_role_arn,
            "AppSpecification": ANY,
            "ProcessingInputs": ANY,
            "ProcessingOutputConfig": {"Outputs": ANY, "KmsKeyId": OUTPUTS.kms_key_arn},
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                    "VolumeSizeInGB": 30,
                    "VolumeKmsKeyId": OUTPUTS.kms_key_arn,
                }
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 900},
            "Tags": [],
        },
    )
    stubber.add_response("describe_processing_job", processing_description("InProgress"))
    stubber.add_response(
        "describe_processing_job", processing_description("Failed", FailureReason="ClientError: no test CSV")
    )
    runner = SageMakerJobRunner(None, client, NoUploads(), OUTPUTS, lambda: "img", poll_seconds=0)  # type: ignore[arg-type]
    with pytest.raises(JobFailedError, match="tc-dev-eval-1 Failed: ClientError: no test CSV"):
        runner.process(evaluation_spec())
    stubber.assert_no_pending_responses()


def test_a_processing_job_past_its_deadline_is_stopped() -> None:
    client, stubber = stubbed("sagemaker")
    stubber.add_response("create_processing_job", {"ProcessingJobArn": arn("processing-job/tc-dev-eval-1")})
    stubber.add_response("describe_processing_job", processing_description("InProgress"))
    stubber.add_response("stop_processing_job", {}, expected_params={"ProcessingJobName": "tc-dev-eval-1"})
    # A negative grace puts the deadline in the past, so the first InProgress answer is already late.
    runner = SageMakerJobRunner(None, client, NoUploads(), OUTPUTS, lambda: "img", poll_seconds=0, grace_seconds=-2)  # type: ignore[arg-type]
    with pytest.raises(JobFailedError, match="did not finish in time and was stopped"):
        runner.process(evaluation_spec(max_runtime=1))
    stubber.assert_no_pending_responses()


class _Raw:
    """The raw HTTP body botocore reads an injected response from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


class Flaky:
    """Answers the first `failures` matching S3 requests with an error, before they reach moto."""

    def __init__(self, status: int, code: str, failures: int, key_suffix: str = "", key_part: str = "") -> None:
        self.status, self.code, self.failures = status, code, failures
        self.key_suffix, self.key_part = key_suffix, key_part
        self.attempts = 0

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        path = request.url.split("?")[0]
        if request.method != "PUT" or not path.endswith(self.key_suffix) or self.key_part not in path:
            return None
        self.attempts += 1
        if self.attempts > self.failures:
            return None
        body = f"<Error><Code>{self.code}</Code><Message>injected</Message></Error>".encode()
        return AWSResponse(request.url, self.status, {}, _Raw(body))


class Sleeps:
    """Stands in for the `time` module botocore's endpoint sleeps with between retries: records, never waits."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def test_transient_s3_errors_are_retried_with_backoff(
    aws: Account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps = Sleeps()
    monkeypatch.setattr(botocore.endpoint, "time", sleeps)
    flaky = Flaky(503, "SlowDown", failures=2)
    aws.session.events.register("before-send.s3.PutObject", flaky)
    s3 = aws.session.client("s3", config=RETRIES)
    store = S3ArtifactStore(s3, aws.outputs["artifacts_bucket"], aws.outputs["kms_key_arn"])
    path = tmp_path / "train.csv"
    path.write_text("a\n1\n")
    assert store.exists(store.put(path))
    assert flaky.attempts == 3  # two throttled attempts, then success
    # Each retry waited first, as botocore's backoff decided: jittered, capped at 20 s in standard mode.
    assert len(sleeps.delays) == 2 and all(0 <= delay <= 20 for delay in sleeps.delays)
    # botocore's standard mode; its max_attempts counts retries, so up to 9 attempts in all.
    assert RETRIES.retries is not None and RETRIES.retries["mode"] == "standard"


def test_an_error_part_way_leaves_no_package_without_artifacts(aws: Account) -> None:
    # Storing the evaluation under its content hash fails for good (AccessDenied is not retried):
    # the model is already uploaded, and still nothing is registered.
    denied = Flaky(403, "AccessDenied", failures=1000, key_suffix="evaluation.json", key_part="/sha256/")
    aws.session.events.register("before-send.s3.PutObject", denied)
    assert main(["pipeline"]) == 1
    client = aws.client("sagemaker")
    assert (
        client.list_model_packages(ModelPackageGroupName=aws.outputs["model_package_group"])["ModelPackageSummaryList"]
        == []
    )
    assert denied.attempts == 1
    summary = json.loads((load_config().state_dir / "summary.json").read_text())
    assert "uploading evaluation.json" in summary["error"] and "AccessDenied" in summary["error"]


def test_missing_stack_outputs_say_which_command_to_run(
    aws: Account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_STACK_OUTPUTS", str(tmp_path / "none.json"))
    with pytest.raises(ConfigError, match=r"make stack-outputs MLOPS_ENV=dev.*pulumi stack output --stack dev --json"):
        load_stack_outputs(load_config())
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"region": REGION, "data_bucket": "d"}))
    monkeypatch.setenv("MLOPS_STACK_OUTPUTS", str(partial))
    with pytest.raises(ConfigError, match=r"lacks stack output.*artifacts_bucket.*kms_key_arn"):
        make_backends(load_config())
    assert main(["status"]) == 1


def test_unreachable_credentials_say_how_to_get_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ConfigError, match=r"aws sso login.*role-to-assume.*deploy_role_arn"):
        make_session(REGION, "dev")


def endpoint_describes(stubber: Stubber, version: int, status: str = "InService") -> None:
    now = datetime.datetime(2026, 1, 1)
    stubber.add_response(
        "describe_endpoint",
        {"EndpointName": "tc-dev", "EndpointArn": arn("endpoint/tc-dev"), "EndpointConfigName": "tc-dev-config-1",
         "EndpointStatus": status, "CreationTime": now, "LastModifiedTime": now},
        expected_params={"EndpointName": "tc-dev"},
    )  # fmt: skip
    stubber.add_response(
        "describe_endpoint_config",
        {"EndpointConfigName": "tc-dev-config-1", "EndpointConfigArn": arn("endpoint-config/tc-dev-config-1"), "CreationTime": now,
         "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "tc-dev-model-1"}]},
        expected_params={"EndpointConfigName": "tc-dev-config-1"},
    )  # fmt: skip
    stubber.add_response(
        "describe_model",
        {"ModelName": "tc-dev-model-1", "ModelArn": arn("model/tc-dev-model-1"), "CreationTime": now,
         "PrimaryContainer": {"ModelPackageName": f"arn:aws:sagemaker:{REGION}:1:model-package/g/{version}"}},
        expected_params={"ModelName": "tc-dev-model-1"},
    )  # fmt: skip


def version(number: int) -> ModelVersion:
    return ModelVersion(number, "g", "now", ModelPackage("s3://a/m", "s3://a/e", "f", "Approved", {}, {}))


def test_the_endpoint_reports_the_version_it_serves_and_deploy_is_a_no_op_when_current(tmp_path: Path) -> None:
    sagemaker, stubber = stubbed("sagemaker")
    endpoint = SageMakerEndpoint(sagemaker, None, "tc-dev", "dev", tmp_path)
    endpoint_describes(stubber, 4)
    status = endpoint.status()
    assert status is not None and (status.version, status.healthy) == (4, True)
    endpoint_describes(stubber, 4)
    assert endpoint.deploy(version(4)).version == 4
    stubber.assert_no_pending_responses()


def test_deploying_a_new_version_needs_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sagemaker, stubber = stubbed("sagemaker")
    endpoint_describes(stubber, 4)
    monkeypatch.setenv("PATH", str(tmp_path))  # no pulumi CLI here
    with pytest.raises(EndpointError, match=r"Pulumi CLI is not on PATH.*pulumi up --stack dev"):
        SageMakerEndpoint(sagemaker, None, "tc-dev", "dev", tmp_path).deploy(version(5))


def test_a_missing_endpoint_has_no_status(tmp_path: Path) -> None:
    sagemaker, stubber = stubbed("sagemaker")
    stubber.add_client_error("describe_endpoint", "ValidationException", 'Could not find endpoint "tc-dev".')
    assert SageMakerEndpoint(sagemaker, None, "tc-dev", "dev", tmp_path).status() is None


def test_invoke_reports_the_containers_answer_and_where_its_log_is(tmp_path: Path) -> None:
    runtime, stubber = stubbed("sagemaker-runtime")
    stubber.add_response(
        "invoke_endpoint",
        {"Body": StreamingBody(io.BytesIO(b'{"predictions": []}'), 19), "ContentType": "application/json"},
        expected_params={
            "EndpointName": "tc-dev",
            "Body": b"1,2\n",
            "ContentType": "text/csv",
            "Accept": "application/json",
        },
    )
    # What InvokeEndpoint answers when the container raised: a ModelError (HTTP 424) carrying the
    # container's own status, which the scikit-learn container sets to 500 for every handler error
    # (tests/test_container_parity.py in the template), and the log stream to read.
    stream = f"arn:aws:logs:{REGION}:123456789012:log-group:/aws/sagemaker/Endpoints/tc-dev"
    stubber.add_client_error(
        "invoke_endpoint",
        "ModelError",
        "Received server error (500) from primary with message ...",
        http_status_code=424,
        response_meta={"OriginalStatusCode": 500},
        modeled_fields={"OriginalStatusCode": 500, "LogStreamArn": stream},
    )
    endpoint = SageMakerEndpoint(None, runtime, "tc-dev", "dev", tmp_path)
    assert endpoint.invoke(b"1,2\n", "text/csv", "application/json") == b'{"predictions": []}'
    with pytest.raises(EndpointError, match=r"answered HTTP 500.*container's log has the reason: arn:aws:logs"):
        endpoint.invoke(b"1,2\n", "text/csv", "application/json")
