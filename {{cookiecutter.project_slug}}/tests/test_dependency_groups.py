"""Each path installs only what it imports: the local pipeline runs with the main dependencies alone.

The tests block every module that only the optional groups (aws, infra, dev) bring, in the
processes the pipeline starts as much as in its own, and run the real command line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from ml.config import PROJECT_ROOT

PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())

# A sitecustomize that every interpreter started with it on PYTHONPATH imports first: it makes
# the blocked top-level modules fail to import, as they would where they are not installed.
BLOCKER = """
import importlib.abc, json, os, sys
BLOCKED = set(json.loads(os.environ["BLOCKED_MODULES"]))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: not in this install)", name=name)
        return None
sys.meta_path.insert(0, Blocker())
"""


def _closure(requirements: list[str]) -> set[str]:
    """Installed distributions the requirements pull in, transitively (names normalised)."""
    seen: set[str] = set()
    pending = [Requirement(text) for text in requirements]
    while pending:
        requirement = pending.pop()
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if name in seen or (requirement.marker is not None and not requirement.marker.evaluate({"extra": ""})):
            continue
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for text in distribution.requires or []:
            nested = Requirement(text)
            if nested.marker is None or nested.marker.evaluate({"extra": ""}):
                pending.append(nested)
            else:
                for extra in requirement.extras:
                    if nested.marker.evaluate({"extra": extra}):
                        pending.append(nested)
    return seen


def modules_only_in(groups: list[str]) -> list[str]:
    """Top-level modules that the groups install and the main dependencies do not."""
    main = _closure(PYPROJECT["project"]["dependencies"])
    extra = _closure([r for g in groups for r in PYPROJECT["dependency-groups"][g]]) - main
    owners = metadata.packages_distributions()
    blocked = {
        module
        for module, distributions in owners.items()
        if any(re.sub(r"[-_.]+", "-", d).lower() in extra for d in distributions)
        and not any(re.sub(r"[-_.]+", "-", d).lower() in main for d in distributions)
    }
    return sorted(blocked)


def run_without(groups: list[str], tmp_path: Path, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(PROJECT_ROOT)]),
        "BLOCKED_MODULES": json.dumps(modules_only_in(groups)),
        "MLOPS_HOME": str(tmp_path / "state"),
        "MLOPS_ENV": "local",
        **env,
    }
    environment.pop("MLOPS_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "ml", *command], cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True
    )


def test_the_groups_hold_what_the_local_path_must_not_need() -> None:
    blocked = modules_only_in(["aws", "infra", "dev"])
    for module in ("boto3", "botocore", "sagemaker", "pulumi", "pulumi_aws", "moto", "pytest", "mypy"):
        assert module in blocked
    assert {"shap", "numba", "llvmlite"} <= set(modules_only_in(["explain"]))
    for module in ("sklearn", "pandas", "numpy", "matplotlib", "pydantic", "rich"):
        assert module not in blocked


@pytest.mark.e2e
def test_the_local_pipeline_runs_without_the_aws_infra_dev_and_explain_groups(tmp_path: Path) -> None:
    """With SHAP asked for but not installed, the run succeeds and its report says how to add it."""
    groups = ["aws", "infra", "dev", "explain"]
    result = run_without(groups, tmp_path, "pipeline", MLOPS_EXPLAIN="on")
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        summary = json.loads((tmp_path / "state" / "summary.json").read_text())
        assert summary["status"] == "succeeded"
        assert {step["name"]: step["status"] for step in summary["steps"]}["smoke_test"] == "ok"
        report = (tmp_path / "state" / "runs" / f"{summary['run_id']}.html").read_text()
        assert "`make install-explain` adds it" in report
    finally:
        run_without(groups, tmp_path, "stop")


def test_the_aws_path_without_its_group_names_the_install(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text("{}")
    result = run_without(["aws"], tmp_path, "status", MLOPS_ENV="dev", MLOPS_STACK_OUTPUTS=str(outputs))
    assert result.returncode == 1
    assert "uv sync --group aws" in " ".join(result.stdout.split())


def test_mypy_follows_every_pulumi_aws_service_the_program_uses() -> None:
    # pyproject.toml skips pulumi-aws for mypy except the services listed; one used and not listed
    # would type its resources as Any, silently.
    followed = {
        module
        for override in PYPROJECT["tool"]["mypy"]["overrides"]
        if override.get("follow_imports") == "normal"
        for module in override["module"]
    }
    used = {
        service
        for path in (PROJECT_ROOT / "infra").rglob("*.py")
        for service in re.findall(r"\baws\.([a-z0-9_]+)\.[A-Za-z]", path.read_text())
    }
    assert used, "no pulumi-aws service found in infra/"
    missing = sorted(s for s in used if f"pulumi_aws.{s}" not in followed or f"pulumi_aws.{s}.*" not in followed)
    assert not missing, f"add pulumi_aws.<service> and pulumi_aws.<service>.* to the mypy override for {missing}"
