"""Fixtures for baking the template (all helpers live in scripts/bakery.py), and the matrix timings."""

from __future__ import annotations

import io
import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.table import Table

from scripts.bakery import TEMPLATE, Baked, bake

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


# Time per combination of the bake matrix, summed over its tests' setup (the bake), call and
# teardown. Printed after the run and written to build/matrix-times.json, so `make test` and
# `make test-all` report both suites and the slowest combination without a timed assertion.
MATRIX_TIMES = TEMPLATE / "build" / "matrix-times.json"
_matrix_seconds: dict[str, float] = defaultdict(float)
_started = time.monotonic()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path, _, name = report.nodeid.partition("::")
    if path.endswith("test_matrix.py") and name.endswith("]"):
        _matrix_seconds[name[name.index("[") + 1 : -1]] += report.duration


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or not _matrix_seconds:
        return  # an xdist worker: the controller, which sees every report, prints the summary
    slowest = max(_matrix_seconds, key=_matrix_seconds.__getitem__)
    wall = time.monotonic() - _started
    table = Table(title=f"bake matrix: seconds per combination (suite wall time {wall:.0f} s)")
    table.add_column("combination")
    table.add_column("seconds", justify="right")
    for combination, seconds in sorted(_matrix_seconds.items(), key=lambda item: -item[1]):
        table.add_row(combination + ("  (slowest)" if combination == slowest else ""), f"{seconds:.1f}")
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(table)
    for line in console.export_text().splitlines():
        terminalreporter.write_line(line)
    MATRIX_TIMES.parent.mkdir(exist_ok=True)
    MATRIX_TIMES.write_text(
        json.dumps(
            {
                "selection": config.option.markexpr or "all",
                "exit_status": int(exitstatus),
                "wall_seconds": round(wall, 1),
                "slowest": slowest,
                "combinations": {key: round(value, 1) for key, value in _matrix_seconds.items()},
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    terminalreporter.write_line(f"matrix times written to {MATRIX_TIMES.relative_to(TEMPLATE)}")
