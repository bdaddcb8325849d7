"""The interfaces every backend implements: local (embedded default) and AWS.

Pipeline steps only talk to these protocols; choosing an implementation is the one
place where local and cloud differ (ml/backends/__init__.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

# SageMaker's ModelApprovalStatus values, used verbatim by the local registry too.
ApprovalStatus = Literal["Approved", "Rejected", "PendingManualApproval"]


@dataclass(frozen=True)
class ModelPackage:
    """What the register step records about one trained model."""

    model_uri: str
    evaluation_uri: str
    fingerprint: str
    approval_status: ApprovalStatus
    metrics: dict[str, float]
    lineage: dict[str, str]


@dataclass(frozen=True)
class ModelVersion:
    version: int
    group: str
    created_at: str
    package: ModelPackage

    @property
    def approved(self) -> bool:
        return self.package.approval_status == "Approved"


@dataclass(frozen=True)
class TrainingSpec:
    job_name: str
    entry_point: Path
    source_files: tuple[Path, ...]
    channels: dict[str, str]
    hyperparameters: dict[str, str]
    max_runtime_seconds: int
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingResult:
    job_name: str
    model_uri: str
    seconds: float


@dataclass(frozen=True)
class ProcessingSpec:
    job_name: str
    entry_point: Path
    source_files: tuple[Path, ...]
    inputs: dict[str, str]
    outputs: tuple[str, ...]
    arguments: tuple[str, ...]
    max_runtime_seconds: int
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProcessingResult:
    job_name: str
    outputs: dict[str, str]
    seconds: float


@dataclass(frozen=True)
class EndpointStatus:
    name: str
    version: int
    url: str
    healthy: bool
    detail: str = ""  # what a person should know: a server that is gone, capture that fails


class ArtifactStore(Protocol):
    def put(self, path: Path) -> str:
        """Store a file under its content hash and return its URI. Idempotent."""
        ...

    def get(self, uri: str, destination: Path) -> Path:
        """Copy the artifact at uri to destination (a file path) and return it."""
        ...

    def exists(self, uri: str) -> bool: ...


class ModelRegistry(Protocol):
    group: str

    def register(self, package: ModelPackage, card: str = "") -> ModelVersion:
        """Record package atomically, with its model card's content (ml/model_card.py) if given;
        refuse it if any artifact it names is missing."""
        ...

    def get(self, version: int) -> ModelVersion: ...

    def champion(self) -> ModelVersion | None:
        """The latest Approved version, or None before the first approval."""
        ...

    def find_by_fingerprint(self, fingerprint: str) -> ModelVersion | None: ...

    def versions(self) -> list[ModelVersion]: ...


class JobRunner(Protocol):
    def train(self, spec: TrainingSpec) -> TrainingResult: ...

    def process(self, spec: ProcessingSpec) -> ProcessingResult: ...

    def prepare(self, source_files: tuple[Path, ...]) -> None:
        """A hint that a job running these files comes next, so its start-up can overlap this step."""
        ...

    def stop(self, kind: Literal["training", "processing"], name: str) -> bool:
        """Stop a job that is still running; False if it had already ended (`make stop-jobs`)."""
        ...


class Endpoint(Protocol):
    name: str

    def prepare(self) -> None:
        """A hint that a deploy comes next, so the server's start-up can overlap this step."""
        ...

    def deploy(self, version: ModelVersion) -> EndpointStatus:
        """Serve version; keep the previous one serving until the new one is healthy."""
        ...

    def status(self) -> EndpointStatus | None: ...

    def invoke(self, body: bytes, content_type: str, accept: str, inference_id: str | None = None) -> bytes:
        """The endpoint's answer; inference_id is recorded with the captured request (for ground truth)."""
        ...

    def capture_location(self) -> str:
        """Where the endpoint's variant writes data capture: a directory, or an s3:// prefix."""
        ...

    def ground_truth_location(self) -> str:
        """Where labels for its requests land (SageMaker's ground-truth records), likewise."""
        ...

    def record_ground_truth(self, path: Path, hour: str) -> str:
        """Store a file of ground-truth records under the hour (yyyy/mm/dd/hh); return where."""
        ...

    def stop(self) -> bool: ...


class DesiredState(Protocol):
    path: Path

    def read(self) -> int | None:
        """The model version this environment should serve, or None if none is set."""
        ...

    def write(self, version: int, extra: dict[str, str] | None = None) -> bool:
        """Set the version (and keys that go with it) atomically; False if already so."""
        ...
