"""A `make pipeline` killed (SIGKILL) at any step boundary converges on a re-run.

After the re-run: exactly one registry version per fingerprint, no server process that nothing
records, the desired state equal to what serves, and a summary that says the run succeeded.
The kill is the runtime's own fault injection (ml/faults.py): deterministic, at the boundary.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from ml import pipeline
from ml.config import load_config
from ml.processes import ProcessRecord, tagged
from tests.conftest import open_gate
from tests.test_local_runtime import (
    cleanup,
    cli,
    configured,
    desired_version,
    endpoint_tag,
    registry_rows,
    run,
    serving_version,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("kill-anywhere")]

BOUNDARIES = [("after", step) for step in pipeline.STEPS] + [("during", "deploy")]


@pytest.fixture(scope="module")
def served_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One state for the kill tests: each test trains a new model in it (new parameters)."""
    state = tmp_path_factory.mktemp("killed") / "state"
    try:
        yield state
    finally:
        cleanup(state)


@pytest.mark.parametrize(("moment", "step"), BOUNDARIES, ids=[f"{m}-{s}" for m, s in BOUNDARIES])
def test_a_run_killed_at_any_step_boundary_converges_on_a_re_run(
    served_state: Path, tmp_path: Path, moment: str, step: str
) -> None:
    index = BOUNDARIES.index((moment, step))
    hyperparameters = {**load_config().train.hyperparameters, "random_state": 100 + index}
    # A new model each time, which the gate accepts even if it trails the champion a little.
    config = configured(tmp_path / "config", train={"hyperparameters": hyperparameters}, gate=open_gate())
    killed = run(served_state, "pipeline", config=config, MLOPS_FAULT=f"kill:{moment}:{step}")
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    again = cli(served_state, "pipeline", config=config)  # the re-run a user types next
    assert again.returncode == 0, again.stdout + again.stderr
    rows = registry_rows(served_state)
    fingerprints = [fingerprint for _, fingerprint, _ in rows]
    assert len(fingerprints) == len(set(fingerprints)), f"a fingerprint registered twice: {rows}"
    assert desired_version(served_state) == serving_version(served_state)
    summary = json.loads((served_state / "summary.json").read_text())
    assert summary["status"] == "succeeded"
    # Exactly the recorded server runs for this endpoint: its master and its workers, nothing else.
    record = json.loads((served_state / "endpoint" / "endpoint.json").read_text())
    master = ProcessRecord.from_json(record["server"])
    assert master.alive()
    running = {process.pid for process in tagged(endpoint_tag(served_state))}
    workers = {int(p.stem) for p in (served_state / "endpoint" / "workers").glob("*.json")}
    assert running <= {master.pid, *workers}, f"untracked server processes: {running - {master.pid, *workers}}"
