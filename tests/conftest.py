"""Fixtures for baking the template (all helpers live in scripts/bakery.py), and the matrix timings."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scripts.bakery import TEMPLATE, Baked, bake
from scripts.matrix import MatrixTimes, choices

Bake = Callable[..., Baked]


@pytest.fixture
def bake_in(tmp_path: Path) -> Bake:
    """Bake into this test's temporary directory, with answers overriding the defaults."""

    def _bake(**answers: Any) -> Baked:
        return bake(tmp_path, **answers)

    return _bake


@pytest.fixture(scope="session")
def default_project(tmp_path_factory: pytest.TempPathFactory) -> Baked:
    """One project baked with the default answers, shared by the read-only tests."""
    return bake(tmp_path_factory.mktemp("default"))


@pytest.fixture(scope="session")
def shared_environments(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """Per Python version, one virtualenv and one mypy cache for every project a worker bakes.

    The combinations share a uv.lock and their Python code is byte-identical (test_python_renders_unchanged),
    so one environment per interpreter serves all. mypy keys its cache on content hashes: the first project
    pays for checking pulumi-aws and the sagemaker SDK, the others re-check only what differs.
    """
    base = tmp_path_factory.mktemp("shared-environment")
    return {
        version: {
            "UV": os.environ.get("UV", "uv"),
            "UV_PROJECT_ENVIRONMENT": str(base / f"venv-{version}"),
            "MYPY_CACHE_DIR": str(base / f"mypy-{version}"),
        }
        for version in choices()["python_version"]
    }


# `make test` and `make test-all` report each combination's time and the slowest one, printed
# after the run and written to build/matrix-times.json, never asserted on.
MATRIX_TIMES = TEMPLATE / "build" / "matrix-times.json"
_times = MatrixTimes()
_started = time.monotonic()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _times.add(report.nodeid, report.duration)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or not _times.tests:
        return  # an xdist worker: the controller, which sees every report, prints the summary
    wall = time.monotonic() - _started
    for line in _times.render(wall):
        terminalreporter.write_line(line)
    options = config.option
    selection = " ".join(
        f"-{flag} '{value}'" for flag, value in (("m", options.markexpr), ("k", options.keyword)) if value
    )
    _times.write(MATRIX_TIMES, selection=selection or "all", exit_status=int(exitstatus), wall=wall)
    terminalreporter.write_line(f"matrix times written to {MATRIX_TIMES.relative_to(TEMPLATE)}")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse to run when --dist loadgroup would not group (a pytest that pytest-xdist cannot tag).

    The grouped tests share expensive module fixtures; split across workers, each worker would
    build them again, slowly and silently.
    """
    if not getattr(config.option, "loadgroup", False):
        return
    untagged = [item.nodeid for item in items if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
    if untagged:
        raise pytest.UsageError(
            f"--dist loadgroup did not group {untagged[0]} (and {len(untagged) - 1} more): this pytest and "
            "pytest-xdist do not work together; keep the pytest pin in pyproject.toml"
        )
