"""The local artifact store, registry and desired-state file."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.backends.base import ModelPackage
from ml.backends.desired_state import StackConfigFile
from ml.backends.local_artifacts import LocalArtifactStore
from ml.backends.local_registry import LocalModelRegistry
from ml.errors import ConfigError


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")


@pytest.fixture
def registry(tmp_path: Path, store: LocalArtifactStore) -> LocalModelRegistry:
    return LocalModelRegistry(tmp_path / "registry.sqlite", "demo-local", store)


def package(
    store: LocalArtifactStore, tmp_path: Path, status: str = "Approved", fingerprint: str = "f1"
) -> ModelPackage:
    model = tmp_path / f"model-{fingerprint}-{status}.tar.gz"
    model.write_bytes(f"model {fingerprint} {status}".encode())
    evaluation = tmp_path / "evaluation.json"
    evaluation.write_text("{}")
    return ModelPackage(
        model_uri=store.put(model),
        evaluation_uri=store.put(evaluation),
        fingerprint=fingerprint,
        approval_status=status,  # type: ignore[arg-type]
        metrics={"roc_auc": 0.99},
        lineage={"git_sha": "abc"},
    )


def test_artifacts_are_content_addressed_and_idempotent(store: LocalArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "a.csv"
    source.write_text("x\n1\n")
    uri = store.put(source)
    assert uri.startswith("local://sha256/") and uri.endswith("/a.csv")
    assert store.put(source) == uri
    assert store.get(uri, tmp_path / "copy.csv").read_text() == "x\n1\n"
    assert not list((tmp_path / "artifacts").rglob("*.tmp"))


def test_artifact_uris_cannot_escape_the_store(store: LocalArtifactStore) -> None:
    with pytest.raises(ValueError, match="outside"):
        store.exists("local://../../etc/passwd")
    with pytest.raises(ValueError, match="not a local artifact"):
        store.exists("s3://bucket/key")


def test_a_missing_artifact_is_reported(store: LocalArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing"):
        store.get("local://sha256/00/none.csv", tmp_path / "x")


def test_versions_count_up_and_the_champion_is_the_latest_approved(
    registry: LocalModelRegistry, store: LocalArtifactStore, tmp_path: Path
) -> None:
    assert registry.champion() is None
    first = registry.register(package(store, tmp_path, "Approved", "f1"))
    second = registry.register(package(store, tmp_path, "Rejected", "f2"))
    assert (first.version, second.version) == (1, 2)
    champion = registry.champion()
    assert champion is not None and champion.version == 1
    found = registry.find_by_fingerprint("f2")
    assert found is not None and found.package.approval_status == "Rejected"
    assert [v.version for v in registry.versions()] == [1, 2]
    assert registry.get(1).package.lineage == {"git_sha": "abc"}


def test_a_package_whose_artifacts_are_missing_is_refused(
    registry: LocalModelRegistry, store: LocalArtifactStore, tmp_path: Path
) -> None:
    good = package(store, tmp_path)
    broken = ModelPackage(**{**good.__dict__, "model_uri": "local://sha256/00/gone.tar.gz"})
    with pytest.raises(FileNotFoundError, match="refusing to register"):
        registry.register(broken)
    assert registry.versions() == []


def test_an_unknown_version_is_a_lookup_error(registry: LocalModelRegistry) -> None:
    with pytest.raises(LookupError, match="not in the registry"):
        registry.get(9)


def test_desired_state_round_trips_and_keeps_comments(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.staging.yaml"
    path.write_text("# reviewed by the release manager\nconfig:\n  aws:region: eu-west-1  # keep\n")
    state = StackConfigFile(path, "demo")
    assert state.read() is None
    assert state.write(3) is True
    assert state.write(3) is False
    assert state.read() == 3
    text = path.read_text()
    assert "# reviewed by the release manager" in text and "# keep" in text
    assert "demo:model_version: '3'" in text


@pytest.mark.parametrize("value", ["latest", "0", "-2"])
def test_a_bad_desired_version_names_the_key(tmp_path: Path, value: str) -> None:
    path = tmp_path / "Pulumi.local.yaml"
    path.write_text(f"config:\n  demo:model_version: '{value}'\n")
    with pytest.raises(ConfigError, match="demo:model_version"):
        StackConfigFile(path, "demo").read()


def test_unreadable_desired_state_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.local.yaml"
    path.write_text("config: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        StackConfigFile(path, "demo").write(2)
    assert path.read_text() == "config: [unclosed\n"
