"""The generated project's local endpoint answers as the SageMaker scikit-learn container does.

One model, trained by the baked project's own tests/model_factory.py, is served twice: by the
baked project's `python -m ml.serving serve`, and by the container's serving stack
(sagemaker-containers' Flask worker under gunicorn and gevent), installed from the image's own
pins (tests/container/requirements-sklearn-1.4-2-py312.txt) into a virtualenv. The same
requests go to both over loopback, and status, Content-Type and body must match byte for byte.
A case that differs is our local server's bug (ml/serving.py), not the test's.

The image's glue package, sagemaker_sklearn_container, is not on PyPI; SERVING_GLUE below is
its serving.main, the part of it that gunicorn serves for a single model.

The last test runs the container's start-up step (installing the model's code/ with pip)
with no package index, for the pip the image gets and for pip 25.2.
"""

from __future__ import annotations

import csv
import glob
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from scripts.bakery import TEMPLATE, Baked, bake

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("container-parity")]

T = TypeVar("T")
REQUIREMENTS = TEMPLATE / "tests" / "container" / "requirements-sklearn-1.4-2-py312.txt"
GLUE_MODULE = "sklearn_container_serving"

# What the image's glue package (sagemaker_sklearn_container.serving:main, tag v1.4-2-py312) does
# for one model, written here because that package is not on PyPI: import the user module that
# SAGEMAKER_PROGRAM names, wrap its four handlers in sagemaker_containers' Transformer (the
# project's inference.py defines all four, so the image's default handlers never run), load the
# model once, and serve sagemaker_containers' Flask Worker. Everything that answers a request is
# sagemaker_containers' own code.
SERVING_GLUE = '''\
"""The single-model path of sagemaker_sklearn_container.serving:main, which is not on PyPI."""
import importlib

from sagemaker_containers.beta.framework import env, modules, transformer, worker

HANDLERS = ("model_fn", "input_fn", "predict_fn", "output_fn")
_app = None


def _application():
    serving = env.ServingEnv()
    try:
        user = importlib.import_module(serving.module_name)
    except ImportError:
        user = modules.import_module(serving.module_dir, serving.module_name)
    missing = [name for name in HANDLERS if not hasattr(user, name)]
    if missing:
        raise RuntimeError(f"{serving.module_name} lacks {missing}; this glue has no defaults for them")
    handlers = transformer.Transformer(**{name: getattr(user, name) for name in HANDLERS})
    handlers.initialize()
    return worker.Worker(
        transform_fn=handlers.transform,
        module_name=serving.module_name,
        execution_parameters_fn=getattr(user, "execution_parameters_fn", None),
    )


def main(environ, start_response):
    global _app
    if _app is None:
        _app = _application()
    return _app(environ, start_response)
'''


# ---- the interpreter and the container's virtualenv ----


@dataclass(frozen=True)
class Interpreter:
    path: str
    version: str


def _inspect(python: str) -> Interpreter | None:
    """The interpreter at `python` if it can build the image's sdists (venv with pip, C headers)."""
    probe = (
        "import ensurepip, os, sys, sysconfig, venv; "
        "assert os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')); "
        "print('%d.%d.%d' % sys.version_info[:3])"
    )
    try:
        result = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return Interpreter(python, result.stdout.strip()) if result.returncode == 0 else None


def _uv() -> str:
    return os.environ.get("UV") or shutil.which("uv") or str(TEMPLATE / ".tools" / "bin" / "uv")


