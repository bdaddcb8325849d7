"""Batch scoring in AWS: a SageMaker Batch Transform job on the model Pulumi manages.

The job runs the model's own container and code/inference.py, as the endpoint does, with
MLOPS_REJECT_ROWS=1 in its Environment so a row the schema refuses is answered with its reason
instead of failing the job (ml/inference.py). Mini-batches are MultiRecord, as many whole lines
as fit in MaxPayloadInMB; the answers are assembled a line per input line and joined to it
(JoinSource Input). Volume, output and captured data are encrypted with the stack's key.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from botocore.exceptions import ClientError

from ml.batch_request import TransformSpec, transform_request
from ml.errors import JobFailedError

__all__ = ["SageMakerBatchTransform", "TransformSpec", "transform_request"]
TERMINAL = ("Completed", "Failed", "Stopped")


class SageMakerBatchTransform:
    def __init__(self, sagemaker_client: Any, poll_seconds: float = 15.0) -> None:
        self._sm = sagemaker_client
        self._poll = poll_seconds

    def _stop(self, job_name: str) -> None:
        """Stop the job; one that ended meanwhile refuses, and that refusal must not hide why we stopped."""
        try:
            self._sm.stop_transform_job(TransformJobName=job_name)
        except ClientError as error:
            print(f"warning: stopping transform job {job_name}: {error}", file=sys.stderr)

    def run(self, spec: TransformSpec) -> dict[str, Any]:
        """Start the job, wait for its end, and return its description; a job that did not complete raises."""
        self._sm.create_transform_job(**transform_request(spec))
        deadline = time.monotonic() + spec.max_runtime_seconds
        try:
            while True:
                description: dict[str, Any] = self._sm.describe_transform_job(TransformJobName=spec.job_name)
                if description["TransformJobStatus"] in TERMINAL:
                    break
                if time.monotonic() > deadline:
                    self._stop(spec.job_name)
                    raise JobFailedError(
                        f"transform job {spec.job_name} ran past {spec.max_runtime_seconds} s and was stopped"
                    )
                time.sleep(self._poll)
        except KeyboardInterrupt:
            self._stop(spec.job_name)  # a cancelled run leaves no job running
            raise
        status = description["TransformJobStatus"]
        if status != "Completed":
            reason = description.get("FailureReason") or "no reason given"
            raise JobFailedError(
                f"transform job {spec.job_name} {status}: {reason}. Logs: CloudWatch group /aws/sagemaker/TransformJobs"
            )
        return description
