"""Batch scoring in AWS: a SageMaker Batch Transform job on the model Pulumi manages.

The job runs the model's own container and code/inference.py, as the endpoint does, with
MLOPS_REJECT_ROWS=1 in its Environment so a row the schema refuses is answered with its reason
instead of failing the job (ml/inference.py). Mini-batches are MultiRecord, as many whole lines
as fit in MaxPayloadInMB; the answers are assembled a line per input line and joined to it
(JoinSource Input). Volume, output and captured data are encrypted with the stack's key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ml.errors import JobFailedError

TERMINAL = ("Completed", "Failed", "Stopped")
CSV = "text/csv"


@dataclass(frozen=True)
class TransformSpec:
    job_name: str
    model_name: str
    input_uri: str  # an S3 object or prefix of headerless CSV lines
    output_uri: str  # an S3 prefix: each input object's answers land as <object name>.out
    capture_uri: str
    kms_key_arn: str
    instance_type: str
    max_payload_mb: int
    input_filter: str  # the features' columns, as a JSONPath of indices
    environment: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    max_runtime_seconds: int = 3600


def transform_request(spec: TransformSpec) -> dict[str, Any]:
    """CreateTransformJob's request (SageMaker API Reference, CreateTransformJob)."""
    return {
        "TransformJobName": spec.job_name,
        "ModelName": spec.model_name,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": spec.max_payload_mb,
        "MaxConcurrentTransforms": 1,  # one mini-batch at a time per instance: memory follows the mini-batch
        "ModelClientConfig": {"InvocationsTimeoutInSeconds": 600, "InvocationsMaxRetries": 1},
        "Environment": spec.environment,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": spec.input_uri}},
            "ContentType": CSV,
            "CompressionType": "None",
            "SplitType": "Line",
        },
        "TransformOutput": {
            "S3OutputPath": spec.output_uri,
            "Accept": CSV,
            "AssembleWith": "Line",
            "KmsKeyId": spec.kms_key_arn,
        },
        "TransformResources": {
            "InstanceType": spec.instance_type,
            "InstanceCount": 1,
            "VolumeKmsKeyId": spec.kms_key_arn,
        },
        "DataCaptureConfig": {
            "DestinationS3Uri": spec.capture_uri,
            "KmsKeyId": spec.kms_key_arn,
            "GenerateInferenceId": True,
        },
        # The input's line, then the answer's columns: the reason column last (ml/inference.py).
        "DataProcessing": {"InputFilter": spec.input_filter, "JoinSource": "Input", "OutputFilter": "$"},
        "Tags": [{"Key": key, "Value": value} for key, value in sorted(spec.tags.items())],
    }


class SageMakerBatchTransform:
    def __init__(self, sagemaker_client: Any, poll_seconds: float = 15.0) -> None:
        self._sm = sagemaker_client
        self._poll = poll_seconds

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
                    self._sm.stop_transform_job(TransformJobName=spec.job_name)
                    raise JobFailedError(
                        f"transform job {spec.job_name} ran past {spec.max_runtime_seconds} s and was stopped"
                    )
                time.sleep(self._poll)
        except KeyboardInterrupt:
            self._sm.stop_transform_job(TransformJobName=spec.job_name)  # a cancelled run leaves no job running
            raise
        status = description["TransformJobStatus"]
        if status != "Completed":
            reason = description.get("FailureReason") or "no reason given"
            raise JobFailedError(
                f"transform job {spec.job_name} {status}: {reason}. Logs: CloudWatch group /aws/sagemaker/TransformJobs"
            )
        return description
