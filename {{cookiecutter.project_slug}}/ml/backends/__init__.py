"""Choose the backends for an environment. The only place local and cloud differ."""

from __future__ import annotations

from dataclasses import dataclass

from ml import names
from ml.backends.base import ArtifactStore, DesiredState, Endpoint, JobRunner, ModelRegistry
from ml.backends.desired_state import StackConfigFile
from ml.backends.local_artifacts import LocalArtifactStore
from ml.backends.local_endpoint import LocalEndpoint
from ml.backends.local_jobs import LocalJobRunner
from ml.backends.local_registry import LocalModelRegistry
from ml.config import PROJECT_ROOT, Config
from ml.errors import ConfigError


@dataclass(frozen=True)
class Backends:
    artifacts: ArtifactStore
    registry: ModelRegistry
    jobs: JobRunner
    endpoint: Endpoint
    desired_state: DesiredState


def local_backends(config: Config) -> Backends:
    state = config.state_dir
    prefix = config.project.resource_prefix
    artifacts = LocalArtifactStore(state / "artifacts")
    return Backends(
        artifacts=artifacts,
        registry=LocalModelRegistry(
            state / "registry.sqlite", names.model_package_group_name(prefix, "local"), artifacts
        ),
        jobs=LocalJobRunner(state / "jobs", artifacts),
        endpoint=LocalEndpoint(
            names.endpoint_name(prefix, "local"),
            state / "endpoint",
            artifacts,
            host=config.serve.host,
            port=config.serve.port,
            startup_timeout=config.serve.startup_timeout_seconds,
            project_root=PROJECT_ROOT,
        ),
        desired_state=StackConfigFile(state / "desired-state" / "Pulumi.local.yaml", prefix),
    )


def make_backends(config: Config) -> Backends:
    if config.env == "local":
        return local_backends(config)
    raise ConfigError(
        f"MLOPS_ENV={config.env} selects the AWS backends, which this version of the project "
        "does not include yet. Use MLOPS_ENV=local (the default)."
    )
