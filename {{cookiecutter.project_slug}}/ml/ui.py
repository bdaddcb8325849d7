"""`make ui`: MLflow's tracking UI over the project's runs, on 127.0.0.1, stopped by `make stop`.

The server runs in a session of its own (MLflow starts uvicorn and a job runner under it), recorded
like the model server (ml/processes.py), so `make stop` signals that group and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ml import atomic, tracking
from ml.config import Config
from ml.errors import PipelineError
from ml.processes import ProcessRecord

DEFAULT_PORT = 5000  # MLflow's own
START_SECONDS = 120.0  # the first start creates the database: seconds on a small machine


@dataclass(frozen=True)
class Running:
    url: str
    record: ProcessRecord


def _record_path(config: Config) -> Path:
    return tracking.store_dir(config) / "ui.json"


def running(config: Config) -> Running | None:
    try:
        data = json.loads(_record_path(config).read_text())
        record = ProcessRecord.from_json(data["process"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Running(str(data["url"]), record) if record.alive() else None


def _free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def choose_port(wanted: int) -> int:
    """MLOPS_UI_PORT (MLflow's 5000 by default), or a free port when that one is taken."""
    if wanted and _free(wanted):
        return wanted
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:  # noqa: S310 - our loopback URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start(config: Config) -> tuple[Running, bool]:
    """The UI's URL, starting the server if it is not running; True when this call started it."""
    found = running(config)
    if found is not None and _healthy(found.url):
        return found, False
    if not tracking.installed():
        raise PipelineError("MLflow is not installed: run `make ui` (it installs the `tracking` group first)")
    wanted = int(os.environ.get("MLOPS_UI_PORT", DEFAULT_PORT))
    port = choose_port(wanted)
    url = f"http://127.0.0.1:{port}"
    log = tracking.store_dir(config) / "ui.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", tracking.tracking_uri(config),
        "--default-artifact-root", tracking.artifact_root(config),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with log.open("ab") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    record = ProcessRecord.of(process.pid)
    atomic.write_text(_record_path(config), json.dumps({"url": url, "process": record.to_json()}))
    deadline = time.monotonic() + START_SECONDS
    while not _healthy(url):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(config)
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-10:])
            raise PipelineError(f"the MLflow UI did not start on {url}; the end of {log}:\n{tail}")
        time.sleep(0.2)
    return Running(url, record), True


def stop(config: Config, grace: float = 10.0) -> bool:
    """Stop the UI's whole process group; False if it was not running."""
    found = running(config)
    with contextlib.suppress(FileNotFoundError):
        _record_path(config).unlink()
    if found is None:
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(found.record.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while found.record.alive() and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(found.record.pid, os.WNOHANG)
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(found.record.pid, signal.SIGKILL)
    return True