def _uv_find(version: str) -> list[str]:
    try:
        result = subprocess.run([_uv(), "python", "find", version], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [result.stdout.strip()] if result.returncode == 0 and result.stdout.strip() else []


def _pyenv_pythons(minor: str) -> list[str]:
    roots = dict.fromkeys(r for r in (os.environ.get("PYENV_ROOT"), str(Path.home() / ".pyenv"), "/root/.pyenv") if r)
    found = [p for root in roots for p in glob.glob(f"{root}/versions/{minor}*/bin/python{minor}")]

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parents[1].name
        return tuple(int(part) for part in re.findall(r"\d+", name)[:3])

    return sorted(found, key=version, reverse=True)


def find_interpreter() -> Interpreter:
    """Python 3.12, the image's, where the machine has one; else 3.11, on which the pins install too."""
    candidates = [*_pyenv_pythons("3.12"), *_uv_find("3.12"), sys.executable, *_uv_find("3.11")]
    for candidate in candidates:
        interpreter = _inspect(candidate)
        if interpreter and interpreter.version.startswith(("3.12.", "3.11.")):
            return interpreter
    raise AssertionError(f"no Python 3.12 or 3.11 with venv, ensurepip and C headers among {candidates}")


def run_check(command: list[str], timeout: float, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
        )
    return str(result.stdout)


@dataclass(frozen=True)
class ContainerEnv:
    interpreter: Interpreter
    python: Path
    site_packages: Path

    @property
    def bin(self) -> Path:
        return self.python.parent


@pytest.fixture(scope="module")
def container_env(tmp_path_factory: pytest.TempPathFactory) -> ContainerEnv:
    """A virtualenv with the image's serving stack, patched as the image patches it."""
    interpreter = find_interpreter()
    print(f"container interpreter: Python {interpreter.version} at {interpreter.path}")
    root = tmp_path_factory.mktemp("container") / "venv"
    run_check([interpreter.path, "-m", "venv", str(root)], timeout=300)
    python = root / "bin" / "python"
    # As the image installs requirements.txt: with `uv pip install` (final/Dockerfile.cpu), which
    # resolves a little differently from pip (typing 3.10.0.0 where pip takes 3.7.4.3). The cache is
    # the caller's; on a cold one the psutil, retrying, inotify_simple and sagemaker-containers sdists
    # are built, so a C compiler is needed (about 20 s for the whole install).
    run_check([_uv(), "pip", "install", "--python", str(python), "-r", str(REQUIREMENTS)], timeout=1200)
    site = Path(run_check([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], 60).strip())
    # The image's own patch, from docker/1.4-2-py312/final/Dockerfile.cpu ("Fix Python 3.12
    # compatibility for sagemaker-containers"): in sagemaker_containers/_mapping.py,
    #   content = content.replace("collections.Mapping", "collections.abc.Mapping")
    # (The image's other patch, resources/patches/decoder.py, is to sagemaker_inference, which the
    # single-model path does not import and the requirements file leaves out.)
    mapping = site / "sagemaker_containers" / "_mapping.py"
    text = mapping.read_text(encoding="utf-8")
    assert "collections.Mapping" in text, f"{mapping} no longer needs the image's patch"
    mapping.write_text(text.replace("collections.Mapping", "collections.abc.Mapping"), encoding="utf-8")
    (site / f"{GLUE_MODULE}.py").write_text(SERVING_GLUE, encoding="utf-8")
    return ContainerEnv(interpreter, python, site)


# ---- the model, and the two servers ----


@dataclass(frozen=True)
class Data:
    """Rows of the project's data set, in the model's feature order, as the data file spells them."""

    features: list[str]
    rows: list[list[str]]

    def csv(self, count: int = 1) -> bytes:
        return "".join(",".join(row) + "\n" for row in self.rows[:count]).encode()

    def json_lists(self, count: int = 1) -> bytes:
        return json.dumps({"instances": [[float(v) for v in row] for row in self.rows[:count]]}).encode()

    def json_objects(self, count: int = 1) -> bytes:
        instances = [dict(zip(self.features, map(float, row), strict=True)) for row in self.rows[:count]]
        return json.dumps({"instances": instances}).encode()

    def json_with_first(self, token: str) -> bytes:
        """One JSON instance whose first value is `token`, written as is (NaN, null, [1], ...)."""
        return ('{"instances": [[' + ",".join([token, *self.rows[0][1:]]) + "]]}").encode()

    def csv_with_first(self, token: str) -> bytes:
        return (",".join([token, *self.rows[0][1:]]) + "\n").encode()


@dataclass(frozen=True)
class Model:
    tarball: Path
    data: Data


@pytest.fixture(scope="module")
def baked(tmp_path_factory: pytest.TempPathFactory) -> Baked:
    project = bake(tmp_path_factory.mktemp("parity-project"))
    project.run_check("make", "install", env={"UV": os.environ.get("UV", "uv")})
    return project


@pytest.fixture(scope="module")
def model(baked: Baked, tmp_path_factory: pytest.TempPathFactory) -> Model:
    directory = tmp_path_factory.mktemp("parity-model")
    baked.run_check(
        ".venv/bin/python",
        "-c",
        "import sys; from pathlib import Path; from tests.model_factory import model_tarball; "
        "print(model_tarball(Path(sys.argv[1])))",
        str(directory),
    )
    tarball = directory / "model.tar.gz"
    with tarfile.open(tarball) as archive:
        member = archive.extractfile("metadata.json")
        assert member is not None, f"{tarball} has no metadata.json"
        metadata = json.load(member)
    features, label = metadata["features"], metadata["label"]
    source = tomllib.loads(baked.read("mlops.toml"))["data"]["source"]
    with (baked.path / source).open(newline="") as handle:
        records = list(csv.DictReader(handle))
    # One row of each label, so a prediction of each kind is compared.
    picked = [next(r for r in records if r[label] == value) for value in ("1", "0")]
    return Model(tarball, Data(features, [[r[name] for name in features] for r in picked]))


def _unpack(tarball: Path, model_dir: Path) -> None:
    model_dir.mkdir(parents=True)
    with tarfile.open(tarball) as archive:
        archive.extractall(model_dir, filter="data")


def _wait(condition: Callable[[], T | None], timeout: float, what: str, log: Path) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout} s; its log:\n{log.read_text(errors='replace')[-6000:]}")


