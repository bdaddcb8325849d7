"""The Makefile targets the workflows call, run for real. The Pulumi and GitHub CLIs are not
installable here, so where a target drives them a recording fake stands in on PATH; what is
checked is our side: the arguments, the files written, and what happens when the CLI fails."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from infra.changed_stacks import main as changed_stacks_main
from infra.changed_stacks import stacks_for
from ml.config import PROJECT_ROOT

WORKFLOW_TARGETS = sorted(
    set(
        re.findall(
            r"run: make ([a-z0-9-]+)",
            "".join(p.read_text() for p in (PROJECT_ROOT / ".github/workflows").glob("*.yml")),
        )
    )
)
# How each target the workflows call is exercised by this test suite (on the local backend,
# against moto, or here with a recording CLI), so none of them first runs in CI.
EXERCISED_BY = {
    "test": "the template's own tests run the baked project's `make test`",
    "precommit": "test_precommit_hooks_are_the_same_tools (config) and tests/workflows/test_workflows.py (zizmor, actionlint)",
    "unit-fast": "this suite, minus e2e and infra",
    "infra-test": "tests/infra",
    "e2e": "tests/test_pipeline_e2e.py",
    "pipeline": "tests/test_pipeline_e2e.py and the template's `make pipeline` test",
    "stop": "tests/test_pipeline_e2e.py (fixture teardown)",
    "preview-offline": "tests/infra/test_preview_offline.py",
    "changed-stacks": "test_changed_stacks_*",
    "preview-stack": "test_preview_stack_runs_pulumi_preview_and_writes_the_summary",
    "stack-outputs": "test_stack_outputs_*",
    "data": "tests/aws/test_pipeline_aws.py (moto) and tests/test_pipeline_e2e.py",
    "train": "tests/aws/test_pipeline_aws.py (moto) and tests/test_pipeline_e2e.py",
    "evaluate": "tests/aws/test_pipeline_aws.py (moto) and tests/test_pipeline_e2e.py",
    "register": "tests/aws/test_pipeline_aws.py (moto) and tests/test_pipeline_e2e.py",
    "track": "tests/workflows/test_rehearsal.py::test_the_pipeline_run_ci_made_is_in_mlflow_with_its_version "
    "(a local MLflow server standing in for the app) and tests/aws/test_tracking_aws.py",
    "open-promotion-pr": "test_a_promotion_push_* here, and tests/workflows/test_rehearsal.py (the whole sequence)",
    "promotion-preview": "tests/workflows/test_rehearsal.py::test_the_promotion_comment_compares_with_what_the_target_serves_and_shows_the_preview",
    "infra-up": "test_infra_up_*",
    "plan-stack": "test_plan_stack_saves_the_plan_and_writes_the_summary",
    "check-fresh": "tests/workflows/test_rehearsal.py::test_rerunning_an_old_deploy_refuses_to_roll_back",
    "stop-jobs": "tests/workflows/test_rehearsal.py::test_cancelling_training_stops_the_sagemaker_job_it_started and tests/aws/test_failures_aws.py",
    "verify-deployment": "tests/test_pipeline_e2e.py::test_verify_checks_the_served_version_and_smoke_tests",
    "dispatch-pipeline": "test_dispatch_pipeline_starts_pipeline_yml_on_main",
}


def test_every_target_a_workflow_calls_is_exercised_here() -> None:
    assert sorted(EXERCISED_BY) == WORKFLOW_TARGETS


@pytest.fixture
def fake_cli(tmp_path: Path) -> tuple[Path, Path]:
    """`pulumi`, `gh` and `git push` that record their arguments; `pulumi stack output` prints outputs."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    outputs = json.dumps({"region": "eu-west-1", "data_bucket": "d", "artifacts_bucket": "a"})
    script = f"""#!/usr/bin/env bash
echo "$(basename "$0") $*" >> {log}
if [ "$(basename "$0")" = pulumi ] && [ "$1" = stack ] && [ -n "$FAKE_FAIL" ]; then echo "error: no stack" >&2; exit 255; fi
if [ "$(basename "$0")" = pulumi ] && [ "$1" = stack ]; then echo '{outputs}'; fi
if [ "$(basename "$0")" = pulumi ] && [ "$1" = preview ]; then echo "+ 3 to create"; fi
exit 0
"""
    for name in ("pulumi", "gh"):
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    return bin_dir, log


