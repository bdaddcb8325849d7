"""Artifacts in a local directory, keyed by content hash: local://sha256/<hash>/<name>."""

from __future__ import annotations

from pathlib import Path

from ml import atomic
from ml.hashing import file_sha256

SCHEME = "local://"


class LocalArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, uri: str) -> Path:
        if not uri.startswith(SCHEME):
            raise ValueError(f"{uri!r} is not a local artifact URI (expected {SCHEME}...)")
        relative = Path(uri.removeprefix(SCHEME))
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"{uri!r} points outside the artifact store")
        return self.root / relative

    def put(self, path: Path) -> str:
        uri = f"{SCHEME}sha256/{file_sha256(path)}/{path.name}"
        target = self._path(uri)
        if not target.exists():  # same hash, same bytes: storing twice is a no-op
            atomic.copy_file(path, target)
        return uri

    def get(self, uri: str, destination: Path) -> Path:
        source = self._path(uri)
        if not source.is_file():
            raise FileNotFoundError(f"artifact {uri} is missing from {self.root}")
        atomic.copy_file(source, destination)
        return destination

    def exists(self, uri: str) -> bool:
        return self._path(uri).is_file()
