"""A SageMaker job's log lines reach the run's output while it runs: CloudWatch Logs under moto, in
the log group and streams SageMaker writes (<group>/<job name>/algo-<n>-<epoch>), and SageMaker's
answers from botocore's Stubber, checked against its model."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest
from botocore.stub import ANY
from moto import mock_aws

from ml.backends import sagemaker_jobs
from ml.backends.job_logs import GROUPS, JobLogs
from ml.backends.sagemaker_jobs import SageMakerJobRunner
from ml.errors import JobFailedError
from tests.aws.test_failures_aws import (
    OUTPUTS,
    REGION,
    NoUploads,
    arn,
    evaluation_spec,
    processing_description,
    stubbed,
)

JOB = "tc-dev-eval-1"


def _write(logs: Any, stream: str, lines: list[str]) -> None:
    now = int(time.time() * 1000)
    events = [{"timestamp": now + i, "message": line} for i, line in enumerate(lines)]
    logs.put_log_events(logGroupName=GROUPS["processing"], logStreamName=stream, logEvents=events)


def _runner(sagemaker: Any, logs: Any, said: list[str]) -> SageMakerJobRunner:
    return SageMakerJobRunner(None, sagemaker, NoUploads(), OUTPUTS, lambda: "img", poll_seconds=0,  # type: ignore[arg-type]
                              logs=JobLogs(logs, said.append))  # fmt: skip


def test_each_log_line_of_a_running_job_is_printed_once_as_it_arrives() -> None:
    with mock_aws():
        logs = boto3.client("logs", region_name=REGION)
        logs.create_log_group(logGroupName=GROUPS["processing"])
        stream = f"{JOB}/algo-1-1767225600"
        logs.create_log_stream(logGroupName=GROUPS["processing"], logStreamName=stream)
        _write(logs, stream, ["reading the test channel", "scoring 142 rows"])
        said: list[str] = []
        sagemaker, stubber = stubbed("sagemaker")
        stubber.add_response("create_processing_job", {"ProcessingJobArn": arn(f"processing-job/{JOB}")}, {
            "ProcessingJobName": JOB, "RoleArn": ANY, "AppSpecification": ANY, "ProcessingInputs": ANY,
            "ProcessingOutputConfig": ANY, "ProcessingResources": ANY, "StoppingCondition": ANY, "Tags": ANY})  # fmt: skip
        stubber.add_response("describe_processing_job", processing_description("InProgress"))
        stubber.add_response("describe_processing_job", processing_description("InProgress"))
        stubber.add_response(
            "describe_processing_job", processing_description("Failed", FailureReason="AlgorithmError: exit 1")
        )
        runner = _runner(sagemaker, logs, said)
        # A line that arrives between two polls (and a stream of another job, which is not this one's).
        original = runner._logs.follow  # type: ignore[union-attr]

        def follow_then_write(kind: str, name: str, created_ms: int = 0) -> int:
            printed = original(kind, name, created_ms)
            if len(said) == 2:
                _write(logs, stream, ["Traceback (most recent call last): ..."])
            return printed

        logs.create_log_stream(logGroupName=GROUPS["processing"], logStreamName="tc-dev-eval-10/algo-1-1")
        _write(logs, "tc-dev-eval-10/algo-1-1", ["another job's line"])
        runner._logs.follow = follow_then_write  # type: ignore[method-assign, union-attr]
        with pytest.raises(JobFailedError, match="AlgorithmError"):
            runner.process(evaluation_spec())
    assert said == [
        f"  [{JOB}] reading the test channel",
        f"  [{JOB}] scoring 142 rows",
        f"  [{JOB}] Traceback (most recent call last): ...",
    ]


def test_a_finished_job_is_read_once_more_after_cloudwatchs_ingest_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last lines (a failed job's traceback) reach CloudWatch a moment after the job ends: the runner
    waits LAST_LINES_SECONDS, then reads again. The shared AWS account (tests/aws_fixtures.py) skips the
    pause, since moto holds a line the moment it is put; this is the test that keeps it."""
    sagemaker, stubber = stubbed("sagemaker")
    logs, logs_stubber = stubbed("logs")
    stubber.add_response("create_processing_job", {"ProcessingJobArn": arn(f"processing-job/{JOB}")})
    stubber.add_response("describe_processing_job", processing_description("Failed", FailureReason="exit 1"))
    logs_stubber.add_response("filter_log_events", _page([("e1", "scoring 142 rows")]))
    logs_stubber.add_response("filter_log_events", _page([("e2", "Traceback (most recent call last): ...")]))
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    said: list[str] = []
    runner = SageMakerJobRunner(None, sagemaker, NoUploads(), OUTPUTS, lambda: "img", logs=JobLogs(logs, said.append))  # type: ignore[arg-type]
    with pytest.raises(JobFailedError, match="Failed: exit 1"):
        runner.process(evaluation_spec())
    assert slept == [sagemaker_jobs.LAST_LINES_SECONDS] and sagemaker_jobs.LAST_LINES_SECONDS > 0
    assert said == [f"  [{JOB}] scoring 142 rows", f"  [{JOB}] Traceback (most recent call last): ..."]
    logs_stubber.assert_no_pending_responses()


