"""Faults in the local runtime: kills, interrupts, two runs at once, damaged state, stale inputs.

Every test runs the real command line (`python -m ml ...`) in processes of its own, with its
own state directory, as a user's shell would, and checks what the user would then find.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from ml.__main__ import main
from ml.backends.local_artifacts import LocalArtifactStore
from ml.backends.local_endpoint import LocalEndpoint
from ml.config import PROJECT_ROOT, load_config
from ml.errors import EndpointError
from ml.lock import environment_lock
from ml.processes import ProcessRecord, command_digest, tagged
from tests.conftest import lenient_gate, open_gate, weak_training, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local-runtime")]
# The kill -9 cases are in tests/test_kill_anywhere.py, a group of their own (they run beside these).


def run(state: Path, *command: str, config: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "MLOPS_HOME": str(state), "MLOPS_ENV": "local", "COLUMNS": "200"}
    environment.pop("MLOPS_FAULT", None)
    environment.update(env)
    if config is not None:
        environment["MLOPS_CONFIG"] = str(config)
    else:
        environment.pop("MLOPS_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "ml", *command], cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True
    )


def cli(state: Path, *command: str, config: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """The same command line, in this process: main() as `python -m ml` calls it, output captured.

    Cheaper than a new interpreter, and it reuses this process's fork server for the jobs; the
    tests that need a process of the command's own (a kill, Ctrl-C, a race) use run().
    """
    output = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {"MLOPS_HOME": str(state), "MLOPS_ENV": "local", "COLUMNS": "200", **env}.items():
            patch.setenv(key, value)
        patch.delenv("MLOPS_FAULT", raising=False)
        if config is not None:
            patch.setenv("MLOPS_CONFIG", str(config))
        else:
            patch.delenv("MLOPS_CONFIG", raising=False)
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            code = main(list(command))
    return subprocess.CompletedProcess(["python", "-m", "ml", *command], code, output.getvalue(), "")


def endpoint_tag(state: Path) -> str:
    return f"mlops-endpoint:{(state / 'endpoint').resolve()}"


def registry_rows(state: Path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(state / "registry.sqlite") as db:
        return list(db.execute("SELECT version, fingerprint, approval_status FROM model_packages ORDER BY version"))


def serving_version(state: Path) -> int | None:
    record = state / "endpoint" / "endpoint.json"
    return int(json.loads(record.read_text())["version"]) if record.exists() else None


def desired_version(state: Path) -> int | None:
    text = (state / "desired-state" / "Pulumi.local.yaml").read_text()
    value = next(line.split(":", 2)[-1].strip().strip("'\"") for line in text.splitlines() if "model_version" in line)
    return int(value) if value else None


def configured(directory: Path, **sections: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return write_config(directory, **sections)


def cleanup(state: Path) -> None:
    """Stop whatever server a test left, as `make stop` would (in-process: no interpreter to start)."""
    if (state / "endpoint").is_dir():
        LocalEndpoint("cleanup", state / "endpoint", LocalArtifactStore(state / "artifacts")).stop()
    for leftover in tagged(endpoint_tag(state)):
        leftover.stop(grace=1)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """An empty state directory."""
    state = tmp_path / "state"
    try:
        yield state
    finally:
        cleanup(state)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state after one `make pipeline` (v1 registered and promoted), its endpoint stopped."""
    base = tmp_path_factory.mktemp("baseline") / "state"
    assert cli(base, "pipeline").returncode == 0
    assert cli(base, "stop").returncode == 0
    return base


