"""Every combination of cookiecutter.json's choices bakes a project that passes its own checks.

The combinations come from cookiecutter.json (scripts/matrix.py), so a new choice joins the
matrix by itself. `make test` runs the checks that can differ on every combination, and each project's whole
`make test` on the default one; `make test-all` runs each project's whole `make test`.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from cookiecutter.exceptions import FailedHookException

from scripts.bakery import TEMPLATE, Baked, bake
from scripts.matrix import MANIFEST, Combination, MatrixTimes, choices, combinations, expected_files

MATRIX = combinations()


DEFAULT = next(combination for combination in MATRIX if combination.is_default)


def runs_whole_suite_in_make_test(combination: Combination) -> bool:
    """The default, and the default on every other Python: an interpreter can change anything, so
    each offered Python gets one whole `make test`; the other answers reach only what every
    combination's checks below read."""
    answers, default = combination.as_answers(), DEFAULT.as_answers()
    return all(answers[key] == default[key] for key in answers if key != "python_version")


def runs_infra_tests_in_make_test(combination: Combination) -> bool:
    """Every combination on the default Python. The Python answer lands in .python-version alone
    (test_the_python_answer_reaches_only_python_version), so a combination on another Python has
    its default-Python twin's stack files byte for byte; that interpreter runs tests/infra in its
    whole `make test` (runs_whole_suite_in_make_test)."""
    return combination.as_answers()["python_version"] == DEFAULT.as_answers()["python_version"]


def matrix_params(*, whole_suite: bool = False, infra: bool = False) -> list[object]:
    """One param per combination. Grouped per combination, so under xdist each is baked on one worker."""
    params = []
    for combination in MATRIX:
        marks = [pytest.mark.xdist_group(combination.id)]
        if whole_suite and not runs_whole_suite_in_make_test(combination):
            marks.append(pytest.mark.full_matrix)
        if infra and not runs_infra_tests_in_make_test(combination):
            marks.append(pytest.mark.full_matrix)
        params.append(pytest.param(combination, id=combination.id, marks=marks))
    return params


@pytest.fixture(scope="session")
def matrix_project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Baked:
    combination: Combination = request.param
    try:
        return bake(tmp_path_factory.mktemp("matrix"), **combination.as_answers())
    except FailedHookException:
        # A choice cookiecutter.json offers must bake; refusing one needs the choice removed too.
        pytest.fail(f"the pre-generation hook rejects {combination.id}, which cookiecutter.json offers")


def test_the_matrix_is_every_combination_of_every_choice() -> None:
    options = choices()
    assert len(MATRIX) == math.prod(len(values) for values in options.values())
    assert len({combination.id for combination in MATRIX}) == len(MATRIX)
    assert [combination.is_default for combination in MATRIX].count(True) == 1
    for key, values in options.items():
        assert {combination.as_answers()[key] for combination in MATRIX} == set(values)
        assert all(f"{key}:" in combination.id for combination in MATRIX)


def test_times_are_summed_per_combination_and_the_slowest_is_named(tmp_path: Path) -> None:
    times = MatrixTimes()
    fast, slow = MATRIX[0].id, MATRIX[-1].id
    # As xdist's --dist loadgroup reports them: "@<group>" after a grouped test's id.
    for phase_seconds, combination in ((1.0, fast), (2.0, fast), (4.0, slow), (0.5, slow)):
        times.add(f"tests/test_matrix.py::test_x[{combination}]@{combination}", phase_seconds)
    times.add("tests/test_hooks.py::test_y[slug-spaces]", 99.0)  # not a combination
    times.add("tests/test_hooks.py::test_y[user@host]", 1.0)  # an "@" of a parameter's, not a group's
    times.add("tests/test_own_data.py::test_z[wine]@own-data-wine", 120.0)
    times.add("tests/test_matrix.py::test_the_matrix_is_every_combination_of_every_choice", 99.0)
    assert dict(times.seconds) == {fast: 3.0, slow: 4.5}
    assert times.slowest_tests(2) == [("tests/test_own_data.py::test_z[wine]", 120.0),
                                      ("tests/test_hooks.py::test_y[slug-spaces]", 99.0)]  # fmt: skip
    assert "tests/test_hooks.py::test_y[user@host]" in times.tests
    lines = times.render(wall=5.0)
    assert any(slow in line and "(slowest)" in line and "4.5" in line for line in lines)
    assert any("test_own_data.py::test_z[wine]" in line and "120.0" in line for line in lines)
    times.write(tmp_path / "build" / "times.json", selection="-m 'not full_matrix'", exit_status=0, wall=5.04)
    written = json.loads((tmp_path / "build" / "times.json").read_text())
    assert written == {
        "selection": "-m 'not full_matrix'",
        "exit_status": 0,
        "wall_seconds": 5.0,
        "slowest": slow,
        "combinations": {fast: 3.0, slow: 4.5},
        "slowest_tests": dict(times.slowest_tests()),
    }


