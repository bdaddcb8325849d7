"""A model registry in SQLite, shaped like a SageMaker model package group.

Every registration is also written to a journal, one JSON file per version, beside the artifacts
it names (<artifacts>/registry-journal/<group>/v<N>.json). So a registry database that is
deleted or damaged is never silently re-created empty, which would restart version numbers at
v1 and put a different model under an old number: while the journal holds versions, the
registry refuses to work without its database, and `make registry-check REPAIR=1` rebuilds the
database from the journal, version numbers included.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from ml import atomic
from ml.backends.base import ArtifactStore, ModelPackage, ModelVersion
from ml.errors import PipelineError

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
# How long a command waits for another that is writing the database. The environment lock
# (ml/lock.py) keeps writers apart, so this only covers a reader meeting a writer's commit.
_BUSY_TIMEOUT = 5.0


class RegistryDamagedError(PipelineError):
    """The registry database is missing or unreadable while the journal says versions exist."""


@dataclass(frozen=True)
class RegistryCheck:
    database: str  # "ok", "missing" or "damaged: ..."
    journal_versions: list[int]
    database_versions: list[int]

    @property
    def healthy(self) -> bool:
        return self.database == "ok" and set(self.journal_versions) <= set(self.database_versions)


class LocalModelRegistry:
    def __init__(self, path: Path, group: str, artifacts: ArtifactStore, journal: Path | None = None) -> None:
        self.path = path
        self.group = group
        self._artifacts = artifacts
        self.journal = journal or path.parent / "artifacts" / "registry-journal" / group

    def _journal_versions(self) -> list[int]:
        return sorted(int(p.stem[1:]) for p in self.journal.glob("v*.json") if p.stem[1:].isdigit())

    def _fix(self) -> str:
        return (
            f"`make registry-check` reports the damage; `make registry-check REPAIR=1` rebuilds {self.path.name} "
            f"from the journal in {self.journal} (every version keeps its number)"
        )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        journal = self._journal_versions()
        if not self.path.exists() and journal:
            raise RegistryDamagedError(
                f"the model registry {self.path} is missing, but {len(journal)} version(s) were registered "
                f"(up to v{journal[-1]}); it is not re-created empty, which would reuse version numbers. {self._fix()}"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT)
        try:
            try:
                connection.executescript(_SCHEMA)
                with connection:  # one transaction: committed whole or rolled back whole
                    yield connection
            except sqlite3.OperationalError as error:
                if "locked" in str(error) or "busy" in str(error):
                    raise PipelineError(
                        f"the model registry {self.path} stayed locked for {_BUSY_TIMEOUT:.0f}s by another "
                        "process; if no other command runs, a crashed one may hold it: retry"
                    ) from None
                raise RegistryDamagedError(
                    f"the model registry {self.path} cannot be read ({error}). {self._fix()}"
                ) from None
            except sqlite3.DatabaseError as error:
                raise RegistryDamagedError(
                    f"the model registry {self.path} is damaged ({error}). {self._fix()}"
                ) from None
        finally:
            connection.close()

    def register(self, package: ModelPackage, card: str = "") -> ModelVersion:
        for uri in (package.model_uri, package.evaluation_uri):
            if not self._artifacts.exists(uri):
                raise FileNotFoundError(
                    f"refusing to register: artifact {uri} does not exist, so the package could never be deployed"
                )
        created = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connect() as db:
            # Never below a number the journal has seen: a rebuilt database continues the numbering.
            floor = max(self._journal_versions(), default=0)
            current = db.execute("SELECT COALESCE(MAX(version), 0) FROM model_packages").fetchone()[0]
            if floor > current:
                updated = db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'model_packages'", (floor,))
                if updated.rowcount == 0:
                    db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('model_packages', ?)", (floor,))
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
            registered = ModelVersion(version=version, group=self.group, created_at=created, package=package)
            # Written inside the transaction: if this fails, the version is not registered either.
            if card:
                atomic.write_text(self.journal / "model-cards" / f"v{version}.json", card)  # not a journal entry
            self._write_journal(registered)
        return registered

    def _write_journal(self, model: ModelVersion) -> None:
        atomic.write_text(self.journal / f"v{model.version}.json", json.dumps(asdict(model), indent=2, sort_keys=True))

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

    # ---- make registry-check ----

    def check(self) -> RegistryCheck:
        journal = self._journal_versions()
        if not self.path.exists():
            return RegistryCheck("missing" if journal else "ok", journal, [])
        try:
            versions = [v.version for v in self.versions()]
        except RegistryDamagedError as error:
            return RegistryCheck(f"damaged: {error}", journal, [])
        return RegistryCheck("ok", journal, versions)

    def repair(self) -> RegistryCheck:
        """Rebuild the database from the journal; a damaged database is kept beside it, not deleted."""
        if self.path.exists():
            self.path.replace(self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"))
        models = [_from_journal(json.loads(p.read_text())) for p in sorted(self.journal.glob("v*.json"))]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT)
        try:
            connection.executescript(_SCHEMA)
            with connection:
                for model in sorted(models, key=lambda m: m.version):
                    package = model.package
                    connection.execute(
                        f"INSERT INTO model_packages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                        (
                            model.version,
                            model.group,
                            package.approval_status,
                            package.fingerprint,
                            package.model_uri,
                            package.evaluation_uri,
                            json.dumps(package.metrics, sort_keys=True),
                            json.dumps(package.lineage, sort_keys=True),
                            model.created_at,
                        ),
                    )
        finally:
            connection.close()
        return self.check()


def _from_journal(data: dict[str, object]) -> ModelVersion:
    package = dict(data["package"])  # type: ignore[call-overload]
    return ModelVersion(
        version=int(str(data["version"])),
        group=str(data["group"]),
        created_at=str(data["created_at"]),
        package=ModelPackage(**package),
    )


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
