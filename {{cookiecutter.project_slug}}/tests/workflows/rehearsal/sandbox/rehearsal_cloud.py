"""The AWS account of the rehearsal, on the local backends: what `MLOPS_ENV=dev|staging|prod` reaches
inside the sandbox (sitecustomize.py installs it).

One directory, REHEARSAL_CLOUD, plays the account: dev's artifact bucket and model registry (the
local implementations, as in the contract tests), a SageMaker job service whose jobs outlive the
process that started them until they complete or are stopped (jobs.json), and one endpoint per
stack, a local server that only `pulumi up` (the stand-in, through reconcile()) changes. The
step code, the stack files and the Makefile are the project's own.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ml import atomic, names
from ml.backends import Backends, job_ledger, job_preload, stack_file
from ml.backends.base import (
    EndpointStatus,
    ModelVersion,
    ProcessingResult,
    ProcessingSpec,
    TrainingResult,
    TrainingSpec,
)
from ml.backends.job_ledger import JobKind
from ml.backends.local_artifacts import LocalArtifactStore
from ml.backends.local_endpoint import LocalEndpoint
from ml.backends.local_jobs import LocalJobRunner
from ml.backends.local_registry import LocalModelRegistry
from ml.backends.warm import ForkServer, WarmStarts
from ml.config import PROJECT_ROOT, Config, load_config
from ml.errors import EndpointError
from ml.hashing import file_sha256


def _cloud() -> Path:
    return Path(os.environ["REHEARSAL_CLOUD"])


@contextlib.contextmanager
def _jobs() -> Iterator[dict[str, Any]]:
    path = _cloud() / "jobs.json"
    with (_cloud() / "jobs.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        jobs: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        yield jobs
        # Whole or not at all: the rehearsal reads it without the lock (World.cloud_jobs), and once
        # read it half-written (an empty file) under CI load.
        atomic.write_text(path, json.dumps(jobs, indent=1))


class BucketStore(LocalArtifactStore):
    """dev's artifact bucket, on disk: the s3:// URIs S3ArtifactStore gives (sha256/<hash>/<name>), so the
    stack files a promotion writes are the ones AWS would get, and infra/settings.py accepts them."""

    def __init__(self, root: Path, bucket: str) -> None:
        super().__init__(root)
        self.bucket = bucket

    def _path(self, uri: str) -> Path:
        prefix = f"s3://{self.bucket}/"
        if not uri.startswith(prefix):
            raise ValueError(f"{uri!r} is not in the artifact bucket {self.bucket}")
        return self.root / uri.removeprefix(prefix)

    def put(self, path: Path) -> str:
        uri = f"s3://{self.bucket}/sha256/{file_sha256(path)}/{path.name}"
        if not self.exists(uri):
            atomic.copy_file(path, self._path(uri))
        return uri


class CloudJobs:
    """SageMaker's job lifetime around the local runner: a job is InProgress from its creation until it
    completes or fails, or until StopTrainingJob/StopProcessingJob; the client going away stops nothing."""

    def __init__(self, runner: LocalJobRunner, config: Config) -> None:
        self._runner = runner
        self._ledger = job_ledger(config)

    def _started(self, kind: JobKind, name: str) -> None:
        # On the ledger before the job shows InProgress: the runner records a job as soon as SageMaker
        # accepts it, and a cancellation that arrives while the job runs (the tests cancel when they see
        # it InProgress) must find it there.
        self._ledger.started(kind, name)
        with _jobs() as jobs:
            jobs[name] = {"kind": kind, "status": "InProgress", "run": os.environ.get("GITHUB_RUN_ID", "")}
        # A test may hold a job in progress (hold-jobs), as a long SageMaker job would be, until it is
        # interrupted: then the client goes away and the job stays InProgress, as in SageMaker.
        while (_cloud() / "hold-jobs").exists():
            time.sleep(0.02)

    def _ended(self, name: str, status: str) -> None:
        with _jobs() as jobs:
            if jobs[name]["status"] == "InProgress":
                jobs[name]["status"] = status

    def prepare(self, source_files: tuple[Path, ...]) -> None:
        self._runner.prepare(source_files)

    def train(self, spec: TrainingSpec) -> TrainingResult:
        self._started("training", spec.job_name)
        try:
            result = self._runner.train(spec)
        except Exception:
            self._ended(spec.job_name, "Failed")
            raise
        self._ended(spec.job_name, "Completed")
        return result

    def process(self, spec: ProcessingSpec) -> ProcessingResult:
        self._started("processing", spec.job_name)
        try:
            result = self._runner.process(spec)
        except Exception:
            self._ended(spec.job_name, "Failed")
            raise
        self._ended(spec.job_name, "Completed")
        return result

    def stop(self, kind: JobKind, name: str) -> bool:
        with _jobs() as jobs:
            job = jobs.get(name)
            if job is None or job["status"] != "InProgress":
                return False
            job["status"] = "Stopped"
            return True


def _endpoint(config: Config, env: str, artifacts: BucketStore) -> LocalEndpoint:
    return LocalEndpoint(
        names.endpoint_name(config.project.resource_prefix, env),
        _cloud() / env / "endpoint",
        artifacts,
        host=config.serve.host,
        startup_timeout=config.serve.startup_timeout_seconds,
        project_root=PROJECT_ROOT,
        warm=WarmStarts(),
        forks=ForkServer([]),
    )


class ReconciledEndpoint:
    """The stack's endpoint as ml/ sees it in AWS: Pulumi changes it; a deploy only checks it."""

    def __init__(self, endpoint: LocalEndpoint) -> None:
        self._endpoint = endpoint
        self.name = endpoint.name

    def prepare(self) -> None:
        """Nothing to warm: `pulumi up` starts the new variant."""

    def status(self) -> EndpointStatus | None:
        # The local server stands in for a SageMaker endpoint, which keeps running after `pulumi up`:
        # a server found gone here is a defect of the local runtime, reported as such (stop 23 fixed
        # the one that made CI find the prod server gone: a record of an empty command line).
        return self._endpoint.status()

    def deploy(self, version: ModelVersion) -> EndpointStatus:
        status = self._endpoint.status()
        if status is None or not status.healthy or status.version != version.version:
            serving = f"v{status.version}" if status else "nothing"
            raise EndpointError(f"endpoint {self.name} serves {serving}, not v{version.version}: run `pulumi up`")
        return status

    def invoke(self, body: bytes, content_type: str, accept: str, inference_id: str | None = None) -> bytes:
        return self._endpoint.invoke(body, content_type, accept, inference_id)

    def capture_location(self) -> str:
        return self._endpoint.capture_location()

    def ground_truth_location(self) -> str:
        return self._endpoint.ground_truth_location()

    def record_ground_truth(self, path: Path, hour: str) -> str:
        return self._endpoint.record_ground_truth(path, hour)

    def stop(self) -> bool:
        return False


