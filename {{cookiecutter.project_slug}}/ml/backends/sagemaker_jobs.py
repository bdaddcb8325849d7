"""Training and evaluation as SageMaker jobs, in the prebuilt scikit-learn container.

Training goes through the sagemaker SDK v3 (`sagemaker.train.ModelTrainer`) and runs the
same ml/train.py as the local runner; evaluation is a processing job running ml/evaluate.py,
so test data never leaves the account. Both encrypt volumes and outputs with the stack's key.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from ml.backends.base import ProcessingResult, ProcessingSpec, TrainingResult, TrainingSpec
from ml.backends.job_ledger import JobKind, JobLedger
from ml.backends.job_logs import JobLogs
from ml.backends.s3_artifacts import S3ArtifactStore, split_uri
from ml.errors import JobFailedError
from ml.stack_outputs import StackOutputs

TERMINAL = ("Completed", "Failed", "Stopped")
LAST_LINES_SECONDS = 5.0  # after the job ends, before its log is read a last time
PROCESSING_ROOT = "/opt/ml/processing"


def sklearn_image_uri(region: str, framework_version: str, instance_type: str) -> str:
    """The prebuilt SageMaker scikit-learn image at the version pinned in mlops.toml."""
    from sagemaker.core import image_uris

    return str(image_uris.retrieve("sklearn", region=region, version=framework_version, instance_type=instance_type))


@contextlib.contextmanager
def _sdk_role_validation_off() -> Iterator[None]:
    """The sagemaker SDK validates the execution role when a ModelTrainer is built, with
    iam:SimulatePrincipalPolicy: it simulates resource-scoped actions without their resources and
    so rejects the least-privilege role infra/ creates, and CI's deploy role may not simulate at
    all. The role is proven elsewhere (tests/infra/iam/); SageMaker itself checks it when the job
    starts. SAGEMAKER_VALIDATE_ROLE is the SDK's own switch (sagemaker.core.helper.iam_role_resolver).
    """
    previous = os.environ.get("SAGEMAKER_VALIDATE_ROLE")
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("SAGEMAKER_VALIDATE_ROLE", None)
        else:
            os.environ["SAGEMAKER_VALIDATE_ROLE"] = previous


class SageMakerJobRunner:
    def __init__(
        self,
        session: Any,
        sagemaker_client: Any,
        artifacts: S3ArtifactStore,
        outputs: StackOutputs,
        image_uri: Callable[[], str],
        instance_type: str = "ml.m5.large",
        spot: bool = False,
        poll_seconds: float = 15.0,
        grace_seconds: float = 1800.0,
        cost_tags: dict[str, str] | None = None,
        ledger: JobLedger | None = None,
        logs: JobLogs | None = None,
    ) -> None:
        self._session = session
        self._sm = sagemaker_client
        self._artifacts = artifacts
        self._outputs = outputs
        self._image_uri = image_uri
        self._instance_type = instance_type
        self._spot = spot
        self._poll = poll_seconds
        self._grace = grace_seconds
        # The tags the environment's budget filters on (infra/components/monitoring.py), as Pulumi's
        # default tags give the stack's own resources: jobs are not Pulumi's, so they are tagged here.
        self._cost_tags = dict(cost_tags or {})
        self._ledger = ledger
        # The job's own lines, printed at every poll (in CI too), instead of a silent wait.
        self._logs = logs

    def prepare(self, source_files: tuple[Path, ...]) -> None:
        """Nothing to warm: SageMaker starts the container when the job is created."""

    def train(self, spec: TrainingSpec) -> TrainingResult:
        from sagemaker.core.helper.session_helper import Session
        from sagemaker.core.shapes import StoppingCondition, Tag
        from sagemaker.core.training.configs import CheckpointConfig, Compute, InputData, OutputDataConfig, SourceCode
        from sagemaker.train import ModelTrainer

        outputs, bucket = self._outputs, self._outputs.artifacts_bucket
        # The SDK appends its own timestamp; keep ours out of the base so names stay within 63 characters.
        base_job_name = "-".join(spec.job_name.split("-")[:-3])
        stopping = StoppingCondition(max_runtime_in_seconds=spec.max_runtime_seconds)
        checkpoint = None
        if self._spot:
            stopping = StoppingCondition(
                max_runtime_in_seconds=spec.max_runtime_seconds, max_wait_time_in_seconds=2 * spec.max_runtime_seconds
            )
            checkpoint = CheckpointConfig(s3_uri=f"s3://{bucket}/checkpoints/{base_job_name}")
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as source_dir:
            for source in spec.source_files:
                shutil.copy2(source, Path(source_dir) / source.name)
            with _sdk_role_validation_off():
                trainer = ModelTrainer(
                    training_image=self._image_uri(),
                    role=outputs.execution_role_arn,
                    sagemaker_session=Session(
                        boto_session=self._session, default_bucket=bucket, default_bucket_prefix="sagemaker"
                    ),
                    base_job_name=base_job_name,
                    source_code=SourceCode(source_dir=source_dir, entry_script=spec.entry_point.name),
                    compute=Compute(
                        instance_type=self._instance_type,
                        instance_count=1,
                        volume_size_in_gb=30,
                        volume_kms_key_id=outputs.kms_key_arn,
                        enable_managed_spot_training=self._spot,
                    ),
                    stopping_condition=stopping,
                    checkpoint_config=checkpoint,
                    output_data_config=OutputDataConfig(
                        s3_output_path=f"s3://{bucket}/training", kms_key_id=outputs.kms_key_arn
                    ),
                    hyperparameters=dict(spec.hyperparameters),
                    tags=[Tag(key=key, value=value) for key, value in self._tags(spec.tags).items()],
                )
            inputs = [InputData(channel_name=name, data_source=uri) for name, uri in spec.channels.items()]
            # Created without waiting, so the job is on the ledger before anything can interrupt the wait.
            trainer.train(input_data_config=inputs, wait=False, logs=False)
        job_name = trainer._latest_training_job.training_job_name  # the SDK's handle on the job it created
        self._started("training", job_name)
        description = self._wait("training", job_name, spec.max_runtime_seconds)
        if description["TrainingJobStatus"] != "Completed":
            self._raise_if_unsuccessful(job_name, None)
        model_uri = self._artifacts.adopt(description["ModelArtifacts"]["S3ModelArtifacts"], "model.tar.gz")
        return TrainingResult(job_name, model_uri, time.perf_counter() - started)

    def _started(self, kind: JobKind, name: str) -> None:
        if self._ledger is not None:
            self._ledger.started(kind, name)

    def stop(self, kind: JobKind, name: str) -> bool:
        """Stop a job that is still running (StopTrainingJob/StopProcessingJob); False if it had ended."""
        if kind == "training":
            status = self._describe_training(name)["TrainingJobStatus"]
        else:
            status = self._describe_processing(name)["ProcessingJobStatus"]
        if status != "InProgress":
            return False
        self._request_stop(kind, name)
        return True

    def _request_stop(self, kind: JobKind, name: str) -> None:
        if kind == "training":
            self._sm.stop_training_job(TrainingJobName=name)
        else:
            self._sm.stop_processing_job(ProcessingJobName=name)

    def _wait(self, kind: JobKind, job_name: str, max_runtime: int) -> dict[str, Any]:
        """Poll until the job ends. SageMaker enforces MaxRuntimeInSeconds itself; the grace covers start-up
        and upload. An interrupted wait (Ctrl-C, a cancelled CI job's SIGINT) stops the job first."""
        describe = self._describe_training if kind == "training" else self._describe_processing
        key = "TrainingJobStatus" if kind == "training" else "ProcessingJobStatus"
        deadline = time.monotonic() + max_runtime + self._grace
        shown = ""
        try:
            while True:
                description = describe(job_name)
                # Training says what it is doing (Starting, Downloading, Training, Uploading...).
                stage = description.get("SecondaryStatus", "")
                if stage and stage != shown:
                    transitions = description.get("SecondaryStatusTransitions") or [{}]
                    detail = transitions[-1].get("StatusMessage", "")
                    print(f"  [{job_name}] {stage}" + (f": {detail}" if detail else ""), flush=True)
                    shown = stage
                created = description.get("CreationTime")
                created_ms = int(created.timestamp() * 1000) if isinstance(created, datetime) else 0
                if self._logs is not None:
                    self._logs.follow(kind, job_name, created_ms)
                if description[key] in TERMINAL:
                    if self._logs is not None:
                        # CloudWatch takes a moment to ingest: a failed job's traceback is often last.
                        time.sleep(min(self._poll, LAST_LINES_SECONDS))
                        self._logs.follow(kind, job_name, created_ms)
                    return description
                if time.monotonic() > deadline:
                    self._request_stop(kind, job_name)  # InProgress a moment ago: no second describe
                    raise JobFailedError(f"{kind} job {job_name} did not finish in time and was stopped")
                time.sleep(self._poll)
        except KeyboardInterrupt:
            self.stop(kind, job_name)
            raise

    def _describe_processing(self, job_name: str) -> dict[str, Any]:
        description: dict[str, Any] = self._sm.describe_processing_job(ProcessingJobName=job_name)
        return description

    def _tags(self, tags: dict[str, str]) -> dict[str, str]:
        return {**tags, **self._cost_tags}

    def _describe_training(self, job_name: str) -> dict[str, Any]:
        description: dict[str, Any] = self._sm.describe_training_job(TrainingJobName=job_name)
        return description

    def _raise_if_unsuccessful(self, job_name: str, cause: Exception | None) -> None:
        description = self._describe_training(job_name)
        status = description["TrainingJobStatus"]
        if status in ("Failed", "Stopped"):
            reason = description.get("FailureReason") or description.get("SecondaryStatus", "no reason given")
            raise JobFailedError(
                f"training job {job_name} {status}: {reason}. Logs: CloudWatch group /aws/sagemaker/TrainingJobs"
            ) from cause

    def process(self, spec: ProcessingSpec) -> ProcessingResult:
        outputs, bucket = self._outputs, self._outputs.artifacts_bucket
        code_prefix = f"code/{spec.job_name}"
        for source in spec.source_files:
            self._artifacts.put_at(source, f"{code_prefix}/{source.name}")
        inputs = [
            {
                "InputName": name,
                "S3Input": {
                    "S3Uri": uri,
                    "LocalPath": f"{PROCESSING_ROOT}/input/{name}",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            }
            for name, uri in [*spec.inputs.items(), ("code", f"s3://{bucket}/{code_prefix}/")]
        ]
        output_prefix = f"s3://{bucket}/processing/{spec.job_name}"
        started = time.perf_counter()
        self._sm.create_processing_job(
            ProcessingJobName=spec.job_name,
            RoleArn=outputs.execution_role_arn,
            AppSpecification={
                "ImageUri": self._image_uri(),
                "ContainerEntrypoint": ["python3", f"{PROCESSING_ROOT}/input/code/{spec.entry_point.name}"],
                # SageMaker rejects an empty argument list; omit it instead.
                **({"ContainerArguments": list(spec.arguments)} if spec.arguments else {}),
            },
            ProcessingInputs=inputs,
            ProcessingOutputConfig={
                "Outputs": [
                    {
                        "OutputName": name,
                        "S3Output": {
                            "S3Uri": f"{output_prefix}/{name}",
                            "LocalPath": f"{PROCESSING_ROOT}/output/{name}",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                    for name in spec.outputs
                ],
                "KmsKeyId": outputs.kms_key_arn,
            },
            ProcessingResources={
                "ClusterConfig": {
                    "InstanceCount": 1,
                    "InstanceType": self._instance_type,
                    "VolumeSizeInGB": 30,
                    "VolumeKmsKeyId": outputs.kms_key_arn,
                }
            },
            StoppingCondition={"MaxRuntimeInSeconds": spec.max_runtime_seconds},
            Tags=[{"Key": key, "Value": value} for key, value in self._tags(spec.tags).items()],
        )
        self._started("processing", spec.job_name)
        description = self._wait("processing", spec.job_name, spec.max_runtime_seconds)
        if description["ProcessingJobStatus"] != "Completed":
            reason = description.get("FailureReason") or description.get("ExitMessage") or "no reason given"
            raise JobFailedError(f"processing job {spec.job_name} {description['ProcessingJobStatus']}: {reason}")
        collected: dict[str, str] = {}
        for name in spec.outputs:
            out_bucket, prefix = split_uri(f"{output_prefix}/{name}")
            listing = self._artifacts.list(f"{prefix}/")
            if not listing:
                raise JobFailedError(f"processing job {spec.job_name} wrote nothing to output {name!r}")
            for key in listing:
                filename = key.rsplit("/", 1)[-1]
                relative = key[len(prefix) + 1 :]  # a file in a subfolder keeps it (plots/x.svg)
                collected[f"{name}/{relative}"] = self._artifacts.adopt(f"s3://{out_bucket}/{key}", filename)
        return ProcessingResult(spec.job_name, collected, time.perf_counter() - started)
