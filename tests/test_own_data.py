"""A baked project switched to other data by the README's steps only, then its own checks.

The issue this proves: after swapping data, the generated tests stopped at collection and 24
failed, evaluation crashed on three classes, and monitoring crashed on a column named with '/'.
Each data set here is one the template does not ship: wine (multiclass; 'od280/od315_of_diluted_wines'),
diabetes (regression), and a churn table with text categories and missing values.

Each project runs its `make lint`, `make typecheck` and `make unit` but for tests/workflows: those
check the workflows' YAML and, in the rehearsal, git's and GitHub's rules around the same make
targets that `make pipeline`, `make monitor` and the e2e and AWS tests run here on the new data; the
default project's whole `make test` runs them (tests/test_matrix.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from scripts.bakery import Baked, bake
from scripts.matrix import choices
from scripts.own_data import DATA_SETS, DataSet, switch

pytestmark = pytest.mark.slow


@pytest.fixture
def environment(shared_environments: dict[str, dict[str, str]]) -> dict[str, str]:
    """The worker's virtualenv and mypy cache for the default Python (the lockfile and code are the template's)."""
    return shared_environments[choices()["python_version"][0]]


# One group per data set: the three spread over both workers, each on its worker's environment.
@pytest.mark.parametrize(
    "data", [pytest.param(d, id=d.name, marks=pytest.mark.xdist_group(f"own-data-{d.name}")) for d in DATA_SETS]
)
def test_a_project_switched_to_other_data_passes_make_pipeline_and_make_test(
    tmp_path: Path, environment: dict[str, str], data: DataSet
) -> None:
    project: Baked = bake(tmp_path)
    printed = switch(project, data, environment)
    assert project.python_unlike_the_template() == [], "the README's steps change data and config only, never the code"
    assert "wrote" in printed and "schema.toml" in printed
    assert "Replace every [gate.slices.*] table" in " ".join(printed.split())  # the example's slices name its columns
    try:
        project.run_check("make", "pipeline", env=environment)
        summary = json.loads(project.read(".mlops/summary.json"))
        assert summary["status"] == "succeeded", summary
        assert summary["model"]["approval"] == "Approved"
        monitored = project.run("make", "monitor", env=environment)
        assert monitored.returncode == 0, monitored.stdout + monitored.stderr  # no drift from the smoke test's rows
        demo = project.run_check("make", "drift-demo", env=environment)
        assert "the monitor caught the shift and passed the clean traffic" in demo
    finally:
        project.run("make", "stop", env=environment)
    project.run_check("make", "lint", "typecheck", env=environment)
    output = project.run_check("make", "unit", "PYTEST_ARGS=--ignore=tests/workflows", env=environment)
    assert re.search(r"\d+ passed", output) and "failed" not in output.splitlines()[-1]
