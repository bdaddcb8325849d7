"""An endpoint on loopback: one `python -m ml.serving` process per deployed version.

A new version starts beside the old one and takes over only once /ping answers, so a
bad model never replaces a good one: the local rehearsal of a blue/green deployment.
The server's interpreter can be started ahead (prepare()), importing what serving needs
while evaluation runs; the deploy then only unpacks and loads the model.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from ml import atomic
from ml.backends.base import ArtifactStore, EndpointStatus, ModelVersion
from ml.backends.warm import WarmInterpreter, WarmStarts, imports_of
from ml.errors import EndpointError

_POLL = 0.01


@dataclass(frozen=True)
class _Record:
    pid: int
    port: int
    version: int
    model_uri: str


class LocalEndpoint:
    def __init__(
        self,
        name: str,
        root: Path,
        artifacts: ArtifactStore,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout: float = 60.0,
        project_root: Path | None = None,
        warm: WarmStarts | None = None,
    ) -> None:
        self.name = name
        self.root = root
        self._artifacts = artifacts
        self._host = host
        self._port = port
        self._timeout = startup_timeout
        self._project_root = project_root or Path(__file__).resolve().parents[2]
        self._state = root / "endpoint.json"
        # Data capture, as a real-time endpoint with DataCaptureConfig writes it to S3.
        self.capture_dir = root / "data-capture"
        self._warm = warm or WarmStarts()

    def _server_env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self._project_root), "SAGEMAKER_PROGRAM": "inference.py"}

    def _interpreter(self) -> WarmInterpreter:
        ml = self._project_root / "ml"
        # What ml/serving.py and the model's inference.py import, and train.py's imports, which name
        # the estimator's modules unpickling needs; not ml.serving itself, which runs as __main__
        # (`python -m ml.serving`) once the deploy says which model to serve.
        preload = imports_of([ml / "serving.py", ml / "inference.py", ml / "train.py"])
        # Its own session: the server outlives `make deploy`, like a real endpoint.
        return WarmInterpreter(preload, die_with_parent=False, new_session=True, env=self._server_env())

    def prepare(self) -> None:
        """Queue the server's interpreter; it imports while earlier steps run."""
        self._warm.prepare("server", self._interpreter)

    def _url(self, port: int) -> str:
        return f"http://{self._host}:{port}"

    def _record(self) -> _Record | None:
        try:
            return _Record(**json.loads(self._state.read_text()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None

    def _ping(self, port: int) -> bool:
        try:
            with urllib.request.urlopen(f"{self._url(port)}/ping", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def status(self) -> EndpointStatus | None:
        record = self._record()
        if record is None:
            return None
        healthy = _alive(record.pid) and self._ping(record.port)
        return EndpointStatus(self.name, record.version, self._url(record.port), healthy)

    def deploy(self, version: ModelVersion) -> EndpointStatus:
        current = self.status()
        if current and current.healthy and current.version == version.version:
            return current
        workdir = self.root / "versions" / f"v{version.version}-{time.time_ns()}"
        tarball = self._artifacts.get(version.package.model_uri, workdir / "model.tar.gz")
        ready = workdir / "ready.json"
        log = workdir / "server.log"
        log.touch()
        interpreter = self._warm.take("server", self._interpreter)
        process = interpreter.run(
            "ml.serving",
            ["--model", str(tarball), "--workdir", str(workdir), "--ready-file", str(ready), "--host", self._host,
             "--port", str(self._port), "--capture-dir", str(self.capture_dir), "--endpoint-name", self.name],
            cwd=self._project_root,
            env=self._server_env(),
            log=log,
            module=True,
        )  # fmt: skip
        port = self._wait_ready(process, ready, log)
        previous = self._record()
        atomic.write_text(
            self._state, json.dumps(asdict(_Record(process.pid, port, version.version, version.package.model_uri)))
        )
        if previous and previous.pid != process.pid:
            _terminate(previous.pid)
        return EndpointStatus(self.name, version.version, self._url(port), True)

    def _wait_ready(self, process: subprocess.Popen[bytes], ready: Path, log: Path) -> int:
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise EndpointError(
                    f"the model server exited with code {process.returncode} before it was ready; "
                    f"the previous version keeps serving.\n{_tail(log)}\nFull log: {log}"
                )
            if ready.exists():
                port = int(json.loads(ready.read_text())["port"])
                if self._ping(port):
                    return port
            time.sleep(_POLL)
        process.kill()
        process.wait()
        raise EndpointError(
            f"the model server did not answer /ping within {self._timeout:.0f}s; the previous "
            f"version keeps serving. Raise [serve].startup_timeout_seconds or read {log}"
        )

    def invoke(self, body: bytes, content_type: str, accept: str) -> bytes:
        record = self._record()
        if record is None or not _alive(record.pid):
            raise EndpointError(f"endpoint {self.name} is not serving; run `make deploy` first")
        # Always http://<loopback>:<port>, built above; never a user-supplied scheme.
        request = urllib.request.Request(  # noqa: S310
            f"{self._url(record.port)}/invocations",
            data=body,
            method="POST",
            headers={"Content-Type": content_type, "Accept": accept},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace").strip()
            raise EndpointError(f"endpoint {self.name} answered HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise EndpointError(f"endpoint {self.name} did not answer ({exc}); `make status` shows its health") from exc

    def capture(self, scratch: Path) -> Path:
        return self.capture_dir

    def stop(self) -> bool:
        record = self._record()
        if record is None:
            return False
        _terminate(record.pid)
        self._state.unlink(missing_ok=True)
        return True


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child that already exited
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate(pid: int, grace: float = 5.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(_POLL)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