def _pings(port: int) -> bool | None:
    try:
        return send(port, Request("GET", "/ping")).status == 200 or None
    except OSError:
        return None


@dataclass
class Servers:
    container: int
    local: int


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()  # a gunicorn master: stops its workers and exits
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def servers(
    container_env: ContainerEnv, baked: Baked, model: Model, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Servers]:
    work = tmp_path_factory.mktemp("parity-servers")
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        # The container: the model unpacked into <base>/model, as SageMaker unpacks it into /opt/ml/model.
        base = work / "opt-ml"
        _unpack(model.tarball, base / "model")
        env = {
            **clean,
            "SAGEMAKER_BASE_DIR": str(base),
            "SAGEMAKER_PROGRAM": "inference.py",
            "SAGEMAKER_SUBMIT_DIRECTORY": str(base / "model" / "code"),
            "SAGEMAKER_SERVING_MODULE": f"{GLUE_MODULE}:main",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
        }
        # The container's start (sagemaker_containers._server.start) copies code/ to <base>/code, adds a
        # setup.py and pip-installs it, then puts <base>/code on gunicorn's --pythonpath. The copy and
        # the setup.py are done here; the pip install is test_the_containers_start_up_installs_code_offline's.
        run_check(
            [
                str(container_env.python),
                "-c",
                "import sys; from sagemaker_containers import _env, _files, _modules; "
                "_files.download_and_extract(sys.argv[1], _env.code_dir); _modules.prepare(_env.code_dir, 'inference')",
                env["SAGEMAKER_SUBMIT_DIRECTORY"],
            ],
            timeout=120,
            env=env,
        )
        container_log = work / "container.log"
        with container_log.open("wb") as log:
            # The command line sagemaker_containers._server.start runs for one worker, on loopback
            # (the image binds 0.0.0.0:8080 behind nginx).
            command = [
                str(container_env.bin / "gunicorn"),
                "--timeout", "60", "-k", "gevent", "--pythonpath", str(base / "code"),
                "-b", "127.0.0.1:0", "--worker-connections", "1000", "-w", "1", "--log-level", "info",
                f"{GLUE_MODULE}:main",
            ]  # fmt: skip
            processes.append(
                subprocess.Popen(
                    command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )

        def listening() -> int | None:
            found = re.search(rb"Listening at: http://127\.0\.0\.1:(\d+)", container_log.read_bytes())
            return int(found.group(1)) if found else None

        container_port = _wait(listening, 120, "the container's gunicorn did not listen", container_log)
        # The first request imports inference.py and calls model_fn (Transformer.initialize).
        _wait(lambda: _pings(container_port), 120, "the container did not answer /ping", container_log)

        # The local server: serving.json names the directory the same model.tar.gz is unpacked into.
        endpoint = work / "endpoint"
        endpoint.mkdir()
        _unpack(model.tarball, work / "local-model")
        serving = {"version": 1, "model_uri": str(model.tarball), "model_dir": str(work / "local-model")}
        (endpoint / "serving.json").write_text(json.dumps(serving))
        local_log = work / "local.log"
        with local_log.open("wb") as log:
            command = [
                ".venv/bin/python", "-m", "ml.serving", "serve", "--root", str(endpoint),
                "--host", "127.0.0.1", "--port", "0", "--workers", "1",
            ]  # fmt: skip
            processes.append(
                subprocess.Popen(
                    command, cwd=baked.path, env=clean, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )

        def local_port() -> int | None:
            state = endpoint / "server.json"
            return int(json.loads(state.read_text())["port"]) if state.exists() else None

        port = _wait(local_port, 120, "the local server did not listen", local_log)
        _wait(lambda: _pings(port), 120, "the local server did not answer /ping", local_log)
        yield Servers(container_port, port)
    finally:
        for process in processes:
            _stop(process)


# ---- the requests ----


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str | None
    body: bytes
    # Werkzeug lists the allowed methods in a set's order, which changes with the hash seed.
    allow: frozenset[str] | None = None

    def __str__(self) -> str:
        body = self.body if len(self.body) <= 400 else self.body[:400] + b"..."
        allow = sorted(self.allow) if self.allow is not None else None
        return f"{self.status}, Content-Type {self.content_type!r}, Allow {allow}, body {body!r}"


def send(port: int, request: Request) -> Answer:
    """One request on its own connection. http.client adds Host, Accept-Encoding and
    Content-Length only: a request without Content-Type or Accept goes without them."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(request.method, request.path, body=request.body, headers=request.headers)
        response = connection.getresponse()
        allow = response.getheader("Allow")
        methods = frozenset(m.strip() for m in allow.split(",")) if allow is not None else None
        return Answer(response.status, response.getheader("Content-Type"), response.read(), methods)
    finally:
        connection.close()


@dataclass(frozen=True)
class Case:
    id: str
    container_status: int  # what the container answers: checks the comparison is not vacuous
    body: Callable[[Data], bytes | None]
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"
    path: str = "/invocations"

    def request(self, data: Data) -> Request:
        return Request(self.method, self.path, self.body(data), self.headers)


CSV = {"Content-Type": "text/csv"}
JSON = {"Content-Type": "application/json"}


def raw(body: bytes | None) -> Callable[[Data], bytes | None]:
    return lambda _: body


# Every exception a handler raises is a 500 with Flask's HTML page in the container. Only the paths
# nginx hands to gunicorn (^/(ping|invocations|execution-parameters)) are compared: nginx itself
# answers any other path (404 "{}"), and no nginx runs here.
CASES = [
    Case("csv-accept-json", 200, Data.csv, {**CSV, "Accept": "application/json"}),
    Case("csv-two-rows-accept-csv", 200, lambda d: d.csv(2), {**CSV, "Accept": "text/csv"}),
    Case("csv-no-accept", 200, Data.csv, CSV),
    Case("csv-accept-any", 200, Data.csv, {**CSV, "Accept": "*/*"}),
    Case("csv-accept-with-parameters", 200, Data.csv, {**CSV, "Accept": "application/json; q=0.9"}),
    Case("csv-charset", 200, Data.csv, {"Content-Type": "text/csv; charset=utf-8"}),
    Case("csv-upper-case-type", 200, Data.csv, {"Content-Type": "TEXT/CSV"}),
    Case("json-lists", 200, lambda d: d.json_lists(2), JSON),
    Case("json-objects", 200, lambda d: d.json_objects(2), JSON),
    Case("json-bare-list", 200, lambda d: json.dumps([[float(v) for v in d.rows[0]]]).encode(), JSON),
    Case("json-charset", 200, Data.json_lists, {"Content-Type": "application/json; charset=utf-8"}),
    Case("json-accept-csv", 200, Data.json_lists, {**JSON, "Accept": "text/csv"}),
    # No Content-Type at all is application/json in the container.
    Case("no-content-type-json-body", 200, Data.json_lists),
    Case("no-content-type-csv-body", 500, Data.csv),
    # `ContentType`, the header some AWS services send, wins over Content-Type.
    Case("contenttype-header", 200, Data.csv, {"ContentType": "text/csv"}),
    Case("contenttype-header-wins", 200, Data.csv, {"ContentType": "text/csv", **JSON}),
    Case("csv-wrong-width", 500, lambda d: (",".join(d.rows[0][:3]) + "\n").encode(), CSV),
    Case("csv-empty-body", 500, raw(b""), CSV),
    Case("json-empty-body", 500, raw(b""), JSON),
    Case("no-content-type-empty-body", 500, raw(b"")),
    Case("json-bad", 500, raw(b"{not json"), JSON),
    Case("json-no-instances", 500, raw(b'{"instances": []}'), JSON),
    Case("json-nan", 500, lambda d: d.json_with_first("NaN"), JSON),
    Case("json-null", 500, lambda d: d.json_with_first("null"), JSON),
    Case("json-nested", 500, lambda d: d.json_with_first("[1]"), JSON),
    Case("json-infinite", 500, lambda d: d.json_with_first("Infinity"), JSON),
    Case("json-boolean", 500, lambda d: d.json_with_first("true"), JSON),
    # A number sent as JSON text reads as that number, as every CSV value does (ml/inference.py).
    Case("json-string", 200, lambda d: d.json_with_first('"12.5"'), JSON),
    Case("json-object-missing-feature", 500, lambda d: d.json_objects().replace(d.features[0].encode(), b"x"), JSON),
    Case("csv-nan", 500, lambda d: d.csv_with_first("nan"), CSV),
    Case("csv-infinite", 500, lambda d: d.csv_with_first("inf"), CSV),
    Case("csv-text-value", 500, lambda d: d.csv_with_first("abc"), CSV),
    Case("csv-invalid-utf8", 500, lambda d: b"\xff\xfe" + d.csv(), CSV),
    Case("unsupported-content-type", 500, Data.csv, {"Content-Type": "application/x-npy"}),
    Case("unsupported-accept", 500, Data.csv, {**CSV, "Accept": "text/html"}),
    Case("unsupported-accept-npy", 500, Data.json_lists, {**JSON, "Accept": "application/x-npy"}),
    Case("ping-get", 200, raw(None), method="GET", path="/ping"),
    Case("ping-head", 200, raw(None), method="HEAD", path="/ping"),
    Case("ping-with-query", 200, raw(None), method="GET", path="/ping?probe=1"),
    Case("ping-post", 405, raw(b""), method="POST", path="/ping"),
    Case("invocations-get", 405, raw(None), method="GET", path="/invocations"),
    # SageMaker batch transform asks for this path; a model without execution_parameters_fn has none.
    Case("execution-parameters-get", 404, raw(None), method="GET", path="/execution-parameters"),
    # nginx hands on any path that starts so; the application has no such route.
    Case("ping-prefixed-path", 404, raw(None), method="GET", path="/pingx"),
    Case("invocations-subpath", 404, raw(b""), method="POST", path="/invocations/extra"),
    Case("ping-options", 200, raw(None), method="OPTIONS", path="/ping"),
    Case("invocations-options", 200, raw(None), method="OPTIONS", path="/invocations"),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_the_local_server_answers_as_the_container(
    servers: Servers, model: Model, container_env: ContainerEnv, case: Case
) -> None:
    request = case.request(model.data)
    container, local = send(servers.container, request), send(servers.local, request)
    assert local == container, (
        f"{case.id}: the local server (ml/serving.py) answers differently from the container "
        f"(sagemaker-containers on Python {container_env.interpreter.version})\n"
        f"  request:   {request.method} {request.path} headers {request.headers} body {request.body!r:.200}\n"
        f"  container: {container}\n"
        f"  local:     {local}"
    )
    assert container.status == case.container_status, f"{case.id}: the container answered {container}"


# ---- the container's start-up without a package index ----

START = """\
import sys
from sagemaker_containers import _modules

# What sagemaker_containers._server.start does before it starts gunicorn: copy the model's
# code/ to <SAGEMAKER_BASE_DIR>/code, write a setup.py, `python -m pip install .`, import it.
module = _modules.import_module(sys.argv[1], "inference")
print("imported", module.__file__)
"""


def _offline_env(base: Path, cache: Path, extra: dict[str, str]) -> dict[str, str]:
    """No index and no pip configuration: none of the caller's PIP_* settings or pip.conf files."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    return {
        **keep,
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple/",  # the discard port: refused, should pip try it
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_CACHE_DIR": str(cache),
        "SAGEMAKER_BASE_DIR": str(base),
        "PYTHONDONTWRITEBYTECODE": "1",
        **extra,
    }


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2])


