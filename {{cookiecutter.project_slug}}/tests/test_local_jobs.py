"""The local job runner honours the SageMaker training and processing contracts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml.backends.base import ProcessingSpec, TrainingSpec
from ml.backends.local_artifacts import LocalArtifactStore
from ml.backends.local_jobs import LocalJobRunner
from ml.errors import JobFailedError

ECHO_ENV = """
import json, os, sys, pathlib
model = pathlib.Path(os.environ["SM_MODEL_DIR"])
seen = {k: v for k, v in os.environ.items() if k.startswith("SM_")}
channel = pathlib.Path(os.environ["SM_CHANNEL_TRAIN"])
(model / "seen.json").write_text(json.dumps({"env": seen, "argv": sys.argv[1:],
    "files": sorted(p.name for p in channel.iterdir())}))
"""


@pytest.fixture
def runner(tmp_path: Path) -> tuple[LocalJobRunner, LocalArtifactStore]:
    store = LocalArtifactStore(tmp_path / "artifacts")
    return LocalJobRunner(tmp_path / "jobs", store), store


def script(tmp_path: Path, body: str, name: str = "train.py") -> Path:
    path = tmp_path / "src" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(body)
    return path


def training(entry: Path, channels: dict[str, str], runtime: int = 60) -> TrainingSpec:
    return TrainingSpec(
        job_name=f"job-{entry.stem}-{runtime}",
        entry_point=entry,
        source_files=(entry,),
        channels=channels,
        hyperparameters={"n_estimators": "5", "label": "y"},
        max_runtime_seconds=runtime,
    )


def test_training_gets_the_container_contract(
    tmp_path: Path, runner: tuple[LocalJobRunner, LocalArtifactStore]
) -> None:
    jobs, store = runner
    data = tmp_path / "train.csv"
    data.write_text("a,y\n1,0\n")
    result = jobs.train(training(script(tmp_path, ECHO_ENV), {"train": store.put(data)}))
    tarball = store.get(result.model_uri, tmp_path / "out" / "model.tar.gz")
    import tarfile

    with tarfile.open(tarball) as archive:
        seen = json.load(archive.extractfile("seen.json"))  # type: ignore[arg-type]
    assert seen["argv"] == ["--n_estimators", "5", "--label", "y"]
    assert seen["files"] == ["train.csv"]
    assert {"SM_MODEL_DIR", "SM_CHANNEL_TRAIN", "SM_OUTPUT_DATA_DIR", "SM_HPS", "SM_CHANNELS"} <= set(seen["env"])
    assert json.loads(seen["env"]["SM_HPS"]) == {"n_estimators": "5", "label": "y"}


def test_a_failed_job_reports_its_failure_reason(
    tmp_path: Path, runner: tuple[LocalJobRunner, LocalArtifactStore]
) -> None:
    jobs, _ = runner
    body = "import os, pathlib, sys\n" \
        "pathlib.Path(os.environ['SM_OUTPUT_DIR'], 'failure').write_text('ValueError: bad learning rate')\n" \
        "sys.exit(2)\n"  # fmt: skip
    with pytest.raises(JobFailedError, match=r"Failed \(exit 2\): ValueError: bad learning rate"):
        jobs.train(training(script(tmp_path, body), {}))


def test_a_crash_without_failure_file_reports_the_log_tail(
    tmp_path: Path, runner: tuple[LocalJobRunner, LocalArtifactStore]
) -> None:
    jobs, _ = runner
    with pytest.raises(JobFailedError, match="ZeroDivisionError"):
        jobs.train(training(script(tmp_path, "1 / 0\n"), {}))


def test_a_job_past_its_max_runtime_is_stopped(
    tmp_path: Path, runner: tuple[LocalJobRunner, LocalArtifactStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs, _ = runner
    monkeypatch.setattr(LocalJobRunner, "SECOND", 0.05)  # MaxRuntimeInSeconds=2 lasts 0.1 s here
    with pytest.raises(JobFailedError, match="Stopped: it ran past MaxRuntimeInSeconds=2"):
        jobs.train(training(script(tmp_path, "import time\ntime.sleep(30)\n"), {}, runtime=2))


def test_a_job_within_its_max_runtime_is_not_stopped(
    tmp_path: Path, runner: tuple[LocalJobRunner, LocalArtifactStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs, store = runner
    monkeypatch.setattr(LocalJobRunner, "SECOND", 10.0)  # the limit is far away: the job ends first
    body = "import os, pathlib\npathlib.Path(os.environ['SM_MODEL_DIR'], 'done').write_text('y')\n"
    result = jobs.train(training(script(tmp_path, body), {}, runtime=1))
    assert store.exists(result.model_uri)


def test_processing_maps_inputs_and_collects_outputs(
    tmp_path: Path, runner: tuple[LocalJobRunner, LocalArtifactStore]
) -> None:
    jobs, store = runner
    data = tmp_path / "test.csv"
    data.write_text("a\n1\n")
    body = (
        "import argparse, pathlib\n"
        "p = argparse.ArgumentParser(); p.add_argument('--root'); p.add_argument('--flag')\n"
        "a = p.parse_args()\n"
        "rows = (pathlib.Path(a.root) / 'input/test/test.csv').read_text()\n"
        "(pathlib.Path(a.root) / 'output/report/out.txt').write_text(a.flag + rows)\n"
    )
    entry = script(tmp_path, body, "evaluate.py")
    result = jobs.process(
        ProcessingSpec("proc-1", entry, (entry,), {"test": store.put(data)}, ("report",), ("--flag", "ok"), 60)
    )
    assert store.get(result.outputs["report/out.txt"], tmp_path / "r.txt").read_text() == "oka\n1\n"


def test_processing_that_writes_nothing_fails(
    tmp_path: Path, runner: tuple[LocalJobRunner, LocalArtifactStore]
) -> None:
    jobs, _ = runner
    entry = script(tmp_path, "import sys\n", "evaluate.py")
    with pytest.raises(JobFailedError, match="wrote nothing to output 'report'"):
        jobs.process(ProcessingSpec("proc-2", entry, (entry,), {}, ("report",), (), 60))