def make(target: str, bin_dir: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "MLOPS_HOME": str(tmp_path / "state"),
        **env,
    }
    return subprocess.run(
        ["make", "--no-print-directory", target],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_stack_outputs_writes_the_file_ml_reads(fake_cli: tuple[Path, Path], tmp_path: Path) -> None:
    bin_dir, log = fake_cli
    result = make("stack-outputs", bin_dir, tmp_path, MLOPS_ENV="staging")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "state/stack-outputs/staging.json").read_text())["artifacts_bucket"] == "a"
    assert "pulumi stack output --stack staging --json" in log.read_text()


def test_stack_outputs_keeps_the_old_file_when_pulumi_fails(fake_cli: tuple[Path, Path], tmp_path: Path) -> None:
    bin_dir, _ = fake_cli
    assert make("stack-outputs", bin_dir, tmp_path, MLOPS_ENV="dev").returncode == 0
    before = (tmp_path / "state/stack-outputs/dev.json").read_text()
    assert make("stack-outputs", bin_dir, tmp_path, MLOPS_ENV="dev", FAKE_FAIL="1").returncode != 0
    assert (tmp_path / "state/stack-outputs/dev.json").read_text() == before


def test_stack_outputs_refuses_the_local_environment(fake_cli: tuple[Path, Path], tmp_path: Path) -> None:
    result = make("stack-outputs", fake_cli[0], tmp_path, MLOPS_ENV="local")
    assert result.returncode != 0 and "set MLOPS_ENV=dev, staging or prod" in result.stdout


