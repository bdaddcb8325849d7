"""The local model server: the SageMaker scikit-learn serving container, on loopback.

The container runs gunicorn in front of a small WSGI application (sagemaker-containers' Flask
worker) that imports the model's code/inference.py (SAGEMAKER_PROGRAM), calls model_fn once,
then input_fn, predict_fn and output_fn per request. This server does the same with gunicorn,
and answers as that application does (tests/serving/ sends the same requests to both):

- GET /ping: 200, an empty body, Content-Type application/json, once the model is loaded.
- POST /invocations: the content type is the ContentType header, else Content-Type, else
  application/json, passed to input_fn exactly as sent; an Accept that is missing or */*
  means application/json; the body reaches input_fn as text for exactly application/json
  and text/csv, as bytes otherwise.
- Any exception a handler raises: 500 with Flask's generic HTML page. The container never
  answers 400 or 415 for a bad request; the reason is in its log (here, the server's log).
- A wrong method on those paths: 405; OPTIONS: 200 with the allowed methods. Another path that
  nginx passes on (it starts /ping, /invocations or /execution-parameters, which the model's
  code does not serve): Flask's 404 page. Any other path: 404 "{}", which nginx answers itself.

Locally it also plays SageMaker's front: a body over InvokeEndpoint's 6 MB limit gets 413 and
a body that stops arriving gets 408. Data capture (what a real-time endpoint with a
DataCaptureConfig writes to S3) happens in the background: a capture that fails is counted,
logged and shown by `make status`, and never fails a prediction.

One gunicorn master serves an endpoint for as long as it runs. A deploy writes the version to
serve into <root>/serving.json and sends the master SIGHUP: new workers load the new model, old
ones finish their requests and exit, and the listening socket is never closed, so a version
switch drops no connection and the endpoint keeps its port.

`python -m ml.serving serve --root <endpoint dir> --host ... --port ...` runs the server;
`python -m ml.serving check --model <model.tar.gz> --model-dir <dir>` unpacks a model and loads
it as a worker would, so a deploy can refuse a model that cannot serve before switching to it.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib.util
import json
import os
import queue
import socket
import sys
import tarfile
import threading
import traceback
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from ml import atomic

MAX_BODY = 6 * 1024 * 1024  # SageMaker's InvokeEndpoint payload limit
# A body this much larger is read and discarded so the client hears 413 rather than a reset.
DRAIN_LIMIT = 64 * 1024 * 1024
ENCODINGS = {"text/csv": "CSV", "application/json": "JSON"}
JSON = "application/json"
TEXT_BODIES = ("application/json", "text/csv")  # sagemaker-containers decodes exactly these
DEFAULT_ACCEPT = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", JSON)

# Flask 1.1.1 / Werkzeug 2.0.3, as pinned in the scikit-learn image, answer an unhandled
# exception and a wrong method with these pages.
ERROR_500 = (
    b'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n'
    b"<title>500 Internal Server Error</title>\n"
    b"<h1>Internal Server Error</h1>\n"
    b"<p>The server encountered an internal error and was unable to complete your request. "
    b"Either the server is overloaded or there is an error in the application.</p>\n"
)
ERROR_405 = (
    b'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n'
    b"<title>405 Method Not Allowed</title>\n"
    b"<h1>Method Not Allowed</h1>\n"
    b"<p>The method is not allowed for the requested URL.</p>\n"
)
ERROR_404 = (
    b'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n'
    b"<title>404 Not Found</title>\n"
    b"<h1>Not Found</h1>\n"
    b"<p>The requested URL was not found on the server. If you entered the URL manually please check your "
    b"spelling and try again.</p>\n"
)
HTML = "text/html; charset=utf-8"
# The container's nginx.conf hands exactly the paths that start so to the application.
APPLICATION_PATHS = ("/ping", "/invocations", "/execution-parameters")
ALLOWED = {"/ping": "GET, HEAD, OPTIONS", "/invocations": "OPTIONS, POST"}
# Werkzeug adds a charset to these when a response names one of them (get_content_type).
_CHARSET_TYPES = (
    "application/ecmascript",
    "application/javascript",
    "application/sql",
    "application/xml",
    "application/xml-dtd",
    "application/xml-external-parsed-entity",
)

Environ = dict[str, Any]
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


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
        by time even when several server processes (one per worker) wrote in one hour.
        A file someone deleted (`make drift-demo` clears the capture) is started afresh, not revived.
        """
        directory = self._root / now.strftime("%Y/%m/%d/%H")
        if self._file is None or self._file.parent != directory or not self._file.exists():
            directory.mkdir(parents=True, exist_ok=True)
            self._file = directory / f"{now:%M-%S}-{now.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
        return self._file

    def record(
        self, body: bytes, content_type: str, payload: bytes, mime: str, inference_id: str | None = None
    ) -> None:
        now = self._clock()

        def side(data: bytes, observed: str, mode: str) -> dict[str, str]:
            kind = observed.split(";")[0].strip().lower()
            encoding = ENCODINGS.get(kind)
            text = data.decode("utf-8", errors="replace") if encoding else base64.b64encode(data).decode()
            return {"observedContentType": observed, "mode": mode, "data": text, "encoding": encoding or "BASE64"}

        metadata = {"eventId": str(uuid.uuid4()), "inferenceTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        if inference_id:
            metadata["inferenceId"] = inference_id  # what ground-truth labels are joined on
        line = json.dumps(
            {
                "captureData": {
                    "endpointInput": side(body, content_type, "INPUT"),
                    "endpointOutput": side(payload, mime, "OUTPUT"),
                },
                "eventMetadata": metadata,
                "eventVersion": "0",
            }
        )
        with self._lock, self._file_for(now).open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


class BackgroundCapture:
    """Data capture off the request path: a queue and one writer thread per worker.

    A failed or dropped write is counted and logged, and never reaches the client: SageMaker's
    own capture is best-effort too. The counters are what `make status` shows.
    """

    def __init__(self, capture: DataCapture, on_change: Callable[[dict[str, Any]], None], size: int = 10_000) -> None:
        self._capture = capture
        self._queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=size)
        self._on_change = on_change
        self.stats: dict[str, Any] = {"captured": 0, "failed": 0, "dropped": 0, "last_error": ""}
        self._thread = threading.Thread(target=self._write, name="data-capture", daemon=True)
        self._thread.start()

    def record(self, *args: Any) -> None:
        try:
            self._queue.put_nowait(args)
        except queue.Full:
            self.stats["dropped"] += 1
            self._on_change(self.stats)

    def _write(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._capture.record(*item)
                self.stats["captured"] += 1
            except Exception as error:  # best-effort: a full disk or a bad directory stops capture only
                self.stats["failed"] += 1
                self.stats["last_error"] = f"{type(error).__name__}: {error}"
                print(f"data capture failed: {self.stats['last_error']}", file=sys.stderr, flush=True)
                self._on_change(self.stats)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop (a worker's graceful exit)."""
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)


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

    def invoke(self, body: bytes | str, content_type: str, accept: str) -> tuple[bytes, str]:
        data = self.module.input_fn(body, content_type)
        prediction = self.module.predict_fn(data, self.model)
        payload, mime = self.module.output_fn(prediction, accept)
        return (payload.encode() if isinstance(payload, str) else payload), mime


def extract(tarball: Path, model_dir: Path) -> None:
    """model.tar.gz into the model directory, as SageMaker unpacks it into /opt/ml/model."""
    model_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as archive:
        archive.extractall(model_dir, filter="data")


def unpack(tarball: Path, model_dir: Path) -> Model:
    """What the container does at start: unpack model.tar.gz, import code/inference.py, call model_fn."""
    extract(tarball, model_dir)
    return Model(load_program(model_dir), model_dir)


def response_type(mime: str) -> str:
    """The Content-Type Werkzeug sends for a response whose mimetype is `mime`."""
    if "charset=" in mime:
        return mime
    base = mime.split(";")[0].strip().lower()
    if (
        base.startswith("text/")
        or base in _CHARSET_TYPES
        or (base.startswith("application/") and base.endswith("+xml"))
    ):
        return f"{mime}; charset=utf-8"
    return mime


class ContainerApp:
    """The WSGI application: the container's answers for /ping and /invocations."""

    def __init__(
        self,
        model: Model,
        capture: BackgroundCapture | None = None,
        body_timeout: float = 60.0,
        log: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True),
    ) -> None:
        self.model = model
        self.capture = capture
        self.body_timeout = body_timeout
        self.log = log

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path in ALLOWED:
            allowed = ALLOWED[path]
            if method == "OPTIONS":  # Flask answers it for every route
                return self._send(start_response, "200 OK", b"", HTML, [("Allow", allowed)])
            if method not in allowed.split(", "):
                return self._send(start_response, "405 METHOD NOT ALLOWED", ERROR_405, HTML, [("Allow", allowed)])
            if path == "/ping":
                return self._send(start_response, "200 OK", b"", JSON)
            return self._invoke(environ, start_response)
        if path.startswith(APPLICATION_PATHS):
            return self._send(start_response, "404 NOT FOUND", ERROR_404, HTML)
        # nginx answers every other path itself.
        return self._send(start_response, "404 Not Found", b"{}", "application/octet-stream")

    def _send(
        self,
        start_response: StartResponse,
        status: str,
        body: bytes,
        mime: str,
        extra: list[tuple[str, str]] | None = None,
    ) -> list[bytes]:
        headers = [("Content-Type", mime), ("Content-Length", str(len(body))), *(extra or [])]
        start_response(status, headers)
        return [body]

    def _read_body(self, environ: Environ, start_response: StartResponse) -> bytes | list[bytes]:
        """The request body, or the response that refuses it (413, 408, 400)."""
        stream = environ["wsgi.input"]
        # A client that stops sending mid-body would hold this thread for ever without a timeout.
        client = environ.get("gunicorn.socket")
        if isinstance(client, socket.socket):
            client.settimeout(self.body_timeout)
        declared = environ.get("CONTENT_LENGTH")
        length = int(declared) if declared else None  # gunicorn has refused anything but digits
        try:
            if length is not None and length > MAX_BODY:
                self._discard(stream, length)
                return self._too_large(start_response)
            body = stream.read(length) if length is not None else stream.read(MAX_BODY + 1)
        except (TimeoutError, OSError):
            return self._send(
                start_response, "408 Request Timeout", b"the request body did not arrive in time\n", "text/plain"
            )
        if len(body) > MAX_BODY:
            return self._too_large(start_response)
        if length is not None and len(body) < length:
            return self._send(start_response, "400 Bad Request", b"the request body ended early\n", "text/plain")
        return bytes(body)

    def _discard(self, stream: Any, length: int) -> None:
        remaining = min(length, DRAIN_LIMIT)
        while remaining > 0 and (chunk := stream.read(min(remaining, 1 << 20))):
            remaining -= len(chunk)

    def _too_large(self, start_response: StartResponse) -> list[bytes]:
        message = f"the request body exceeds {MAX_BODY // (1024 * 1024)} MB, SageMaker's InvokeEndpoint limit\n"
        return self._send(start_response, "413 Request Entity Too Large", message.encode(), "text/plain")

    def _invoke(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        body = self._read_body(environ, start_response)
        if isinstance(body, list):
            return body
        content_type = environ.get("HTTP_CONTENTTYPE") or environ.get("CONTENT_TYPE") or JSON
        accept = environ.get("HTTP_ACCEPT") or ""
        accept = DEFAULT_ACCEPT if accept in ("", "*/*") else accept
        data: bytes | str = body.decode("utf-8", errors="replace") if content_type in TEXT_BODIES else body
        try:
            payload, mime = self.model.invoke(data, content_type, accept)
        except Exception:
            # The container logs the traceback and answers Flask's generic 500, whatever the error.
            self.log(f"handler error (answered 500, as the container does):\n{traceback.format_exc()}")
            return self._send(start_response, "500 INTERNAL SERVER ERROR", ERROR_500, HTML)
        if self.capture is not None:
            inference_id = environ.get("HTTP_X_AMZN_SAGEMAKER_INFERENCE_ID")
            self.capture.record(body, content_type, payload, mime, inference_id)
        return self._send(start_response, "200 OK", payload, response_type(mime))


# ---- the process: gunicorn, the serving state, and the version a master serves ----


def read_json(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def worker_file(root: Path, pid: int) -> Path:
    return root / "workers" / f"{pid}.json"


def build_app(root: Path, capture_dir: Path | None, endpoint_name: str, body_timeout: float) -> ContainerApp:
    """A worker's application: the model that <root>/serving.json names, loaded as the container loads it."""
    serving = read_json(root / "serving.json")
    model_dir = Path(serving["model_dir"])  # unpacked and checked by the deploy (`check`)
    model = Model(load_program(model_dir), model_dir)
    state = {"pid": os.getpid(), "version": serving["version"], "model_uri": serving["model_uri"]}

    def publish(stats: dict[str, Any] | None = None) -> None:
        atomic.write_text(worker_file(root, os.getpid()), json.dumps({**state, "capture": stats or {}}))

    capture = None
    if capture_dir is not None:
        capture = BackgroundCapture(DataCapture(capture_dir, endpoint_name), publish)
    publish(capture.stats if capture else None)
    return ContainerApp(model, capture, body_timeout)


def serve(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication  # the server only; checks and tests do without

    root: Path = args.root
    capture_dir: Path | None = args.capture_dir

    class Server(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type information
        def load_config(self) -> None:
            settings = {
                "bind": f"{args.host}:{args.port}",
                # The container's settings: one worker per core, a 60 s worker timeout. gthread
                # rather than gevent: the same answers, without gevent's monkey-patching.
                "workers": args.workers,
                "worker_class": "gthread",
                "threads": args.threads,
                "timeout": 60,
                "graceful_timeout": 30,
                # No keep-alive: a version switch retires the old workers, and a request sent on a kept
                # connection just as its worker closes it would be lost. A new connection per request
                # always reaches a live worker (the listening socket never closes).
                "keepalive": 0,
                "backlog": 2048,
                "loglevel": "info",
                "errorlog": "-",
                "preload_app": False,  # each worker loads what serving.json names; SIGHUP switches
                "when_ready": lambda server: atomic.write_text(
                    root / "server.json",
                    json.dumps({"pid": os.getpid(), "port": server.LISTENERS[0].sock.getsockname()[1]}),
                ),
                "worker_exit": lambda server, worker: _retire(root, worker),
                # Newer gunicorn opens a control socket in ~/.gunicorn, shared by every server of
                # the user; endpoints are controlled by signals here.
                "control_socket_disable": True,
            }
            for key, value in settings.items():
                if key in self.cfg.settings:  # a setting this gunicorn does not know is one it lacks
                    self.cfg.set(key, value)

        def load(self) -> ContainerApp:
            return build_app(root, capture_dir, args.endpoint_name, args.body_timeout)

    Server().run()
    return 0


def _retire(root: Path, worker: Any) -> None:
    app = getattr(worker, "wsgi", None)
    if isinstance(app, ContainerApp) and app.capture is not None:
        app.capture.close()
    worker_file(root, worker.pid).unlink(missing_ok=True)


def check(args: argparse.Namespace) -> int:
    """Unpack and load a model as a worker would; exit 0 if it could serve."""
    try:
        unpack(args.model, args.model_dir)
    except Exception:
        traceback.print_exc()
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="serve the endpoint whose state is in --root")
    run.add_argument("--root", type=Path, required=True, help="the endpoint's directory (serving.json, workers/)")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=0)
    run.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    run.add_argument("--threads", type=int, default=4)
    run.add_argument("--body-timeout", type=float, default=60.0)
    run.add_argument("--capture-dir", type=Path, help="write SageMaker data-capture records here")
    run.add_argument("--endpoint-name", default="local")
    verify = commands.add_parser("check", help="load a model as a worker would")
    verify.add_argument("--model", type=Path, required=True)
    verify.add_argument("--model-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    return serve(args) if args.command == "serve" else check(args)


if __name__ == "__main__":
    sys.exit(main())