def _artifacts() -> BucketStore:
    config = load_config(env="dev")
    prefix, account = config.project.resource_prefix, config.project.aws_account_id
    return BucketStore(_cloud() / "artifacts", names.bucket_name(prefix, "dev", "artifacts", account))


def _registry(config: Config, artifacts: BucketStore) -> LocalModelRegistry:
    # One registry, dev's model package group; staging and prod deploy the versions it holds.
    group = names.model_package_group_name(config.project.resource_prefix, "dev")
    return LocalModelRegistry(_cloud() / "registry.sqlite", group, artifacts)


def backends(config: Config) -> Backends:
    artifacts = _artifacts()
    forks = ForkServer(job_preload())
    return Backends(
        artifacts=artifacts,
        registry=_registry(config, artifacts),
        jobs=CloudJobs(LocalJobRunner(config.state_dir / "jobs", artifacts, forks), config),
        endpoint=ReconciledEndpoint(_endpoint(config, config.env, artifacts)),
        desired_state=stack_file(config, config.env),
        forks=forks,
        warm=WarmStarts(),
    )


def reconcile(stack: str, version: int | None) -> None:
    """What `pulumi up` does to the stack's endpoint: serve the stack file's version, or none."""
    config = load_config(env=stack)
    artifacts = _artifacts()
    endpoint = _endpoint(config, stack, artifacts)
    if version is None:
        endpoint.stop()
        return
    endpoint.deploy(_registry(config, artifacts).get(version))


def stop_all() -> None:
    """The end of the rehearsal: every stack's endpoint goes."""
    config = load_config()
    for env in ("dev", "staging", "prod"):
        _endpoint(config, env, _artifacts()).stop()
