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
    "open-promotion-pr": "test_open_promotion_pr_pushes_and_opens_a_pull_request",
    "infra-up": "test_infra_up_runs_pulumi_up_for_the_environment",
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
    assert make("infra-up", bin_dir, tmp_path, MLOPS_ENV="prod").returncode == 0
    assert "pulumi up --stack prod --yes --skip-preview --non-interactive" in log.read_text()


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


def test_open_promotion_pr_pushes_and_opens_a_pull_request(fake_cli: tuple[Path, Path], tmp_path: Path) -> None:
    # The branch and body come from `ml promotion-pr` (tests/workflows/test_promotion.py); here the
    # promotion files are already written and the target's shell pushes and calls gh.
    bin_dir, log = fake_cli
    state = tmp_path / "state" / "promotion"
    state.mkdir(parents=True)
    (state / "staging.branch").write_text("promote/staging/v3")
    (state / "staging.title").write_text("Promote model v3 to staging")
    (state / "staging.md").write_text("body")
    git = bin_dir / "git"
    git.write_text(f'#!/usr/bin/env bash\necho "git $*" >> {log}\n')
    git.chmod(0o755)
    result = subprocess.run(
        ["make", "--no-print-directory", "-o", "promotion-pr", "open-promotion-pr", "TO=staging"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "MLOPS_HOME": str(tmp_path / "state")},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    calls = log.read_text().splitlines()
    assert calls == [
        "gh auth setup-git",
        "git push --force-with-lease origin promote/staging/v3",
        f"gh pr create --base main --head promote/staging/v3 --title Promote model v3 to staging --body-file {state}/staging.md",
    ]


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