def test_logs_the_caller_may_not_read_are_named_once_and_the_job_still_finishes() -> None:
    sagemaker, stubber = stubbed("sagemaker")
    logs, logs_stubber = stubbed("logs")
    logs_stubber.add_client_error("filter_log_events", "AccessDeniedException", "not authorized to FilterLogEvents")
    stubber.add_response("create_processing_job", {"ProcessingJobArn": arn(f"processing-job/{JOB}")})
    for status in ("InProgress", "InProgress"):
        stubber.add_response("describe_processing_job", processing_description(status))
    stubber.add_response("describe_processing_job", processing_description("Failed", FailureReason="exit 1"))
    said: list[str] = []
    runner = _runner(sagemaker, logs, said)
    with pytest.raises(JobFailedError, match="Failed: exit 1"):  # the job's own end, reported as ever
        runner.process(evaluation_spec())
    assert (
        len(said) == 1 and "AccessDeniedException" in said[0] and f"{GROUPS['processing']}, streams {JOB}/*" in said[0]
    )
    logs_stubber.assert_no_pending_responses()


def test_a_job_that_has_written_nothing_yet_prints_nothing() -> None:
    with mock_aws():
        logs = boto3.client("logs", region_name=REGION)
        said: list[str] = []
        assert JobLogs(logs, said.append).follow("training", "tc-dev-train-1") == 0  # no log group yet
    assert said == []


def _page(events: list[tuple[str, str]], token: str | None = None) -> dict[str, Any]:
    page: dict[str, Any] = {
        "events": [
            {"logStreamName": f"{JOB}/algo-1-1", "timestamp": 1_767_225_600_000 + i, "message": m, "eventId": e}
            for i, (e, m) in enumerate(events)
        ],
        "searchedLogStreams": [],
    }
    if token:
        page["nextToken"] = token
    return page


def test_an_empty_page_with_a_next_token_is_not_the_end_of_the_log() -> None:
    """FilterLogEvents may answer an empty page and a nextToken (its API reference): read on."""
    logs, stubber = stubbed("logs")
    expected = {"logGroupName": GROUPS["processing"], "logStreamNamePrefix": f"{JOB}/", "startTime": 1_767_225_000_000}
    stubber.add_response("filter_log_events", _page([], token="t1"), expected)
    stubber.add_response("filter_log_events", _page([("e1", "scoring 142 rows")]), {**expected, "nextToken": "t1"})
    said: list[str] = []
    assert JobLogs(logs, said.append).follow("processing", JOB, created_ms=1_767_225_000_000) == 1
    assert said == [f"  [{JOB}] scoring 142 rows"]
    stubber.assert_no_pending_responses()


def test_a_throttled_read_is_retried_at_the_next_poll_not_given_up() -> None:
    logs, stubber = stubbed("logs")
    stubber.add_client_error("filter_log_events", "ThrottlingException", "Rate exceeded")
    stubber.add_response("filter_log_events", _page([("e1", "training...")]))
    said: list[str] = []
    follower = JobLogs(logs, said.append)
    assert follower.follow("processing", JOB) == 0 and said == []
    assert follower.follow("processing", JOB) == 1 and said == [f"  [{JOB}] training..."]
    stubber.assert_no_pending_responses()