@pytest.fixture
def trained(baseline: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the baseline: v1 registered and promoted, nothing serving."""
    state = tmp_path / "state"
    shutil.copytree(baseline, state, ignore=shutil.ignore_patterns("locks"))
    try:
        yield state
    finally:
        cleanup(state)


def test_ctrl_c_ends_with_one_line_and_a_failed_summary(state: Path) -> None:
    result = run(state, "pipeline", MLOPS_FAULT="interrupt:before:train")
    assert result.returncode == 130
    assert "Traceback" not in result.stdout + result.stderr
    assert "interrupted during the train step" in " ".join(result.stdout.split())
    summary = json.loads((state / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["failed_step"] == "train"


def test_a_damaged_registry_ends_with_one_line_and_the_fix(trained: Path) -> None:
    state = trained
    (state / "registry.sqlite").write_bytes(b"this is not a database at all" * 100)
    result = cli(state, "status")
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    assert "damaged" in result.stdout and "make registry-check REPAIR=1" in " ".join(result.stdout.split())


def test_an_unexpected_error_ends_with_one_line_its_log_and_a_failed_summary(state: Path) -> None:
    state.mkdir(parents=True)
    (state / "artifacts").write_text("a file where the artifact store belongs")
    result = cli(state, "pipeline")
    message = " ".join(result.stdout.split())
    assert result.returncode == 1 and "Traceback" not in result.stdout
    assert "unexpected" in message and "during the data step" in message and "the traceback is in" in message
    log = Path(message.split("the traceback is in ")[1].split()[0])
    assert "Traceback" in log.read_text()
    summary = json.loads((state / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["failed_step"] == "data"


def test_a_locked_registry_is_a_clear_error_not_a_half_minute_wait(
    trained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml.backends import local_registry

    monkeypatch.setattr(local_registry, "_BUSY_TIMEOUT", 0.2)
    holder = sqlite3.connect(trained / "registry.sqlite")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = cli(trained, "status")
    finally:
        holder.rollback()
        holder.close()
    assert result.returncode == 1 and "stayed locked" in " ".join(result.stdout.split())


def test_a_model_that_cannot_start_says_nothing_serves_when_nothing_did(state: Path, tmp_path: Path) -> None:
    from ml.backends.base import ModelPackage, ModelVersion

    store = LocalArtifactStore(state / "artifacts")
    broken = tmp_path / "model.tar.gz"
    with tarfile.open(broken, "w:gz") as archive:
        note = tmp_path / "README"
        note.write_text("no code/inference.py in here")
        archive.add(note, arcname="README")
    package = ModelPackage(store.put(broken), store.put(note), "broken", "Approved", {}, {})
    endpoint = LocalEndpoint("tests-local", state / "endpoint", store, project_root=PROJECT_ROOT, startup_timeout=60)
    with pytest.raises(EndpointError, match="nothing was serving before, and nothing serves now"):
        endpoint.deploy(ModelVersion(1, "tests-local", "2026-01-01T00:00:00+00:00", package))
    assert endpoint.status() is None


# ---- the lock ----


def test_a_second_run_is_refused_while_one_holds_the_environment(state: Path) -> None:
    config = load_config()
    with environment_lock(state, config.env, "pipeline"):
        result = cli(state, "pipeline")
    assert result.returncode == 75
    message = " ".join(result.stdout.split())
    assert f"`pipeline` (pid {os.getpid()}" in message and "busy" in message


def test_two_runs_started_together_register_one_version(state: Path) -> None:
    environment = {**os.environ, "MLOPS_HOME": str(state), "MLOPS_ENV": "local"}
    environment.pop("MLOPS_CONFIG", None)
    runs = [
        subprocess.Popen([sys.executable, "-m", "ml", "pipeline"], cwd=PROJECT_ROOT, env=environment,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]  # fmt: skip
    codes = sorted(process.wait() for process in runs)
    for process in runs:
        assert process.stdout is not None
        process.stdout.close()
    assert codes in ([0, 0], [0, 75])  # the second either waited its turn (and reused) or was refused
    assert len(registry_rows(state)) == 1
    assert (
        len(
            {p.pid for p in tagged(endpoint_tag(state))}
            - {int(p.stem) for p in (state / "endpoint" / "workers").glob("*.json")}
        )
        == 1
    )


# ---- the registry never restarts at v1 ----


def test_an_emptied_registry_is_refused_and_rebuilt_with_its_numbers(trained: Path, tmp_path: Path) -> None:
    state = trained
    before = registry_rows(state)
    (state / "registry.sqlite").unlink()
    second = configured(tmp_path / "second", data={"seed": 7}, gate=open_gate())
    refused = cli(state, "pipeline", config=second)
    assert refused.returncode == 1
    assert "is missing, but 1 version(s) were registered" in " ".join(refused.stdout.split())
    assert cli(state, "registry-check").returncode == 1
    assert cli(state, "registry-check", "--repair").returncode == 0
    assert registry_rows(state) == before
    assert cli(state, "pipeline", config=second).returncode == 0
    assert [version for version, _, _ in registry_rows(state)] == [1, 2]  # never v1 again


# ---- promotion: never an unseen artifact, a stale step file or an unchecked old version ----


def test_promote_refuses_a_version_whose_model_is_gone(trained: Path) -> None:
    state = trained
    desired = (state / "desired-state" / "Pulumi.local.yaml").read_bytes()
    for model in (state / "artifacts" / "sha256").glob("*/model.tar.gz"):
        model.unlink()
    result = cli(state, "promote", "--version", "1")
    assert result.returncode == 1 and "missing from the artifact store" in " ".join(result.stdout.split())
    assert (state / "desired-state" / "Pulumi.local.yaml").read_bytes() == desired


def test_promote_without_a_version_refuses_an_earlier_trainings_result(trained: Path, tmp_path: Path) -> None:
    state = trained
    changed = configured(tmp_path / "changed", data={"seed": 9})
    assert cli(state, "data", config=changed).returncode == 0
    assert cli(state, "train", config=changed).returncode == 0
    result = cli(state, "promote", config=changed)
    assert result.returncode == 1 and "is not registered yet" in " ".join(result.stdout.split())
    assert desired_version(state) == 1


def test_an_unchanged_older_version_is_compared_with_the_champion_before_it_serves(state: Path, tmp_path: Path) -> None:
    first = configured(tmp_path / "weak", gate=lenient_gate(), **weak_training())
    assert cli(state, "pipeline", config=first).returncode == 0
    strong = configured(tmp_path / "strong", gate=lenient_gate())
    assert cli(state, "pipeline", config=strong).returncode == 0
    assert serving_version(state) == 2
    again = cli(state, "pipeline", config=first)  # the weak model's inputs: v1 would be reused
    assert again.returncode == 3
    assert "trails champion v2" in " ".join(again.stdout.split())
    assert (desired_version(state), serving_version(state)) == (2, 2)


# ---- early validation and messages ----


def test_an_unknown_hyperparameter_fails_before_any_job(state: Path, tmp_path: Path) -> None:
    typo = configured(tmp_path / "typo", train={"hyperparameters": {"n_estimatorz": 10}})
    assert cli(state, "data", config=typo).returncode == 0
    result = cli(state, "train", config=typo)
    assert result.returncode == 1
    assert "[train.hyperparameters]" in result.stdout  # printed literally, not as rich markup
    assert "n_estimatorz, which" in " ".join(result.stdout.split()) and "does not take" in result.stdout
    assert not (state / "jobs").exists()


def test_mlops_home_naming_a_file_is_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("")
    result = cli(home, "status")
    assert result.returncode == 1 and "is a file (MLOPS_HOME names it)" in " ".join(result.stdout.split())


def test_a_damaged_local_desired_state_names_the_local_fix(trained: Path) -> None:
    state = trained
    (state / "desired-state" / "Pulumi.local.yaml").write_text("config: [unclosed")
    result = cli(state, "deploy")
    message = " ".join(result.stdout.split())
    assert result.returncode == 1 and "delete it and promote again" in message and "git" not in message


def test_status_says_when_nothing_is_desired_yet(state: Path) -> None:
    result = cli(state, "status")
    assert result.returncode == 0 and "desired state: no version yet" in result.stdout and "vNone" not in result.stdout


# ---- processes: recorded, matched, cleaned up ----


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "30"])
    yield process
    process.kill()
    process.wait()


def procfs_seen_by_psutil(tmp_path: Path, pid: int, monkeypatch: pytest.MonkeyPatch, btime_shift: int = 0) -> Path:
    """From now on psutil reads this procfs (its PROCFS_PATH): /proc's stat with btime moved by
    `btime_shift` seconds, and the process's own stat, status and cmdline, linked. Returns the
    process's folder, whose files a test may replace."""
    procfs = tmp_path / "proc"
    folder = procfs / str(pid)
    folder.mkdir(parents=True)
    stat = Path("/proc/stat").read_text()
    moved = re.sub(r"^btime (\d+)$", lambda m: f"btime {int(m[1]) + btime_shift}", stat, flags=re.M)
    (procfs / "stat").write_text(moved)
    for name in ("stat", "status", "cmdline"):
        (folder / name).symlink_to(f"/proc/{pid}/{name}")
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(procfs))
    return folder


