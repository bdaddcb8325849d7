"""An endpoint on loopback: one gunicorn master (ml/serving.py) per endpoint, one model version at a time.

The first deploy starts the master; it keeps its listening socket (and its port) for as long as
it runs. A later deploy first checks that the new model loads, in a process of its own, then
names it in serving.json and sends the master SIGHUP: new workers load it, old workers finish
their requests and exit. So a bad model never replaces a good one, a version switch drops no
request, and the URL stays the same: the local rehearsal of a blue/green deployment.

Everything started is recorded before it is waited for (endpoint.json, starting.json) with its
start time and command line (ml/processes.py), and signalled only while it still matches; an
interrupted deploy stops what it started, and `make stop` also stops servers that a killed
deploy never recorded. The server's interpreter can be started ahead (prepare()), importing
what serving needs while earlier steps run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml import atomic, faults
from ml.backends.base import ArtifactStore, EndpointStatus, ModelVersion
from ml.backends.warm import ForkServer, WarmInterpreter, WarmStarts, imports_of
from ml.errors import EndpointError
from ml.processes import ProcessRecord, tagged
from ml.serving import extract

_POLL = 0.01


@dataclass(frozen=True)
class _Serving:
    """endpoint.json: the server and the version it serves."""

    server: ProcessRecord
    port: int
    version: int
    model_uri: str

    @classmethod
    def load(cls, path: Path) -> _Serving | None:
        try:
            data = json.loads(path.read_text())
            return cls(
                ProcessRecord.from_json(data["server"]), int(data["port"]), int(data["version"]), data["model_uri"]
            )
        except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError, ValueError):
            return None

    def save(self, path: Path) -> None:
        body = {
            "server": self.server.to_json(),
            "port": self.port,
            "version": self.version,
            "model_uri": self.model_uri,
        }
        atomic.write_text(path, json.dumps(body, indent=2))


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
        forks: ForkServer | None = None,
        workers: int | None = None,
        body_timeout: float = 60.0,
    ) -> None:
        self.name = name
        self.root = root
        self._artifacts = artifacts
        self._host = host
        self._port = port
        self._timeout = startup_timeout
        self._project_root = project_root or Path(__file__).resolve().parents[2]
        self._warm = warm or WarmStarts()
        self._forks = forks or ForkServer(self._preload())
        self._workers = workers or os.cpu_count() or 1
        self._body_timeout = body_timeout
        self._record_file = root / "endpoint.json"
        self._starting_file = root / "starting.json"
        self._serving_file = root / "serving.json"
        self.log = root / "server.log"
        # Data capture, as a real-time endpoint with DataCaptureConfig writes it to S3.
        self.capture_dir = root / "data-capture"

    @property
    def tag(self) -> str:
        """In the command line of every server process of this endpoint, so each can be found."""
        return f"mlops-endpoint:{self.root.resolve()}"

    # ---- interpreters started ahead ----

    def _server_env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self._project_root), "SAGEMAKER_PROGRAM": "inference.py"}

    def _preload(self) -> list[str]:
        # What ml/serving.py, the model's inference.py and train.py (which names the estimator's
        # modules unpickling needs) import; not ml.serving itself, which runs as __main__.
        ml = self._project_root / "ml"
        return ["gunicorn.app.base", *imports_of([ml / "serving.py", ml / "inference.py", ml / "train.py"])]

    def _server_interpreter(self) -> WarmInterpreter:
        # Its own session: the server outlives `make deploy`, like a real endpoint.
        return WarmInterpreter(
            self._preload(), die_with_parent=False, new_session=True, env=self._server_env(), tag=self.tag
        )

    def prepare(self) -> None:
        """Get ready for a deploy: the fork server for a model check if a server runs, else the server's
        interpreter. With no server running, a fixed [serve].port in use fails here, before any training.
        """
        if self._current() is not None:
            self._forks.prepare()
        else:
            self._reserve_port()
            self._warm.prepare("server", self._server_interpreter)

    # ---- state ----

    def _url(self, port: int) -> str:
        return f"http://{self._host}:{port}"

    def _record(self) -> _Serving | None:
        return _Serving.load(self._record_file)

    def _current(self) -> _Serving | None:
        """The recorded server, if it is still the process that was recorded."""
        record = self._record()
        return record if record is not None and record.server.alive() else None

    def _ping(self, port: int) -> bool:
        try:
            with urllib.request.urlopen(f"{self._url(port)}/ping", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _workers_state(self) -> list[dict[str, Any]]:
        states = []
        for path in sorted((self.root / "workers").glob("*.json")):
            with contextlib.suppress(OSError, ValueError):
                state = json.loads(path.read_text())
                if _pid_alive(int(state["pid"])):
                    states.append(state)
        return states

    def status(self) -> EndpointStatus | None:
        record = self._record()
        if record is None:
            return None
        if not record.server.alive():
            return EndpointStatus(
                self.name, record.version, self._url(record.port), False, "its server is gone: run `make deploy`"
            )
        # A busy machine (a laptop compiling, CI running suites side by side) can keep a live server
        # from answering for seconds (verify failed so after a deploy in CI); one that stays silent
        # as long as a start may take ([serve].startup_timeout_seconds) is not healthy.
        deadline = time.monotonic() + self._timeout
        healthy = self._ping(record.port)
        while not healthy and time.monotonic() < deadline and record.server.alive():
            time.sleep(0.5)
            healthy = self._ping(record.port)
        failed = sum(int(w.get("capture", {}).get("failed", 0)) + int(w.get("capture", {}).get("dropped", 0))
                     for w in self._workers_state())  # fmt: skip
        detail = "" if healthy else "running, but /ping does not answer"
        if failed:
            errors = [w["capture"].get("last_error", "") for w in self._workers_state() if w.get("capture")]
            detail = f"data capture lost {failed} record(s) (last error: {next((e for e in errors if e), '?')})"
        return EndpointStatus(self.name, record.version, self._url(record.port), healthy, detail)

    # ---- deploy ----

    def deploy(self, version: ModelVersion) -> EndpointStatus:
        if not version.approved:
            raise EndpointError(
                f"v{version.version} is {version.package.approval_status}: only Approved versions are served. "
                "Promote an approved version (`make status` lists them)."
            )
        self._clean_interrupted_start()
        current = self._current()
        if current is not None and current.version == version.version and self._ping(current.port):
            return EndpointStatus(self.name, current.version, self._url(current.port), True)
        keeps = (
            f"v{current.version} keeps serving"
            if current is not None
            else "nothing was serving before, and nothing serves now"
        )
        model_dir = self.root / "versions" / f"v{version.version}-{time.time_ns()}"
        try:
            tarball = self._artifacts.get(version.package.model_uri, model_dir.parent / f"{model_dir.name}.tar.gz")
        except FileNotFoundError as error:
            raise EndpointError(f"cannot deploy v{version.version}: {error}; {keeps}") from None
        serving = {"version": version.version, "model_uri": version.package.model_uri, "model_dir": str(model_dir)}
        if current is None:
            return self._start(version, tarball, serving, keeps)
        return self._switch(current, version, tarball, serving, keeps)

    def _check(self, tarball: Path, model_dir: Path, keeps: str) -> None:
        """Load the model in a process of its own, as a worker would, before any worker is asked to."""
        log = model_dir.parent / f"{model_dir.name}.check.log"
        log.touch()
        process = self._forks.start(
            "ml.serving",
            ["check", "--model", str(tarball), "--model-dir", str(model_dir)],
            cwd=self._project_root,
            env=self._server_env(),
            log=log,
            module=True,
        )
        timer = threading.Timer(self._timeout, process.kill)
        timer.start()
        try:
            code = process.wait()
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            timer.cancel()
        if code != 0:
            raise EndpointError(f"the new model cannot be served, so it was not deployed; {keeps}.\n{_tail(log)}")

    def _start(self, version: ModelVersion, tarball: Path, serving: dict[str, Any], keeps: str) -> EndpointStatus:
        model_dir = Path(serving["model_dir"])
        self._reserve_port()
        # Unpacked here, once; each worker then loads it (ml/serving.py, build_app).
        extract(tarball, model_dir)
        atomic.write_text(self._serving_file, json.dumps(serving))
        (self.root / "server.json").unlink(missing_ok=True)
        self.log.touch()
        interpreter = self._warm.take("server", self._server_interpreter)
        # Recorded before it is told to serve: if this deploy dies from here on, the next deploy
        # (or `make stop`) stops it. The waiting interpreter is the process that will serve.
        server = ProcessRecord.of(interpreter.pid)
        atomic.write_text(self._starting_file, json.dumps(server.to_json()))
        process = interpreter.run(
            "ml.serving",
            ["serve", "--root", str(self.root), "--host", self._host, "--port", str(self._port),
             "--workers", str(self._workers), "--body-timeout", str(self._body_timeout),
             "--capture-dir", str(self.capture_dir), "--endpoint-name", self.name],
            cwd=self._project_root,
            env=self._server_env(),
            log=self.log,
            module=True,
        )  # fmt: skip
        faults.at("during", "deploy")
        try:
            port = self._wait_for(version.version, lambda: process.poll() is None, keeps)
        except BaseException:
            server.stop(grace=2)
            process.wait()
            self._starting_file.unlink(missing_ok=True)
            raise
        _Serving(server, port, version.version, version.package.model_uri).save(self._record_file)
        self._starting_file.unlink(missing_ok=True)
        return EndpointStatus(self.name, version.version, self._url(port), True)

    def _switch(
        self, current: _Serving, version: ModelVersion, tarball: Path, serving: dict[str, Any], keeps: str
    ) -> EndpointStatus:
        self._check(tarball, Path(serving["model_dir"]), keeps)
        previous = self._serving_file.read_text() if self._serving_file.exists() else None
        atomic.write_text(self._serving_file, json.dumps(serving))
        try:
            current.server.signal(signal.SIGHUP)
            faults.at("during", "deploy")
            port = self._wait_for(version.version, current.server.alive, keeps)
        except BaseException:
            # Back to the version that served: workers started for the new one are replaced again.
            if previous is not None:
                atomic.write_text(self._serving_file, previous)
                current.server.signal(signal.SIGHUP)
            raise
        _Serving(current.server, port, version.version, version.package.model_uri).save(self._record_file)
        return EndpointStatus(self.name, version.version, self._url(port), True)

    def _wait_for(self, version: int, running: Any, keeps: str) -> int:
        """The port, once a worker of `version` is up and /ping answers."""
        deadline = time.monotonic() + self._timeout
        port: int | None = None
        while time.monotonic() < deadline:
            if not running():
                raise EndpointError(
                    f"the model server exited before v{version} was ready; {keeps}.\n{_tail(self.log)}\n"
                    f"Full log: {self.log}"
                )
            if port is None:
                with contextlib.suppress(OSError, ValueError, KeyError):
                    port = int(json.loads((self.root / "server.json").read_text())["port"])
            ready = port is not None and any(w.get("version") == version for w in self._workers_state())
            if ready and port is not None and self._ping(port):
                return port
            time.sleep(_POLL)
        raise EndpointError(
            f"the model server did not serve v{version} within {self._timeout:.0f}s; {keeps}. "
            f"Raise [serve].startup_timeout_seconds or read {self.log}"
        )

    def _reserve_port(self) -> None:
        """A fixed [serve].port must be free when the endpoint starts: say so at once, not after retries."""
        if self._port == 0:
            return
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self._host, self._port))
            except OSError as error:
                raise EndpointError(
                    f"[serve].port {self._port} is in use by another program ({error}); free it, or set "
                    "[serve].port = 0 in mlops.toml to pick a free port"
                ) from None

    def _clean_interrupted_start(self) -> None:
        """A server that a deploy started and never recorded as serving (it was interrupted): stop it."""
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError, KeyError, TypeError, ValueError):
            ProcessRecord.from_json(json.loads(self._starting_file.read_text())).stop(grace=2)
        self._starting_file.unlink(missing_ok=True)

    # ---- traffic ----

    def invoke(self, body: bytes, content_type: str, accept: str, inference_id: str | None = None) -> bytes:
        record = self._current()
        if record is None:
            raise EndpointError(f"endpoint {self.name} is not serving; run `make deploy` first")
        # Always http://<loopback>:<port>, built above; never a user-supplied scheme.
        request = urllib.request.Request(  # noqa: S310
            f"{self._url(record.port)}/invocations",
            data=body,
            method="POST",
            headers={
                "Content-Type": content_type,
                "Accept": accept,
                # What invoke_endpoint's InferenceId becomes; data capture records it.
                **({"X-Amzn-SageMaker-Inference-Id": inference_id} if inference_id else {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace").strip()
            if exc.code == 500:
                # The container answers every handler error with a generic page; its log has the reason.
                detail = f"the model's handlers raised an error: {_last_error(self.log)} (server log: {self.log})"
            raise EndpointError(f"endpoint {self.name} answered HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise EndpointError(f"endpoint {self.name} did not answer ({exc}); `make status` shows its health") from exc

    def capture_location(self) -> str:
        return str(self.capture_dir / self.name / "AllTraffic")

    def ground_truth_location(self) -> str:
        return str(self.root / "ground-truth" / self.name)

    def record_ground_truth(self, path: Path, hour: str) -> str:
        target = Path(self.ground_truth_location()) / hour / path.name
        atomic.copy_file(path, target)
        return str(target)

    def stop(self) -> bool:
        """Stop the recorded server and any server of this endpoint that nothing recorded."""
        stopped = False
        record = self._record()
        if record is not None:
            stopped = record.server.stop()
        self._clean_interrupted_start()
        for orphan in tagged(self.tag):
            stopped = orphan.stop(grace=2) or stopped
        for path in (self._record_file, self._serving_file, self.root / "server.json"):
            path.unlink(missing_ok=True)
        for path in (self.root / "workers").glob("*.json"):
            path.unlink(missing_ok=True)
        return stopped


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no server log)"


def _last_error(log: Path) -> str:
    """The last exception line the server logged for a handler error."""
    try:
        text = log.read_text(errors="replace")
    except FileNotFoundError:
        return "(no server log)"
    block = text.rsplit("handler error", 1)[-1] if "handler error" in text else ""
    lines = [line for line in block.splitlines() if line and not line.startswith((" ", "Traceback", "["))]
    return lines[-1] if lines else "see the server log"
