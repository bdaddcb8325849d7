"""The desired state of an environment: a Pulumi stack config file.

In AWS this is infra/Pulumi.<env>.yaml, committed to git, and `pulumi up` reconciles
the endpoint to it. Locally it is a file of the same shape under .mlops/, and the deploy
step reconciles the local endpoint to it. Edits keep comments and key order, so a
promotion is a small diff (the version and the monitoring keys that go with it) that
`git revert` undoes.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from ml import atomic
from ml.errors import ConfigError

MODEL_VERSION_KEY = "model_version"


class StackConfigFile:
    def __init__(self, path: Path, namespace: str) -> None:
        self.path = path
        self.namespace = namespace
        self.key = f"{namespace}:{MODEL_VERSION_KEY}"
        self._yaml = YAML()
        self._yaml.preserve_quotes = True
        # Never fold a long line (a secrets provider URL, a key ARN): the file must read as it was written.
        self._yaml.width = 4096

    def _fix(self) -> str:
        """How to repair the file: a committed stack file comes back from git, local state is re-made."""
        tracked = subprocess.run(
            ["git", "ls-files", "--error-unmatch", self.path.name], cwd=self.path.parent, capture_output=True
        ) if self.path.parent.is_dir() else None  # fmt: skip
        if tracked is not None and tracked.returncode == 0:
            return f"fix it, or restore it: `git checkout -- {self.path}`"
        return f"fix it, or delete it and promote again (`make promote VERSION=<n>` writes a new {self.path.name})"

    def _load(self) -> CommentedMap:
        if not self.path.exists():
            return CommentedMap()
        try:
            document = self._yaml.load(self.path.read_text(encoding="utf-8"))
        except Exception as exc:  # ruamel raises several unrelated types for bad YAML
            raise ConfigError(f"{self.path} is not valid YAML ({exc}); {self._fix()}") from exc
        if document is None:
            return CommentedMap()
        if not isinstance(document, CommentedMap):
            raise ConfigError(f"{self.path} must be a YAML mapping with a 'config:' section; {self._fix()}")
        return document

    def read(self) -> int | None:
        config: Any = self._load().get("config") or {}
        value = config.get(self.key)
        if value in (None, ""):
            return None
        try:
            version = int(str(value))
        except ValueError:
            raise ConfigError(f"{self.path}: {self.key} is {value!r}; it must be a model version number") from None
        if version < 1:
            raise ConfigError(f"{self.path}: {self.key} must be 1 or more, not {version}")
        return version

    def value(self, key: str) -> str | None:
        """Another key of the stack file, as text (None when absent)."""
        config: Any = self._load().get("config") or {}
        found = config.get(f"{self.namespace}:{key}")
        return None if found in (None, "") else str(found)

    def write(self, version: int, extra: dict[str, str] | None = None) -> bool:
        """Set the version (and keys that belong with it, such as its monitoring baseline)."""
        document = self._load()
        config = document.setdefault("config", CommentedMap())
        wanted = {self.key: str(version), **{f"{self.namespace}:{k}": v for k, v in (extra or {}).items()}}
        if all(str(config.get(key, "")) == value for key, value in wanted.items()):
            return False
        for key, value in wanted.items():
            config[key] = value  # Pulumi config values are strings
        buffer = io.StringIO()
        self._yaml.dump(document, buffer)
        atomic.write_text(self.path, buffer.getvalue())
        return True
