"""Training and processing jobs as local subprocesses that honour the SageMaker contract.

A training job gets the directory layout and SM_* variables the SageMaker training
toolkit provides, hyperparameters as --name value arguments, and its model directory
is packed into model.tar.gz. A processing job gets /opt/ml/processing-style input and
output directories. So a script that runs here runs unchanged in the real container.

Each job is a process of its own, forked from a fork server that imported the jobs' libraries
once (ml/backends/warm.py), started when the pipeline says jobs will come, so the imports
overlap with the steps before.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import threading
import time
from pathlib import Path

from ml.backends.base import (
    ArtifactStore,
    ProcessingResult,
    ProcessingSpec,
    TrainingResult,
    TrainingSpec,
)
from ml.backends.warm import ForkServer, imports_of
from ml.errors import JobFailedError

_LOG_TAIL = 20


class LocalJobRunner:
    # How long one second of MaxRuntimeInSeconds lasts: a real second, except in the test that
    # proves a job past its limit is stopped (it shortens this rather than wait).
    SECOND = 1.0

    def __init__(self, root: Path, artifacts: ArtifactStore, forks: ForkServer | None = None) -> None:
        self.root = root
        self._artifacts = artifacts
        self._forks = forks

    def _fork_server(self, source_files: tuple[Path, ...]) -> ForkServer:
        if self._forks is None:
            self._forks = ForkServer(imports_of(source_files))
        return self._forks

    def prepare(self, source_files: tuple[Path, ...]) -> None:
        """Start the fork server the jobs running these files come from; it imports meanwhile."""
        self._fork_server(source_files).prepare()

    def _prepare(self, job_name: str, source_files: tuple[Path, ...]) -> Path:
        job_dir = self.root / job_name
        if job_dir.exists():
            raise JobFailedError(f"job {job_name} already exists; job names must be unique")
        code = job_dir / "code"
        code.mkdir(parents=True)
        for source in source_files:
            shutil.copy2(source, code / source.name)
        return job_dir

    def stop(self, kind: str, name: str) -> bool:
        """Nothing outlives its command here: a local job ends with the process that started it."""
        return False

    def train(self, spec: TrainingSpec) -> TrainingResult:
        job_dir = self._prepare(spec.job_name, spec.source_files)
        model_dir, output_dir = job_dir / "model", job_dir / "output"
        config_dir = job_dir / "input" / "config"
        for directory in (model_dir, output_dir / "data", config_dir):
            directory.mkdir(parents=True)
        env = {
            "SM_MODEL_DIR": str(model_dir),
            "SM_OUTPUT_DIR": str(output_dir),
            "SM_OUTPUT_DATA_DIR": str(output_dir / "data"),
            "SM_INPUT_DIR": str(job_dir / "input"),
            "SM_CHANNELS": json.dumps(sorted(spec.channels)),
            "SM_HPS": json.dumps(spec.hyperparameters),
            "SM_CURRENT_HOST": "algo-1",
            "SM_HOSTS": json.dumps(["algo-1"]),
            "SM_NUM_CPUS": str(os.cpu_count() or 1),
            "SM_USER_ENTRY_POINT": spec.entry_point.name,
            "SM_TRAINING_JOB_NAME": spec.job_name,
        }
        for channel, uri in spec.channels.items():
            channel_dir = job_dir / "input" / "data" / channel
            self._artifacts.get(uri, channel_dir / Path(uri).name)
            env[f"SM_CHANNEL_{channel.upper()}"] = str(channel_dir)
        (config_dir / "hyperparameters.json").write_text(json.dumps(spec.hyperparameters))
        arguments = [item for name, value in spec.hyperparameters.items() for item in (f"--{name}", value)]
        seconds = self._run(spec, job_dir, arguments, env)

        tarball = output_dir / "model.tar.gz"
        # gzip's default level: level 9 (tarfile's default) takes ten times longer for a 1 % smaller file.
        with tarfile.open(tarball, "w:gz", compresslevel=6) as archive:
            for item in sorted(model_dir.iterdir()):
                archive.add(item, arcname=item.name)
        return TrainingResult(spec.job_name, self._artifacts.put(tarball), seconds)

    def process(self, spec: ProcessingSpec) -> ProcessingResult:
        job_dir = self._prepare(spec.job_name, spec.source_files)
        processing = job_dir / "processing"
        for name, uri in spec.inputs.items():
            self._artifacts.get(uri, processing / "input" / name / Path(uri).name)
        for name in spec.outputs:
            (processing / "output" / name).mkdir(parents=True)
        # The container's default root is /opt/ml/processing; here it is the job directory.
        arguments = [*spec.arguments, "--root", str(processing)]
        seconds = self._run(spec, job_dir, arguments, {})
        outputs = {}
        for name in spec.outputs:
            files = sorted(p for p in (processing / "output" / name).rglob("*") if p.is_file())
            if not files:
                raise JobFailedError(f"processing job {spec.job_name} wrote nothing to output {name!r}")
            for path in files:
                outputs[f"{name}/{path.relative_to(processing / 'output' / name).as_posix()}"] = self._artifacts.put(
                    path
                )
        return ProcessingResult(spec.job_name, outputs, seconds)

    def _run(
        self, spec: TrainingSpec | ProcessingSpec, job_dir: Path, arguments: list[str], env: dict[str, str]
    ) -> float:
        log = job_dir / "job.log"
        log.touch()
        process = self._fork_server(spec.source_files).start(
            spec.entry_point.name,
            arguments,
            cwd=job_dir / "code",
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            log=log,
        )
        started = time.perf_counter()
        # SageMaker stops a job at MaxRuntimeInSeconds. A timer kills it here; waiting without a
        # timeout notices the job's end at once (a timed wait polls, up to 50 ms late).
        stopped = threading.Event()

        def stop() -> None:
            stopped.set()
            process.kill()

        timer = threading.Timer(spec.max_runtime_seconds * self.SECOND, stop)
        timer.start()
        try:
            code = process.wait()
        except BaseException:  # Ctrl-C in the pipeline: the job goes with it
            process.kill()
            process.wait()
            raise
        finally:
            timer.cancel()
        if stopped.is_set():
            raise JobFailedError(
                f"job {spec.job_name} Stopped: it ran past MaxRuntimeInSeconds={spec.max_runtime_seconds}. "
                f"Raise [train].max_runtime_seconds in mlops.toml or make training faster. "
                f"Log: {log}"
            )
        if code != 0:
            failure = job_dir / "output" / "failure"
            reason = failure.read_text().strip() if failure.exists() else _tail(log)
            raise JobFailedError(f"job {spec.job_name} Failed (exit {code}): {reason}\nFull log: {log}")
        return time.perf_counter() - started


def _tail(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines()
    return "\n".join(lines[-_LOG_TAIL:]) or "no output"
