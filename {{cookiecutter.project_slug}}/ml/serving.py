"""A local stand-in for the SageMaker scikit-learn serving container.

It unpacks model.tar.gz, imports code/inference.py (SAGEMAKER_PROGRAM) the way the
container does, and answers the SageMaker hosting contract on loopback:
GET /ping and POST /invocations. Run by ml/backends/local_endpoint.py as
`python -m ml.serving --model <model.tar.gz> --workdir <dir> --ready-file <file>`.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import os
import signal
import sys
import tarfile
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

from ml import atomic

MAX_BODY = 6 * 1024 * 1024  # SageMaker's invoke_endpoint payload limit
ENCODINGS = {"text/csv": "CSV", "application/json": "JSON"}


class DataCapture:
    """Writes one JSON line per request in SageMaker's data-capture format.

    Files are laid out as SageMaker lays them out in S3: <endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl,
    so the monitor reads local and captured-in-AWS data the same way.
    """

    def __init__(
        self,
        root: Path,
        endpoint: str,
        variant: str = "AllTraffic",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._root = root / endpoint / variant
        self._lock = threading.Lock()
        self._file: Path | None = None
        self._clock = clock

    def _file_for(self, now: datetime) -> Path:
        """This process's file for the hour of `now`, named as SageMaker names them: mm-ss-mmm-<uuid>.

        Names start with the time of their first record, so sorting the paths sorts the records
        by time even when several server processes (one per deployed version) wrote in one hour.
        A file someone deleted (`make drift-demo` clears the capture) is started afresh, not revived.
        """
        directory = self._root / now.strftime("%Y/%m/%d/%H")
        if self._file is None or self._file.parent != directory or not self._file.exists():
            directory.mkdir(parents=True, exist_ok=True)
            self._file = directory / f"{now:%M-%S}-{now.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
        return self._file

    def record(self, body: bytes, content_type: str, payload: bytes, mime: str) -> None:
        now = self._clock()

        def side(data: bytes, observed: str, mode: str) -> dict[str, str]:
            kind = observed.split(";")[0].strip().lower()
            encoding = ENCODINGS.get(kind)
            text = data.decode("utf-8") if encoding else base64.b64encode(data).decode()
            return {"observedContentType": observed, "mode": mode, "data": text, "encoding": encoding or "BASE64"}

        line = json.dumps(
            {
                "captureData": {
                    "endpointInput": side(body, content_type, "INPUT"),
                    "endpointOutput": side(payload, mime, "OUTPUT"),
                },
                "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
                "eventVersion": "0",
            }
        )
        with self._lock, self._file_for(now).open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def load_program(model_dir: Path) -> ModuleType:
    program = os.environ.get("SAGEMAKER_PROGRAM", "inference.py")
    path = model_dir / "code" / program
    spec = importlib.util.spec_from_file_location("inference", path)
    if spec is None or spec.loader is None or not path.exists():
        raise FileNotFoundError(f"model.tar.gz has no code/{program}; the container could not serve it")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = [fn for fn in ("model_fn", "input_fn", "predict_fn", "output_fn") if not hasattr(module, fn)]
    if missing:
        raise AttributeError(f"code/{program} lacks handler(s): {', '.join(missing)}")
    return module


class Model:
    def __init__(self, module: ModuleType, model_dir: Path) -> None:
        self.module = module
        self.model = module.model_fn(str(model_dir))

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        data = self.module.input_fn(body, content_type)
        prediction = self.module.predict_fn(data, self.model)
        payload, mime = self.module.output_fn(prediction, accept)
        return (payload.encode() if isinstance(payload, str) else payload), mime


def make_handler(model: Model, capture: DataCapture | None = None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "mlops-local-sklearn"

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

        def _send(self, status: int, body: bytes, mime: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", mime)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/ping":
                self._send(HTTPStatus.OK, b"")
            else:
                self._send(HTTPStatus.NOT_FOUND, b"use GET /ping or POST /invocations\n")

        def do_POST(self) -> None:
            if self.path != "/invocations":
                self._send(HTTPStatus.NOT_FOUND, b"use POST /invocations\n")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"payload exceeds 6 MB\n")
                return
            body = self.rfile.read(length)
            content_type = self.headers.get("Content-Type", "text/csv")
            try:
                payload, mime = model.invoke(body, content_type, self.headers.get("Accept", "application/json"))
            except Exception as exc:  # the container answers every handler error over HTTP
                status = (
                    HTTPStatus.UNSUPPORTED_MEDIA_TYPE
                    if type(exc).__name__ == "UnsupportedFormatError"
                    else HTTPStatus.BAD_REQUEST
                    if isinstance(exc, ValueError)
                    else HTTPStatus.INTERNAL_SERVER_ERROR
                )
                self._send(status, f"{type(exc).__name__}: {exc}\n".encode())
                return
            if capture is not None:
                capture.record(body, content_type, payload, mime)
            self._send(HTTPStatus.OK, payload, mime)

    return Handler


def serve(
    model_tarball: Path, workdir: Path, host: str, port: int, ready_file: Path, capture: DataCapture | None = None
) -> None:
    model_dir = workdir / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(model_tarball) as archive:
        archive.extractall(model_dir, filter="data")
    model = Model(load_program(model_dir), model_dir)
    server = ThreadingHTTPServer((host, port), make_handler(model, capture))
    # SIGTERM is how the endpoint manager retires an old version; finish cleanly.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    bound_port = server.server_address[1]
    atomic.write_text(ready_file, json.dumps({"pid": os.getpid(), "port": bound_port}))
    print(f"serving {model_tarball} on http://{host}:{bound_port}", file=sys.stderr, flush=True)
    with server:
        server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--capture-dir", type=Path, help="write SageMaker data-capture records here")
    parser.add_argument("--endpoint-name", default="local")
    args = parser.parse_args(argv)
    capture = DataCapture(args.capture_dir, args.endpoint_name) if args.capture_dir else None
    serve(args.model, args.workdir, args.host, args.port, args.ready_file, capture)
    return 0


if __name__ == "__main__":
    sys.exit(main())