@pytest.mark.skipif(sys.platform != "linux", reason="the boot time that moves is Linux's /proc/stat btime")
def test_a_recorded_server_is_still_itself_after_the_clock_moves_the_boot_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeper: subprocess.Popen[bytes]
) -> None:
    # /proc/stat gives the boot time in whole seconds, and the kernel moves it when NTP adjusts the
    # clock. A record made before it moved must still match the process after: psutil reads a
    # procfs that is /proc with btime one second later. (A live server taken for gone: "its server
    # is gone" in the rehearsal's prod verify in CI.)
    record = ProcessRecord.of(sleeper.pid)
    booted = psutil.boot_time()
    procfs_seen_by_psutil(tmp_path, sleeper.pid, monkeypatch, btime_shift=1)
    assert psutil.boot_time() == booted + 1  # psutil reads the moved boot time
    assert record.alive(), "a running process was taken for gone when the boot time moved"
    assert ProcessRecord.of(sleeper.pid) == record


@pytest.mark.skipif(sys.platform != "linux", reason="the window is Linux's execve: the exec pipe closes first")
def test_a_process_recorded_before_its_command_line_shows_is_recorded_by_its_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeper: subprocess.Popen[bytes]
) -> None:
    # Popen returns when execve closes the exec pipe, before the kernel sets the new program's
    # arguments: /proc/<pid>/cmdline reads empty for that moment (seen in the bench under load).
    # psutil reads a procfs whose cmdline is empty at first and filled a moment later.
    cmdline = procfs_seen_by_psutil(tmp_path, sleeper.pid, monkeypatch) / "cmdline"
    cmdline.unlink()
    cmdline.write_bytes(b"")
    later = threading.Timer(0.3, lambda: cmdline.write_bytes(Path(f"/proc/{sleeper.pid}/cmdline").read_bytes()))
    later.start()
    try:
        record = ProcessRecord.of(sleeper.pid)
    finally:
        later.join()
    assert record.command == command_digest(["sleep", "30"]), "the record holds the empty command line"
    assert record.alive()


