"""A local stand-in for the SageMaker scikit-learn serving container.

It unpacks model.tar.gz, imports code/inference.py (SAGEMAKER_PROGRAM) the way the
container does, and answers the SageMaker hosting contract on loopback:
GET /ping and POST /invocations. Run by ml/backends/local_endpoint.py as
`python -m ml.serving --model <model.tar.gz> --workdir <dir> --ready-file <file>`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import sys
import tarfile
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

from ml import atomic

MAX_BODY = 6 * 1024 * 1024  # SageMaker's invoke_endpoint payload limit


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


def make_handler(model: Model) -> type[BaseHTTPRequestHandler]:
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
            try:
                payload, mime = model.invoke(
                    body,
                    self.headers.get("Content-Type", "text/csv"),
                    self.headers.get("Accept", "application/json"),
                )
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
            self._send(HTTPStatus.OK, payload, mime)

    return Handler


def serve(model_tarball: Path, workdir: Path, host: str, port: int, ready_file: Path) -> None:
    model_dir = workdir / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(model_tarball) as archive:
        archive.extractall(model_dir, filter="data")
    model = Model(load_program(model_dir), model_dir)
    server = ThreadingHTTPServer((host, port), make_handler(model))
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
    args = parser.parse_args(argv)
    serve(args.model, args.workdir, args.host, args.port, args.ready_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
