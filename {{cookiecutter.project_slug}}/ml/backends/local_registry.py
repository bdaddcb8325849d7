"""A model registry in SQLite, shaped like a SageMaker model package group."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ml.backends.base import ArtifactStore, ModelPackage, ModelVersion

_SCHEMA = """
CREATE TABLE IF NOT EXISTS model_packages (
    version          INTEGER PRIMARY KEY AUTOINCREMENT,
    group_name       TEXT NOT NULL,
    approval_status  TEXT NOT NULL
        CHECK (approval_status IN ('Approved', 'Rejected', 'PendingManualApproval')),
    fingerprint      TEXT NOT NULL,
    model_uri        TEXT NOT NULL,
    evaluation_uri   TEXT NOT NULL,
    metrics          TEXT NOT NULL,
    lineage          TEXT NOT NULL,
    created_at       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS by_fingerprint ON model_packages (group_name, fingerprint);
"""
_COLUMNS = "version, group_name, approval_status, fingerprint, model_uri, evaluation_uri, metrics, lineage, created_at"


class LocalModelRegistry:
    def __init__(self, path: Path, group: str, artifacts: ArtifactStore) -> None:
        self.path = path
        self.group = group
        self._artifacts = artifacts

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=30)
        try:
            connection.executescript(_SCHEMA)
            with connection:  # one transaction: committed whole or rolled back whole
                yield connection
        finally:
            connection.close()

    def register(self, package: ModelPackage) -> ModelVersion:
        for uri in (package.model_uri, package.evaluation_uri):
            if not self._artifacts.exists(uri):
                raise FileNotFoundError(
                    f"refusing to register: artifact {uri} does not exist, so the package could never be deployed"
                )
        created = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO model_packages (group_name, approval_status, fingerprint, model_uri,"
                " evaluation_uri, metrics, lineage, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self.group,
                    package.approval_status,
                    package.fingerprint,
                    package.model_uri,
                    package.evaluation_uri,
                    json.dumps(package.metrics, sort_keys=True),
                    json.dumps(package.lineage, sort_keys=True),
                    created,
                ),
            )
            version = cursor.lastrowid
        assert version is not None
        return ModelVersion(version=version, group=self.group, created_at=created, package=package)

    def _one(self, where: str, *args: object) -> ModelVersion | None:
        # `where` is always a literal from this class; values go through placeholders.
        with self._connect() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM model_packages WHERE group_name = ? AND {where} "  # noqa: S608
                "ORDER BY version DESC LIMIT 1",
                (self.group, *args),
            ).fetchone()
        return _to_version(row) if row else None

    def get(self, version: int) -> ModelVersion:
        found = self._one("version = ?", version)
        if found is None:
            raise LookupError(f"model version {version} is not in the registry {self.path}")
        return found

    def champion(self) -> ModelVersion | None:
        return self._one("approval_status = 'Approved'")

    def find_by_fingerprint(self, fingerprint: str) -> ModelVersion | None:
        return self._one("fingerprint = ?", fingerprint)

    def versions(self) -> list[ModelVersion]:
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM model_packages WHERE group_name = ? ORDER BY version",  # noqa: S608
                (self.group,),
            ).fetchall()
        return [_to_version(row) for row in rows]


def _to_version(row: tuple[object, ...]) -> ModelVersion:
    version, group, status, fingerprint, model_uri, evaluation_uri, metrics, lineage, created = row
    package = ModelPackage(
        model_uri=str(model_uri),
        evaluation_uri=str(evaluation_uri),
        fingerprint=str(fingerprint),
        approval_status=status,  # type: ignore[arg-type]  # the CHECK constraint guarantees it
        metrics=json.loads(str(metrics)),
        lineage=json.loads(str(lineage)),
    )
    return ModelVersion(version=int(str(version)), group=str(group), created_at=str(created), package=package)