def test_stop_never_signals_a_process_that_took_the_recorded_pid(state: Path) -> None:
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        record = ProcessRecord.of(stranger.pid)
        # The record names the stranger's pid, but another start time: it is not our server.
        endpoint_dir = state / "endpoint"
        endpoint_dir.mkdir(parents=True)
        forged = {"pid": record.pid, "started": record.started - 1000, "command": record.command}
        (endpoint_dir / "endpoint.json").write_text(
            json.dumps({"server": forged, "port": 1, "version": 1, "model_uri": "local://x"})
        )
        assert cli(state, "stop").returncode == 0
        assert stranger.poll() is None, "stop signalled a process that is not the endpoint"
    finally:
        stranger.kill()
        stranger.wait()


def _hand_over_and_die(tmp_path: Path, *, job: bool, die_with_parent: bool, mid_import: bool) -> tuple[int, Path]:
    """A process starts an interpreter that imports for a second and a half, maybe gives it a job
    (a script that writes a marker), and exits with no clean-up, as a killed deploy does: at once
    (before the interpreter has even started), or once the interpreter is importing (mid_import)."""
    importing = tmp_path / "importing"
    (tmp_path / "slow_import.py").write_text(f"import time\nopen({str(importing)!r}, 'w')\ntime.sleep(1.5)\n")
    marker = tmp_path / "ran"
    (tmp_path / "job.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    hand_over = (
        f"interpreter.run({str(tmp_path / 'job.py')!r}, [], cwd=Path({str(tmp_path)!r}), env=dict(os.environ), "
        f"log=Path({str(tmp_path / 'job.log')!r}))\n"
    )
    driver = tmp_path / "driver.py"
    driver.write_text(
        "import os\nfrom pathlib import Path\nfrom ml.backends.warm import WarmInterpreter\n"
        f"interpreter = WarmInterpreter(['slow_import'], die_with_parent={die_with_parent}, new_session=True,\n"
        f"    env=dict(os.environ, PYTHONPATH={str(tmp_path)!r}))\n"
        f"{hand_over if job else ''}"
        f"while {mid_import} and not os.path.exists({str(importing)!r}):\n    pass\n"
        "print(interpreter.pid, flush=True)\nos._exit(0)\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    started = subprocess.run([sys.executable, str(driver)], env=environment, capture_output=True, text=True, check=True)
    pid = int(started.stdout)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and psutil.pid_exists(pid) and not marker.exists():
        with contextlib.suppress(psutil.NoSuchProcess):
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
        time.sleep(0.05)
    return pid, marker


def test_a_server_told_to_serve_survives_a_deploy_that_dies_while_it_still_imports(tmp_path: Path) -> None:
    # The deploy writes the server's job and is killed (kill:during:deploy) before the server's
    # imports are done: the server was told to serve, so it serves, and the next deploy or
    # `make stop` finds it. It used to die with the deploy, when CI's load slowed its imports.
    _pid, marker = _hand_over_and_die(tmp_path, job=True, die_with_parent=False, mid_import=True)
    assert marker.exists(), "the interpreter died with the deploy that had handed it its job"


def test_an_interpreter_with_no_job_dies_with_its_parent_while_it_imports(tmp_path: Path) -> None:
    pid, marker = _hand_over_and_die(tmp_path, job=False, die_with_parent=False, mid_import=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and psutil.pid_exists(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
        time.sleep(0.05)
    alive = psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    assert not alive and not marker.exists(), "an interpreter nobody gave a job outlived its parent"


def test_a_job_that_must_die_with_its_parent_dies_even_if_the_parent_goes_before_it_starts(tmp_path: Path) -> None:
    # It used to take os.getppid() as its parent when it started: if the parent had already died,
    # that was init, and the job ran with nobody to answer to.
    _pid, marker = _hand_over_and_die(tmp_path, job=True, die_with_parent=True, mid_import=False)
    assert not marker.exists(), "a job that dies with its parent ran after its parent was gone"


def test_an_interrupted_deploy_leaves_no_server_behind(state: Path) -> None:
    killed = run(state, "pipeline", MLOPS_FAULT="kill:during:deploy")
    assert killed.returncode == -signal.SIGKILL
    leftovers = tagged(endpoint_tag(state))
    assert leftovers, "the killed deploy had started a server: this test needs one to clean up"
    assert cli(state, "stop").returncode == 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and tagged(endpoint_tag(state)):
        time.sleep(0.05)
    assert tagged(endpoint_tag(state)) == []


def test_a_job_dies_with_a_killed_pipeline(state: Path, tmp_path: Path) -> None:
    marker = tmp_path / "job.pid"
    code = tmp_path / "slow_train.py"
    # Written whole, then renamed: the test reads it as soon as it exists.
    code.write_text(
        f"import os, time\nopen({str(marker)!r} + '.tmp', 'w').write(str(os.getpid()))\n"
        f"os.replace({str(marker)!r} + '.tmp', {str(marker)!r})\ntime.sleep(60)\n"
    )
    driver = tmp_path / "driver.py"
    driver.write_text(
        "import sys\nfrom pathlib import Path\n"
        "from ml.backends.base import TrainingSpec\nfrom ml.backends.local_artifacts import LocalArtifactStore\n"
        "from ml.backends.local_jobs import LocalJobRunner\n"
        f"root = Path({str(tmp_path)!r})\nscript = Path({str(code)!r})\n"
        "if __name__ == '__main__':  # jobs are forked by multiprocessing, which re-reads a script's main\n"
        "    runner = LocalJobRunner(root / 'jobs', LocalArtifactStore(root / 'artifacts'))\n"
        "    runner.train(TrainingSpec('slow', script, (script,), {}, {}, 600))\n"
    )
    parent = subprocess.Popen(
        [sys.executable, str(driver)], cwd=PROJECT_ROOT, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not marker.exists():
        time.sleep(0.05)
    job = int(marker.read_text())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _running(job):
        time.sleep(0.05)
    assert not _running(job), "the training job outlived the pipeline that started it"


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for its parent to reap it."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_fixed_port_survives_version_switches(trained: Path, tmp_path: Path) -> None:
    import socket

    state = trained
    # A free port outside the kernel's ephemeral range (Linux: 32768 to 60999): the other tests'
    # endpoints take port 0, so none of them can be handed this one between the probe and the deploy.
    for port in random.Random().sample(range(20000, 30000), 200):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        break
    fixed = configured(tmp_path / "fixed", serve={"port": port})
    assert cli(state, "deploy", config=fixed).returncode == 0
    second = configured(tmp_path / "fixed2", serve={"port": port}, data={"seed": 11}, gate=open_gate())
    assert cli(state, "pipeline", config=second).returncode == 0
    record = json.loads((state / "endpoint" / "endpoint.json").read_text())
    assert (record["port"], record["version"]) == (port, 2)


def test_a_fixed_port_in_use_is_refused_at_once(state: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        fixed = configured(tmp_path / "busy", serve={"port": squatter.getsockname()[1]})
        result = cli(state, "pipeline", config=fixed)
    assert result.returncode == 1 and "is in use by another program" in " ".join(result.stdout.split())


def test_gc_keeps_the_recent_and_the_serving(trained: Path, tmp_path: Path) -> None:
    state = trained
    assert cli(state, "deploy").returncode == 0  # v1 serves, unpacked
    config = configured(tmp_path / "s21", data={"seed": 21}, gate=open_gate())
    assert cli(state, "pipeline", config=config).returncode == 0  # v2 serves; v1's folders remain
    assert len(list((state / "jobs").iterdir())) == 4  # a train and an eval job per run
    assert len([p for p in (state / "endpoint" / "versions").glob("v*") if p.is_dir()]) >= 2
    assert cli(state, "gc", "--keep", "1").returncode == 0
    assert len(list((state / "jobs").iterdir())) == 1
    versions = [p for p in (state / "endpoint" / "versions").glob("v*") if p.is_dir()]
    serving = json.loads((state / "endpoint" / "serving.json").read_text())["model_dir"]
    assert [str(p) for p in versions] == [serving]
    assert cli(state, "smoke-test", config=config).returncode == 0


def test_a_smoke_test_over_its_latency_budget_fails_the_pipeline(state: Path, tmp_path: Path) -> None:
    # No request is answered within a microsecond: deterministic, and no timing asserted here.
    tight = configured(tmp_path / "tight", serve={"smoke_test_p95_ms": 0.001})
    result = cli(state, "pipeline", config=tight)
    assert result.returncode != 0
    assert "is over the budget [serve].smoke_test_p95_ms = 0.001" in " ".join(result.stdout.split())
