"""A baked project switched to other data by the README's steps only, then its own checks.

The issue this proves: after swapping data, the generated tests stopped at collection and 24
failed, evaluation crashed on three classes, and monitoring crashed on a column named with '/'.
Each data set here is one the template does not ship: wine (multiclass; 'od280/od315_of_diluted_wines'),
diabetes (regression), and a churn table with text categories and missing values.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from scripts.bakery import Baked, bake
from scripts.own_data import DATA_SETS, DataSet, switch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One virtualenv and mypy cache for the three projects (their lockfile and code are the template's)."""
    base = tmp_path_factory.mktemp("own-data-environment")
    return {"UV": os.environ.get("UV", "uv"), "UV_PROJECT_ENVIRONMENT": str(base / "venv"),
            "MYPY_CACHE_DIR": str(base / "mypy")}  # fmt: skip


@pytest.mark.parametrize(
    "data", [pytest.param(d, id=d.name, marks=pytest.mark.xdist_group("own-data")) for d in DATA_SETS]
)
def test_a_project_switched_to_other_data_passes_make_pipeline_and_make_test(
    tmp_path: Path, environment: dict[str, str], data: DataSet
) -> None:
    project: Baked = bake(tmp_path)
    printed = switch(project, data, environment)
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
    output = project.run_check("make", "test", env=environment)
    assert re.search(r"\d+ passed", output) and "failed" not in output.splitlines()[-1]