def test_the_containers_start_up_installs_code_offline(
    container_env: ContainerEnv, baked: Baked, model: Model, tmp_path: Path
) -> None:
    """The image gets the newest pip (get-pip.py). Since pip 25.3 a setup.py without a pyproject.toml
    is built in an isolated environment, which needs setuptools from an index: a container without
    network access cannot install the model's code/ unless build isolation is off, which pip spells
    PIP_NO_BUILD_ISOLATION=false (=1 keeps it on). pip 25.2 still used the environment's
    setuptools and wheel (the image pins both), isolation or not.
    """
    code = tmp_path / "model"
    _unpack(model.tarball, code)
    (tmp_path / "start.py").write_text(START)
    wheels = tmp_path / "wheels"
    python = str(container_env.python)
    # The only network use: the two pips, from the caller's index (PyPI).
    for spec, folder in (("pip", "latest"), ("pip==25.2", "25.2")):
        run_check([python, "-m", "pip", "download", "--no-deps", "-d", str(wheels / folder), spec], timeout=300)
    results: dict[tuple[str, str], bool] = {}
    outputs: dict[tuple[str, str], str] = {}
    # What the project registers as the serving container's environment (ml/backends/sagemaker_registry.py).
    registered = json.loads(
        baked.run_check(
            ".venv/bin/python",
            "-c",
            "import json; from ml.backends.sagemaker_registry import CONTAINER_ENVIRONMENT as e; print(json.dumps(e))",
        )
    )
    pip_settings = {k: v for k, v in registered.items() if k.startswith("PIP_")}
    configurations: dict[str, dict[str, str]] = {
        "the project's model package": pip_settings,
        "default": {},
        "PIP_NO_BUILD_ISOLATION=false": {"PIP_NO_BUILD_ISOLATION": "false"},
        "PIP_NO_BUILD_ISOLATION=1": {"PIP_NO_BUILD_ISOLATION": "1"},
    }
    for folder in ("latest", "25.2"):
        (wheel,) = (wheels / folder).glob("pip-*.whl")
        pip_version = wheel.name.split("-")[1]
        unpacked = wheels / folder / "installed"  # copied into each venv: faster than a pip run each
        run_check(
            [python, "-m", "pip", "install", "--no-index", "--no-deps", "--target", str(unpacked), str(wheel)], 120
        )
        for name, extra in configurations.items():
            run = tmp_path / f"{folder}-{len(results)}"
            venv = run / "venv"
            run_check([container_env.interpreter.path, "-m", "venv", "--without-pip", str(venv)], timeout=120)
            site = Path(
                run_check(
                    [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    60,
                ).strip()
            )
            # The image's packages (setuptools 80.9.0 and wheel 0.45.1 among them) are in the one
            # environment pip installs into; addsitedir also runs their .pth files (distutils on 3.12).
            (site / "container.pth").write_text(f"import site; site.addsitedir({str(container_env.site_packages)!r})\n")
            shutil.copytree(unpacked, site, dirs_exist_ok=True)
            result = subprocess.run(
                [str(venv / "bin" / "python"), str(tmp_path / "start.py"), str(code / "code")],
                cwd=run,
                env=_offline_env(run / "opt-ml", run / "pip-cache", extra),
                capture_output=True,
                text=True,
                timeout=300,
            )
            key = (pip_version, name)
            results[key] = result.returncode == 0 and f"imported {site}" in result.stdout
            outputs[key] = result.stdout[-3000:] + result.stderr[-3000:]
    table = "\n".join(f"  pip {pip}, {name}: {'installs' if ok else 'FAILS'}" for (pip, name), ok in results.items())
    print(f"container start-up without a package index (Python {container_env.interpreter.version}):\n{table}")
    expected = {}
    for pip, name in results:
        legacy = _version(pip) < (25, 3)  # setup.py bdist_wheel, in the environment itself
        expected[(pip, name)] = legacy or name in ("PIP_NO_BUILD_ISOLATION=false", "the project's model package")
    assert results == expected, f"offline start-up outcomes differ from the expected ones:\n{table}\n" + "\n".join(
        f"--- pip {pip}, {name} ---\n{outputs[(pip, name)]}" for (pip, name) in results
    )
    for (pip, name), installed in results.items():
        if not installed:  # the isolated build asked the (absent) index for setuptools
            assert "No matching distribution found for setuptools" in outputs[(pip, name)], outputs[(pip, name)]


# ---- the monitoring job on the image's libraries ----

MONITOR_INPUTS = """\
import json, os, sys
from pathlib import Path

sys.path.insert(0, os.getcwd())  # the baked project

import pandas as pd

from ml.config import load_config
from ml.serving import DataCapture
from ml.train import baseline
from tests.data_factory import project_schema

# A baseline and an hour of capture, made by the project's own code, in the processing-job layout.
root = Path(sys.argv[1])
frame = pd.read_csv(load_config().data.source)
contract = project_schema()
statistics, constraints = baseline(frame, contract.as_dict())
for name, document in (("statistics", statistics), ("constraints", constraints)):
    (root / "input" / name).mkdir(parents=True)
    (root / "input" / name / f"{name}.json").write_text(json.dumps(document))
capture = DataCapture(root / "capture", "endpoint")
for number, row in enumerate(frame[contract.names].head(200).itertuples(index=False)):
    body = (",".join(map(str, row)) + "\\n").encode()
    answer = json.dumps({"predictions": [{"label": 1, "probability": 0.9}]}).encode()
    capture.record(body, "text/csv", answer, "application/json", f"request-{number}")
"""


def test_the_monitoring_job_runs_on_the_images_libraries(
    container_env: ContainerEnv, baked: Baked, tmp_path: Path
) -> None:
    """ml/monitor_job.py runs in AWS in the scikit-learn image, its files side by side: run it so here."""
    root = tmp_path / "processing"
    (tmp_path / "inputs.py").write_text(MONITOR_INPUTS)
    baked.run_check(".venv/bin/python", str(tmp_path / "inputs.py"), str(root))
    files = json.loads(
        baked.run_check(
            ".venv/bin/python", "-c", "import json; from ml.monitor_job import FILES; print(json.dumps(FILES))"
        )
    )
    code = root / "input" / "code"
    code.mkdir(parents=True)
    for name in files:
        shutil.copy(baked.path / "ml" / name, code / name)
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    output = run_check(
        [str(container_env.python), str(code / files[0]), "--root", str(root),
         "--capture", str(root / "capture" / "endpoint" / "AllTraffic"), "--window-hours", "2"],
        timeout=300,
        env={**clean, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert json.loads(output.strip().splitlines()[-1])["rows"] == 200, output
    written = root / "output" / "monitoring"
    assert {"constraint_violations.json", "metrics.json", "report.md"} <= {p.name for p in written.iterdir()}
    assert list((written / "plots").glob("*.svg")), "the report has no plots"