def test_stack_outputs_without_the_pulumi_cli_says_how_to_get_it(tmp_path: Path) -> None:
    no_pulumi = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not Path(p, "pulumi").exists())
    result = subprocess.run(
        ["make", "--no-print-directory", "stack-outputs"], cwd=PROJECT_ROOT, capture_output=True, text=True,
        env={**os.environ, "PATH": no_pulumi, "MLOPS_HOME": str(tmp_path / "state"), "MLOPS_ENV": "dev"}, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stdout.strip().splitlines()[-1].startswith("the Pulumi CLI is not installed: install")
    assert not (tmp_path / "state" / "stack-outputs").exists()


def test_infra_up_runs_pulumi_up_for_the_environment(fake_cli: tuple[Path, Path], tmp_path: Path) -> None:
    bin_dir, log = fake_cli
    assert make("infra-up", bin_dir, tmp_path, MLOPS_ENV="staging").returncode == 0
    assert "pulumi up --stack staging --yes --non-interactive --skip-preview" in log.read_text()


def test_infra_up_with_a_plan_applies_exactly_that_plan(fake_cli: tuple[Path, Path], tmp_path: Path) -> None:
    """Finding 5: prod's apply is held to the plan its reviewer saw (`pulumi up --plan`), never --skip-preview."""
    bin_dir, log = fake_cli
    plan = tmp_path / "state" / "plan-prod.json"
    assert make("infra-up", bin_dir, tmp_path, MLOPS_ENV="prod", PLAN=str(plan)).returncode == 0
    up = [line for line in log.read_text().splitlines() if line.startswith("pulumi up")]
    assert up == [f"pulumi up --stack prod --yes --non-interactive --plan {plan}"]


def test_plan_stack_saves_the_plan_and_writes_the_summary(fake_cli: tuple[Path, Path], tmp_path: Path) -> None:
    bin_dir, log = fake_cli
    summary = tmp_path / "summary.md"
    assert make("plan-stack", bin_dir, tmp_path, STACK="prod", GITHUB_STEP_SUMMARY=str(summary)).returncode == 0
    plan = tmp_path / "state" / "plan-prod.json"
    assert f"pulumi preview --stack prod --diff --non-interactive --save-plan {plan}" in log.read_text()
    assert "### pulumi preview: prod (the plan the apply is held to)" in summary.read_text()
    assert "+ 3 to create" in summary.read_text()
    assert make("plan-stack", bin_dir, tmp_path).returncode == 2  # no STACK: says which to set


def test_preview_stack_runs_pulumi_preview_and_writes_the_summary(fake_cli: tuple[Path, Path], tmp_path: Path) -> None:
    bin_dir, log = fake_cli
    summary = tmp_path / "summary.md"
    assert make("preview-stack", bin_dir, tmp_path, STACK="staging", GITHUB_STEP_SUMMARY=str(summary)).returncode == 0
    assert "pulumi preview --stack staging --diff --non-interactive" in log.read_text()
    assert "### pulumi preview: staging" in summary.read_text() and "+ 3 to create" in summary.read_text()


def test_dispatch_pipeline_starts_pipeline_yml_on_main(fake_cli: tuple[Path, Path], tmp_path: Path) -> None:
    bin_dir, log = fake_cli
    assert make("dispatch-pipeline", bin_dir, tmp_path, REASON="repository_dispatch").returncode == 0
    assert "gh workflow run pipeline.yml --ref main" in log.read_text()


@pytest.fixture
def origin_and_gh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A bare repository as origin, holding main with the stack files, and a `gh` that records its
    arguments and answers `pr list` from a file (`pr create` opens #7)."""
    origin, seed = tmp_path / "origin.git", tmp_path / "seed"
    person = ["-c", "user.name=Maintainer", "-c", "user.email=maintainer@example.com"]
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(origin)], check=True)
    subprocess.run(["git", "clone", "--quiet", str(origin), str(seed)], check=True, capture_output=True)
    (seed / "infra").mkdir()
    (seed / "infra" / "Pulumi.staging.yaml").write_text("config:\n  x:model_version: ''\n")
    for args in (["add", "."], [*person, "commit", "--quiet", "-m", "stacks"], ["push", "--quiet", "origin", "main"]):
        subprocess.run(["git", *args], cwd=seed, check=True, capture_output=True)
    bin_dir, log, pulls = tmp_path / "bin", tmp_path / "gh.log", tmp_path / "pulls.json"
    bin_dir.mkdir()
    pulls.write_text("[]")
    opened = json.dumps([{"number": 7}])
    (bin_dir / "gh").write_text(
        f"""#!/usr/bin/env bash
echo "gh $*" >> {log}
if [ "$1 $2" = "pr list" ]; then cat {pulls}; fi
if [ "$1 $2" = "pr create" ]; then echo '{opened}' > {pulls}; fi
exit 0
"""
    )
    (bin_dir / "gh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return origin, log


def _promotion_commit(origin: Path, workdir: Path, version: str) -> Path:
    """A fresh checkout of main (as actions/checkout makes, no remote-tracking refs but main's) with the
    promotion committed on its branch, as `ml promotion-pr` leaves it."""
    subprocess.run(["git", "clone", "--quiet", str(origin), str(workdir)], check=True, capture_output=True)
    stack = workdir / "infra" / "Pulumi.staging.yaml"
    stack.write_text(f"config:\n  x:model_version: '{version}'\n")
    bot = ["-c", "user.name=promotions[bot]", "-c", "user.email=1+promotions[bot]@users.noreply.github.com"]
    for args in (["switch", "--quiet", "-C", "promote/staging"], ["commit", "--quiet", "-am", f"v{version}"]):
        subprocess.run(["git", *(bot if args[0] == "commit" else []), *args], cwd=workdir, check=True)
    return stack


def test_a_promotion_push_from_a_fresh_checkout_updates_its_branch_and_pull_request(
    origin_and_gh: tuple[Path, Path], tmp_path: Path
) -> None:
    """Finding 7: a second push (a re-run job, or a newer model) from a fresh checkout has no
    remote-tracking ref of the branch; a bare --force-with-lease refused it forever."""
    from ml import github

    origin, log = origin_and_gh
    for attempt, version in enumerate(("3", "4")):
        stack = _promotion_commit(origin, tmp_path / f"checkout-{attempt}", version)
        sha, pushed = github.push(stack.parent.parent, "promote/staging", stack)
        assert pushed
        remote = subprocess.run(["git", "rev-parse", "promote/staging"], cwd=origin, capture_output=True, text=True)
        assert remote.stdout.strip() == sha
        assert github.propose("promote/staging", f"Promote model v{version} to staging", tmp_path / "body.md") == 7
    # The same change again (a re-run of the job that pushed v4) pushes nothing.
    stack = _promotion_commit(origin, tmp_path / "checkout-rerun", "4")
    assert github.push(stack.parent.parent, "promote/staging", stack) == (sha, False)
    calls = log.read_text().splitlines()
    assert [c for c in calls if c.startswith("gh pr create")] == [
        f"gh pr create --base main --head promote/staging --title Promote model v3 to staging --body-file {tmp_path}/body.md"
    ]
    assert f"gh pr edit 7 --title Promote model v4 to staging --body-file {tmp_path}/body.md" in calls


def test_changed_stacks_maps_files_to_stacks() -> None:
    assert stacks_for(["infra/Pulumi.staging.yaml"]) == ["staging"]
    assert stacks_for(["infra/Pulumi.prod.yaml", "infra/Pulumi.dev.yaml"]) == ["dev", "prod"]
    assert stacks_for(["infra/components/endpoint.py"]) == ["dev", "staging", "prod"]
    assert stacks_for(["uv.lock"]) == ["dev", "staging", "prod"]
    assert stacks_for(["README.md", "ml/train.py", "infra/bootstrap/program.py"]) == []


def test_changed_stacks_in_a_repository_of_one_commit_says_what_to_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    subprocess.run(["git", "init", "--quiet", "--initial-branch=main"], cwd=tmp_path, check=True)
    (tmp_path / "README.md").write_text("one\n")
    subprocess.run(["git", "add", "."], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.email=a@example.com", "-c", "user.name=A", "commit", "--quiet", "-m", "one"],
                   cwd=tmp_path, check=True)  # fmt: skip
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=r"cannot compare 'HEAD~1' with HEAD .*Pass BASE=<an existing commit>"):
        changed_stacks_main([])


def test_changed_stacks_reads_git_and_sets_step_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "--quiet", "--initial-branch=main")
    git("config", "user.email", "ci@example.com")
    git("config", "user.name", "CI")
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "Pulumi.prod.yaml").write_text("config: {}\n")
    git("add", ".")
    git("commit", "--quiet", "-m", "one")
    (tmp_path / "infra" / "Pulumi.prod.yaml").write_text("config: {a: 1}\n")
    git("commit", "--quiet", "-am", "two")
    output = tmp_path / "github_output"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    assert changed_stacks_main(["HEAD~1"]) == 0
    assert capsys.readouterr().out.strip() == '["prod"]'
    assert output.read_text().splitlines() == [
        'stacks=["prod"]',
        "preview=[]",
        "dev=false",
        "staging=false",
        "prod=true",
    ]


def test_precommit_hooks_are_the_same_tools() -> None:
    config = (PROJECT_ROOT / ".pre-commit-config.yaml").read_text()
    for hook in ("ruff check", "ruff format", "mypy", "zizmor", "actionlint", "uv lock --check"):
        assert hook in config
    assert "repo: local" in config and "https://" not in config
