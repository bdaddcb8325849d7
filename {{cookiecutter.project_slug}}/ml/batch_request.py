"""The CreateTransformJob request `make batch` sends and the scheduled batch's pipeline step holds.

Kept apart from ml/backends/ so the Pulumi program can build the same request without importing the
pipeline's backends (deploy.yml applies a change to every ml/ module infra/ imports).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CSV = "text/csv"
# The switch of ml/inference.py's Batch Transform mode (the container's code imports nothing of ml/;
# tests/test_batch.py keeps the two names equal).
REJECT_ROWS = "MLOPS_REJECT_ROWS"


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
    input_filter: str  # the features' columns, as a JSONPath: at most 63 characters (DataProcessing)
    environment: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    max_runtime_seconds: int = 3600


MAX_FILTER = 63  # DataProcessing.InputFilter's length limit (SageMaker API Reference, DataProcessing)


def transform_request(spec: TransformSpec) -> dict[str, Any]:
    """CreateTransformJob's request (SageMaker API Reference, CreateTransformJob)."""
    if len(spec.input_filter) > MAX_FILTER:
        raise ValueError(f"InputFilter {spec.input_filter!r} is longer than SageMaker's {MAX_FILTER} characters")
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
            # An inference id would append two columns (an id and the job's start) to every output
            # line (SageMaker guide, "Capture data from batch transform job"); nothing joins batch
            # labels by id here, and the answers' columns must stay the model's.
            "GenerateInferenceId": False,
        },
        # The input's line, then the answer's columns: the reason column last (ml/inference.py).
        "DataProcessing": {"InputFilter": spec.input_filter, "JoinSource": "Input", "OutputFilter": "$"},
        "Tags": [{"Key": key, "Value": value} for key, value in sorted(spec.tags.items())],
    }
