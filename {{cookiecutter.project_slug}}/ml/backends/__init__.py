"""Choose the backends for an environment. The only place local and cloud differ."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ml import lineage, names
from ml.backends.base import ArtifactStore, DesiredState, Endpoint, JobRunner, ModelRegistry
from ml.backends.desired_state import StackConfigFile
from ml.backends.job_ledger import JobLedger
from ml.backends.local_artifacts import LocalArtifactStore
from ml.backends.local_endpoint import LocalEndpoint
from ml.backends.local_jobs import LocalJobRunner
from ml.backends.local_registry import LocalModelRegistry
from ml.backends.warm import ForkServer, WarmStarts, imports_of
from ml.config import PROJECT_ROOT, Config
from ml.errors import ConfigError
from ml.stack_outputs import StackOutputs

if TYPE_CHECKING:  # the AWS libraries are the aws group's: a local run never imports them
    from ml.backends.sagemaker_batch import SageMakerBatchTransform


@dataclass(frozen=True)
class Backends:
    artifacts: ArtifactStore
    registry: ModelRegistry
    jobs: JobRunner
    endpoint: Endpoint
    desired_state: DesiredState
    # Processes started ahead of the work this run will do (ml/backends/warm.py): the fork server
    # jobs, checks and plots come from, and the model server's interpreter.
    forks: ForkServer
    warm: WarmStarts
    # Batch scoring in AWS (ml/steps/batch.py); locally the batch step runs ml/batch.py itself.
    batch: SageMakerBatchTransform | None = None


def job_preload() -> list[str]:
    """What the project's jobs import: the container scripts and the model server's check.

    Not matplotlib: the fork server forks nothing until every import is done, and the plots,
    drawn in the background, import it themselves.
    """
    ml = PROJECT_ROOT / "ml"
    return imports_of([*lineage.model_code_files(), ml / "serving.py"])


def local_backends(config: Config) -> Backends:
    state = config.state_dir
    prefix = config.project.resource_prefix
    artifacts = LocalArtifactStore(state / "artifacts")
    warm, forks = WarmStarts(), ForkServer(job_preload())
    return Backends(
        artifacts=artifacts,
        registry=LocalModelRegistry(
            state / "registry.sqlite", names.model_package_group_name(prefix, "local"), artifacts
        ),
        jobs=LocalJobRunner(state / "jobs", artifacts, forks),
        endpoint=LocalEndpoint(
            names.endpoint_name(prefix, "local"),
            state / "endpoint",
            artifacts,
            host=config.serve.host,
            port=config.serve.port,
            startup_timeout=config.serve.startup_timeout_seconds,
            project_root=PROJECT_ROOT,
            warm=warm,
            forks=forks,
            workers=config.serve.workers or None,
            body_timeout=config.serve.body_timeout_seconds,
        ),
        desired_state=StackConfigFile(state / "desired-state" / "Pulumi.local.yaml", prefix),
        forks=forks,
        warm=warm,
    )


def job_ledger(config: Config) -> JobLedger:
    """Where this workspace records the cloud jobs it starts (`make stop-jobs` reads it)."""
    return JobLedger(config.state_dir / "jobs-started" / f"{config.env}.jsonl")


def stack_file(config: Config, env: str) -> StackConfigFile:
    """The desired-state file of an AWS environment: its committed Pulumi stack config."""
    directory = Path(os.environ.get("MLOPS_STACK_DIR") or PROJECT_ROOT / "infra")
    return StackConfigFile(directory / f"Pulumi.{env}.yaml", config.project.resource_prefix)


AWS_GROUP_FIX = (
    "the AWS libraries (boto3, the sagemaker SDK) are not installed: they are the `aws` dependency group. "
    "Install them with `tools/uv sync --group aws` (the make targets do this when MLOPS_ENV is dev, staging or prod)."
)


def applied_endpoint(outputs: StackOutputs) -> tuple[int, str] | None:
    """(version, endpoint config) that the stack's last `pulumi up` applied, when the outputs carry both."""
    if outputs.model_version and outputs.endpoint_config_name:
        return int(outputs.model_version), outputs.endpoint_config_name
    return None


def aws_backends(config: Config) -> Backends:
    # Imported here so a local run never pays for boto3 and the sagemaker SDK (nor installs them).
    from functools import cache

    try:
        from ml.backends import aws_session
        from ml.backends.job_logs import JobLogs
        from ml.backends.s3_artifacts import S3ArtifactStore
        from ml.backends.sagemaker_batch import SageMakerBatchTransform
        from ml.backends.sagemaker_endpoint import SageMakerEndpoint
        from ml.backends.sagemaker_jobs import SageMakerJobRunner, sklearn_image_uri
        from ml.backends.sagemaker_registry import SageMakerModelRegistry
    except ImportError as error:
        raise ConfigError(f"MLOPS_ENV={config.env}: {AWS_GROUP_FIX} ({error})") from None
    from ml.stack_outputs import load_stack_outputs

    outputs = load_stack_outputs(config)
    session = aws_session.make_session(outputs.region, config.env)
    retries = aws_session.RETRIES
    sagemaker = session.client("sagemaker", config=retries)
    artifacts = S3ArtifactStore(session.client("s3", config=retries), outputs.artifacts_bucket, outputs.kms_key_arn)

    @cache
    def image_uri() -> str:
        return sklearn_image_uri(outputs.region, config.framework.sagemaker_image_version, config.aws.instance_type)

    endpoint_name = outputs.endpoint_name or names.endpoint_name(config.project.resource_prefix, config.env)
    return Backends(
        artifacts=artifacts,
        registry=SageMakerModelRegistry(
            sagemaker, outputs.model_package_group, artifacts, image_uri, outputs.region, config.project.aws_account_id
        ),
        jobs=SageMakerJobRunner(
            session,
            sagemaker,
            artifacts,
            outputs,
            image_uri,
            config.aws.instance_type,
            config.aws.managed_spot,
            cost_tags={"project": config.project.resource_prefix, "environment": config.env},
            ledger=job_ledger(config),
            logs=JobLogs(session.client("logs", config=retries)),
        ),
        endpoint=SageMakerEndpoint(
            sagemaker,
            session.client("sagemaker-runtime", config=retries),
            endpoint_name,
            config.env,
            PROJECT_ROOT / "infra",
            # Where the endpoint config's DataCaptureConfig writes (infra/components/endpoint.py).
            s3_client=session.client("s3", config=retries),
            capture_uri=f"s3://{outputs.artifacts_bucket}/data-capture/{endpoint_name}/",
            cloudwatch_client=session.client("cloudwatch", config=retries),
            autoscaling_client=session.client("application-autoscaling", config=retries),
            applied=applied_endpoint(outputs),
            rollback_alarms=tuple(
                names.alarm_name(config.project.resource_prefix, config.env, signal)
                for signal in names.ROLLBACK_SIGNALS
            ),
        ),
        desired_state=stack_file(config, config.env),
        forks=ForkServer(job_preload()),
        warm=WarmStarts(),
        batch=SageMakerBatchTransform(sagemaker),
    )


def make_backends(config: Config) -> Backends:
    return local_backends(config) if config.env == "local" else aws_backends(config)