@pytest.mark.parametrize("matrix_project", matrix_params(), indirect=True)
def test_no_template_syntax_is_left_in_any_file(matrix_project: Baked) -> None:
    assert matrix_project.leftover_jinja() == []


@pytest.mark.parametrize("matrix_project", matrix_params(), indirect=True)
def test_python_renders_unchanged(matrix_project: Baked) -> None:
    # Keep Jinja out of code: ruff and mypy on the template see what users get, and every
    # combination can share one environment and one mypy cache.
    assert matrix_project.python_unlike_the_template() == []


@pytest.mark.parametrize("matrix_project", matrix_params(), indirect=True)
def test_the_project_has_exactly_the_expected_files(matrix_project: Baked) -> None:
    # Also catches what a maintainer's tree leaks into the template: caches, node_modules, editor files.
    actual, expected = matrix_project.relative_files(), expected_files()
    fix = f"if the change is intended, re-record {MANIFEST.name} with `make manifest`"
    assert actual - expected == set(), f"unexpected files; {fix}"
    assert expected - actual == set(), f"missing files; {fix}"


@pytest.mark.parametrize("matrix_project", matrix_params(), indirect=True)
def test_the_answers_shape_the_stack_files(matrix_project: Baked) -> None:
    for env in ("staging", "prod"):
        assert matrix_project.stack_config(env)["endpoint_type"] == matrix_project.answers[f"{env}_endpoint_type"]
    assert matrix_project.read(".python-version").strip() == matrix_project.answers["python_version"]


def test_no_answer_reaches_the_workflows_or_the_python() -> None:
    # So zizmor's, actionlint's, ruff's and mypy's verdict on the default project (its whole
    # `make test`, below) holds for every combination; test_python_renders_unchanged checks the output.
    project = TEMPLATE / "{{cookiecutter.project_slug}}"
    for path in [*(project / ".github").rglob("*"), *project.rglob("*.py")]:
        if path.is_file():
            assert "cookiecutter." not in path.read_text(encoding="utf-8"), path


OTHER_PYTHONS = [
    param
    for param, combination in zip(matrix_params(), MATRIX, strict=True)
    if not runs_infra_tests_in_make_test(combination)
]


@pytest.mark.parametrize("matrix_project", OTHER_PYTHONS, indirect=True)
def test_the_python_answer_reaches_only_python_version(matrix_project: Baked, tmp_path: Path) -> None:
    # What lets `make test` run tests/infra on the default Python's combinations only: the twin on
    # the default Python (same other answers) must be the same project but for .python-version.
    answers = {**matrix_project.answers, "python_version": DEFAULT.as_answers()["python_version"]}
    twin = bake(tmp_path, **answers)
    differing = {
        relative
        for relative in matrix_project.relative_files() | twin.relative_files()
        if not (matrix_project.path / relative).is_file()
        or not (twin.path / relative).is_file()
        or (matrix_project.path / relative).read_bytes() != (twin.path / relative).read_bytes()
    }
    assert differing == {".python-version"}


@pytest.mark.parametrize("matrix_project", matrix_params(infra=True), indirect=True)
def test_the_infra_tests_pass(matrix_project: Baked, shared_environments: dict[str, dict[str, str]]) -> None:
    # The answers reach the stack files and mlops.toml only, and tests/infra is what reads them: the
    # part of each project's suite that differs between combinations, so `make test` runs it on every
    # combination of the default Python (runs_infra_tests_in_make_test). Python renders unchanged
    # (above), so ruff and mypy say of each what they say of the default.
    environment = shared_environments[matrix_project.answers["python_version"]]
    # In one process: the other template worker keeps the second core busy, and two pytest workers
    # would each import pulumi-aws and build the IAM fixtures again (twice the CPU for the same wall time).
    output = matrix_project.run_check("make", "infra-test", "PYTEST_WORKERS=0", env=environment)
    assert re.search(r"\d+ passed", output)
    assert "failed" not in output.splitlines()[-1]


@pytest.mark.slow
@pytest.mark.parametrize("matrix_project", matrix_params(whole_suite=True), indirect=True)
def test_the_project_passes_its_own_make_test(
    matrix_project: Baked, shared_environments: dict[str, dict[str, str]]
) -> None:
    environment = shared_environments[matrix_project.answers["python_version"]]
    output = matrix_project.run_check("make", "test", env=environment)
    assert re.search(r"\d+ passed", output)
    assert "failed" not in output.splitlines()[-1]
    assert not Path(matrix_project.path, ".venv").exists(), "the shared environment was not used"
    python = Path(environment["UV_PROJECT_ENVIRONMENT"], "pyvenv.cfg").read_text()
    assert re.search(rf"^version_info = {re.escape(matrix_project.answers['python_version'])}\.", python, re.M), python
