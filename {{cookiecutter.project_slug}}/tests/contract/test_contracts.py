"""One contract per interface, run against both implementations: local and AWS (moto)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ml.backends import make_backends
from ml.backends.base import ArtifactStore, ModelPackage, ModelRegistry
from ml.config import load_config
from tests.aws_fixtures import Account

BACKENDS = ["local", "aws"]


@pytest.fixture(params=BACKENDS)
def backends(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    if request.param == "aws":
        request.getfixturevalue("aws")
    else:
        monkeypatch.setenv("MLOPS_ENV", "local")
        monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "state"))
    return make_backends(load_config())


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def package(store: ArtifactStore, tmp_path: Path, status: str, fingerprint: str) -> ModelPackage:
    model = store.put(write(tmp_path, f"{fingerprint}-model.tar.gz", fingerprint.encode()))
    evaluation = store.put(write(tmp_path, f"{fingerprint}-evaluation.json", b'{"candidate": {}}'))
    return ModelPackage(
        model_uri=model,
        evaluation_uri=evaluation,
        fingerprint=fingerprint,
        approval_status=status,  # type: ignore[arg-type]
        metrics={"roc_auc": 0.98, "accuracy": 0.95},
        lineage={"git_sha": "0123456789abcdef", "data_hash": "d" * 64},
    )


class TestArtifactStore:
    def test_put_is_content_addressed_and_idempotent(self, backends, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        store = backends.artifacts
        path = write(tmp_path, "train.csv", b"a,b\n1,2\n")
        uri = store.put(path)
        assert "/sha256/" in uri and uri.endswith("/train.csv")
        assert store.put(path) == uri
        assert store.exists(uri)
        assert store.get(uri, tmp_path / "copy" / "train.csv").read_bytes() == b"a,b\n1,2\n"

    def test_different_content_gets_a_different_uri(self, backends, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        first = backends.artifacts.put(write(tmp_path, "x.csv", b"1"))
        second = backends.artifacts.put(write(tmp_path, "x.csv", b"2"))
        assert first != second

    def test_a_missing_artifact_is_a_clear_error(self, backends, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        uri = backends.artifacts.put(write(tmp_path, "a.csv", b"1")).replace("a.csv", "gone.csv")
        assert not backends.artifacts.exists(uri)
        with pytest.raises(FileNotFoundError, match="missing"):
            backends.artifacts.get(uri, tmp_path / "out.csv")
        assert not (tmp_path / "out.csv").exists()


class TestModelRegistry:
    def test_versions_count_up_and_the_champion_is_the_latest_approved(self, backends, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        registry: ModelRegistry = backends.registry
        assert registry.champion() is None
        first = registry.register(package(backends.artifacts, tmp_path, "Approved", "f1"))
        second = registry.register(package(backends.artifacts, tmp_path, "Rejected", "f2"))
        assert (first.version, second.version) == (1, 2)
        champion = registry.champion()
        assert champion is not None and champion.version == 1
        found = registry.find_by_fingerprint("f2")
        assert found is not None and found.package.approval_status == "Rejected"
        assert registry.find_by_fingerprint("nope") is None
        assert [v.version for v in registry.versions()] == [1, 2]

    def test_a_version_round_trips_metrics_and_lineage(self, backends, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        original = package(backends.artifacts, tmp_path, "Approved", "f1")
        stored = backends.registry.get(backends.registry.register(original).version)
        assert stored.package == original

    def test_a_package_whose_artifacts_are_missing_is_refused(self, backends, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        good = package(backends.artifacts, tmp_path, "Approved", "f1")
        broken = ModelPackage(**{**good.__dict__, "model_uri": good.model_uri.replace("model.tar.gz", "gone.tar.gz")})
        with pytest.raises(FileNotFoundError, match="refusing to register"):
            backends.registry.register(broken)
        assert backends.registry.versions() == []

    def test_an_unknown_version_is_a_lookup_error(self, backends) -> None:  # type: ignore[no-untyped-def]
        with pytest.raises(LookupError):
            backends.registry.get(41)


class TestDesiredState:
    def test_write_read_and_no_op(self, backends) -> None:  # type: ignore[no-untyped-def]
        state = backends.desired_state
        assert state.read() is None
        assert state.write(3) is True
        assert state.write(3) is False
        assert state.read() == 3


def test_aws_objects_are_encrypted_with_the_stack_key(aws: Account, tmp_path: Path) -> None:
    store = make_backends(load_config()).artifacts
    uri = store.put(write(tmp_path, "x.csv", b"1,2\n"))
    bucket, key = uri[5:].split("/", 1)
    head = aws.client("s3").head_object(Bucket=bucket, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == aws.outputs["kms_key_arn"]
    assert bucket == aws.outputs["artifacts_bucket"]


Factory = Callable[..., object]
