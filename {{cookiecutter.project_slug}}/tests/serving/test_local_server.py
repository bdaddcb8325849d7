"""The local endpoint over HTTP: the answers, the limits, concurrency, capture faults and version switches.

One endpoint per module, serving a real model trained by train.py; every test talks to it
over loopback as a client would.
"""

from __future__ import annotations

import csv
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from ml.backends.base import ModelVersion
from ml.backends.local_artifacts import LocalArtifactStore
from ml.backends.local_endpoint import LocalEndpoint
from ml.config import PROJECT_ROOT
from ml.schema import Kind
from ml.serving import ERROR_500
from tests.data_factory import csv_line, good_frame, project_schema
from tests.model_factory import approved_version

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local-server")]

SCHEMA = project_schema()
ROW = csv_line(good_frame().iloc[0], SCHEMA.names)


@dataclass
class Served:
    endpoint: LocalEndpoint
    store: LocalArtifactStore
    root: Path
    first: ModelVersion

    @property
    def port(self) -> int:
        status = self.endpoint.status()
        assert status is not None and status.healthy
        return int(status.url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("server")
    store = LocalArtifactStore(root / "artifacts")
    endpoint = LocalEndpoint(
        "tests-local", root / "endpoint", store, startup_timeout=60, project_root=PROJECT_ROOT, body_timeout=1.0
    )
    first = approved_version(store, root / "models", 1)
    endpoint.deploy(first)
    try:
        yield Served(endpoint, store, root, first)
    finally:
        endpoint.stop()


def post(
    port: int, body: bytes, headers: dict[str, str] | None = None, path: str = "/invocations"
) -> tuple[int, bytes, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers.get("Content-Type", "")


def raw(port: int, data: bytes, close_after: bool = False) -> bytes:
    """Send bytes as they are (no client fixes the headers up) and read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(data)
        if close_after:
            connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer and not close_after:
                break
        return answer


CSV = {"Content-Type": "text/csv"}


def bad_bodies() -> list[object]:
    """Requests the handlers must refuse, built from the project's schema so they stay bad on any data:
    each changes one value of a good row (or its width) in a way the schema does not allow."""
    good = next(csv.reader([ROW]))
    features = SCHEMA.features
    required = [i for i, f in enumerate(features) if not f.nullable]
    numeric = [i for i, f in enumerate(features) if f.kind is Kind.NUMERIC]

    def json_with(index: int, value: str) -> bytes:
        values = [json.dumps(v) for v in good]
        values[index] = value
        return ('{"instances": [[' + ",".join(values) + "]]}").encode()

    def csv_with(index: int, value: str) -> bytes:
        values = list(good)
        values[index] = value
        return (csv_line(dict(zip(SCHEMA.names, values, strict=True)), SCHEMA.names) + "\n").encode()

    cases: list[object] = [
        pytest.param(json_with(0, "[1]"), {}, id="json-nested"),
        pytest.param(("," * (len(features) - 2) + "\n").encode() if len(features) > 1 else b"", CSV, id="csv-too-few"),
        pytest.param(b"", CSV, id="empty"),
        pytest.param(b"{not json", {}, id="bad-json"),
        pytest.param(ROW.encode(), {"Content-Type": "application/x-npy"}, id="unsupported-type"),
        pytest.param(ROW.encode(), {"Content-Type": "text/csv", "Accept": "text/html"}, id="unsupported-accept"),
    ]
    if required:  # a schema whose every feature may be missing has no bad null
        cases += [pytest.param(json_with(required[0], "null"), {}, id="json-null"),
                  pytest.param(json_with(required[0], "NaN"), {}, id="json-nan")]  # fmt: skip
    if numeric:
        cases += [pytest.param(json_with(numeric[0], "Infinity"), {}, id="json-infinite"),
                  pytest.param(csv_with(numeric[0], "nan"), CSV, id="csv-nan"),
                  pytest.param(csv_with(numeric[0], "inf"), CSV, id="csv-infinite")]  # fmt: skip
    return cases


@pytest.mark.parametrize(("body", "headers"), bad_bodies())
def test_bad_input_is_refused_as_the_container_refuses_it(served: Served, body: bytes, headers: dict[str, str]) -> None:
    status, answer, content_type = post(served.port, body, headers)
    assert (status, answer, content_type) == (500, ERROR_500, "text/html; charset=utf-8")


def without_content_type(port: int, body: bytes) -> bytes:
    """A POST with no Content-Type header at all (urllib would add a form type of its own)."""
    head = f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    return raw(port, head.encode() + body, close_after=True)


def test_a_request_without_content_type_is_read_as_json(served: Served) -> None:
    first = good_frame().iloc[0]
    values = [None if pd.isna(first[name]) else first[name] for name in SCHEMA.names]
    instance = json.dumps({"instances": [values]}, default=lambda v: v.item()).encode()
    assert without_content_type(served.port, instance).startswith(b"HTTP/1.1 200")
    # A CSV row is not JSON: refused, as the container refuses it.
    assert without_content_type(served.port, ROW.encode()).startswith(b"HTTP/1.1 500")


def test_good_requests_are_answered_in_both_formats(served: Served) -> None:
    status, answer, content_type = post(served.port, f"{ROW}\n".encode(), CSV)
    assert status == 200 and content_type == "application/json"
    prediction = json.loads(answer)["predictions"][0]
    assert prediction["label"] in SCHEMA.classes if SCHEMA.task.is_classification else "value" in prediction
    status, answer, content_type = post(served.port, f"{ROW}\n".encode(), {**CSV, "Accept": "text/csv"})
    assert status == 200 and content_type == "text/csv; charset=utf-8"


def test_other_paths_and_methods_answer_as_nginx_and_flask_do(served: Served) -> None:
    assert post(served.port, b"", path="/nowhere")[:2] == (404, b"{}")
    with urllib.request.urlopen(f"http://127.0.0.1:{served.port}/ping", timeout=10) as ping:
        assert (ping.status, ping.read(), ping.headers["Content-Type"]) == (200, b"", "application/json")
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{served.port}/invocations", timeout=10)
    except urllib.error.HTTPError as error:
        assert error.code == 405
    else:
        raise AssertionError("GET /invocations was answered")


@pytest.mark.parametrize("declared", [b"-1", b"abc", b"1e3"])
def test_a_content_length_that_is_not_a_count_is_refused(served: Served, declared: bytes) -> None:
    request = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: " + declared
    answer = raw(served.port, request + b"\r\nConnection: close\r\n\r\n" + ROW.encode())
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]


def test_a_body_cut_short_is_refused(served: Served) -> None:
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 4000\r\n\r\n"
    answer = raw(served.port, head + ROW.encode(), close_after=True)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]


def test_a_body_that_stops_arriving_times_out_and_frees_the_server(served: Served) -> None:
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 4000\r\n\r\n"
    answer = raw(served.port, head + ROW.encode())  # then nothing more: the client stalls
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert post(served.port, f"{ROW}\n".encode(), CSV)[0] == 200


@pytest.mark.parametrize("megabytes", [7, 50])
def test_a_body_over_six_megabytes_gets_413_not_a_broken_pipe(served: Served, megabytes: int) -> None:
    status, answer, _ = post(served.port, b"1," * (megabytes * 512 * 1024), CSV)
    assert status == 413 and b"6 MB" in answer


def test_sixteen_concurrent_clients_all_get_answers(served: Served) -> None:
    failures: list[str] = []

    def client() -> None:
        for _ in range(40):
            status, _, _ = post(served.port, f"{ROW}\n".encode(), CSV)
            if status != 200:
                failures.append(str(status))

    threads = [threading.Thread(target=client) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_a_failing_capture_never_fails_a_prediction_and_status_tells(served: Served) -> None:
    capture = served.endpoint.capture_dir / served.endpoint.name / "AllTraffic"
    hour = capture / time.strftime("%Y/%m/%d/%H", time.gmtime())
    # Where the capture directory of this hour belongs, a file: every write fails.
    if hour.exists():
        for path in hour.iterdir():
            path.unlink()
        hour.rmdir()
    hour.parent.mkdir(parents=True, exist_ok=True)
    hour.write_text("not a directory")
    try:
        for _ in range(5):
            assert post(served.port, f"{ROW}\n".encode(), CSV)[0] == 200
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "data capture lost" not in (served.endpoint.status() or object()).detail:  # type: ignore[attr-defined]
            time.sleep(0.05)
        status = served.endpoint.status()
        assert status is not None and status.healthy
        assert "data capture lost" in status.detail
    finally:
        hour.unlink()


def test_a_version_switch_under_load_drops_nothing_and_keeps_the_port(served: Served) -> None:
    port = served.port
    second = approved_version(served.store, served.root / "models", 2, n_estimators=30, seed=1)
    failures: list[str] = []
    answered = [0]
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            status, _, _ = post(port, f"{ROW}\n".encode(), CSV)
            if status != 200:
                failures.append(str(status))
            answered[0] += 1
            time.sleep(0.005)  # steady traffic, not a flood: the switch is what is under test

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.2)
        served.endpoint.deploy(second)
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    status = served.endpoint.status()
    assert status is not None and status.version == 2 and status.url.endswith(f":{port}")
    assert answered[0] > 0 and failures == []
    served.endpoint.deploy(served.first)  # back, for the tests after this one
