"""A SageMaker job's own log lines, printed while it runs, so a long job is never a silent spinner.

SageMaker writes a job's stdout and stderr to CloudWatch Logs: log group /aws/sagemaker/TrainingJobs
or /aws/sagemaker/ProcessingJobs, one stream per instance named <job name>/algo-<n>-<epoch>
(SageMaker Developer Guide, "Log Amazon SageMaker AI events with Amazon CloudWatch"). Each poll
reads what arrived since the last one; a line is printed once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

GROUPS = {"training": "/aws/sagemaker/TrainingJobs", "processing": "/aws/sagemaker/ProcessingJobs"}
SEEN_LIMIT = 10_000  # event ids remembered per job, for the overlap between two polls
PAGES_PER_POLL = 20  # FilterLogEvents may answer empty pages with a nextToken; the rest waits a poll
TRANSIENT = {"ThrottlingException", "ServiceUnavailableException", "RequestExpired"}


class JobLogs:
    def __init__(self, logs_client: Any, say: Callable[[str], None] = lambda line: print(line, flush=True)) -> None:
        self._logs = logs_client
        self._say = say
        self._since: dict[str, int] = {}
        self._seen: dict[str, set[str]] = {}
        self._off = ""  # why the logs cannot be read (said once)

    def follow(self, kind: str, job_name: str, created_ms: int = 0) -> int:
        """Print the job's lines that arrived since the last call; returns how many. created_ms (the
        job's CreationTime) bounds the first search: the API's own advice against empty pages."""
        if self._off:
            return 0
        from botocore.exceptions import ClientError

        seen = self._seen.setdefault(job_name, set())
        request: dict[str, Any] = {
            "logGroupName": GROUPS[kind],
            "logStreamNamePrefix": f"{job_name}/",
            "startTime": max(self._since.get(job_name, 0), created_ms),
        }
        printed = 0
        try:
            # An empty page with a nextToken does not mean the end (FilterLogEvents, API Reference).
            for _ in range(PAGES_PER_POLL):
                page = self._logs.filter_log_events(**request)
                for event in sorted(page.get("events", []), key=lambda e: (e["timestamp"], e["eventId"])):
                    # The prefix is the job's name and a slash, but tc-1 must never show tc-10's lines.
                    if event["eventId"] in seen or not event.get("logStreamName", "").startswith(f"{job_name}/"):
                        continue
                    seen.add(event["eventId"])
                    self._since[job_name] = max(self._since.get(job_name, 0), int(event["timestamp"]))
                    self._say(f"  [{job_name}] {event['message'].rstrip()}")
                    printed += 1
                token = page.get("nextToken")
                if not token:
                    break
                request["nextToken"] = token
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            # No group yet (the job has not written a line), or a throttle: the next poll reads on.
            if code not in ("ResourceNotFoundException", *TRANSIENT):
                self._off = f"{code}: {error.response.get('Error', {}).get('Message', '')}"
                self._say(
                    f"  (the job's log lines cannot be read here, {self._off}; they are in CloudWatch, "
                    f"log group {GROUPS[kind]}, streams {job_name}/*)"
                )
        if len(seen) > SEEN_LIMIT:
            seen.clear()  # startTime keeps later polls from reading these again
        return printed
