"""Promotion mechanics against a real, temporary git repository: branch, commit, body, revert.

The repository has no git identity, as on a GitHub-hosted runner (actions/checkout sets none): the
promotion commits as the bot it is given, or refuses with the fix (issue 12, finding 1)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ml.backends.base import ModelPackage, ModelVersion
from ml.backends.desired_state import StackConfigFile
from ml.config import PROJECT_ROOT, load_config
from ml.errors import PipelineError
from ml.lineage import git_branch
from ml.promotion import GitIdentity, check_release, prepare

PREFIX = load_config().project.resource_prefix


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


BOT = GitIdentity("promotions[bot]", "41898282+promotions[bot]@users.noreply.github.com")
PERSON = ["-c", "user.name=Maintainer", "-c", "user.email=maintainer@example.com"]  # a person's own commits


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # No identity anywhere git looks: a fresh HOME, no system config, none in the environment.
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for variable in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(variable, raising=False)
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "--quiet", "--initial-branch=main")
    (root / "infra").mkdir()
    for path in (PROJECT_ROOT / "infra").glob("Pulumi.*.yaml"):
        shutil.copy(path, root / "infra" / path.name)
    git(root, "add", ".")
    git(root, *PERSON, "commit", "--quiet", "-m", "stacks")
    return root


def model(version: int, status: str = "Approved", roc_auc: float = 0.99) -> ModelVersion:
    package = ModelPackage(
        f"s3://bucket/sha256/{version}/model.tar.gz",
        "s3://bucket/e.json",
        f"fingerprint-{version}",
        status,  # type: ignore[arg-type]
        {"roc_auc": roc_auc, "accuracy": 0.95},
        {"git_sha": "abc123", "data_hash": "d" * 8},
    )
    return ModelVersion(version, f"{PREFIX}-dev", "2026-11-22T00:00:00+00:00", package)


def staging(repo: Path) -> StackConfigFile:
    return StackConfigFile(repo / "infra" / "Pulumi.staging.yaml", PREFIX)


def test_promotion_commits_the_version_on_its_own_branch_and_describes_it(repo: Path) -> None:
    before = (repo / "infra" / "Pulumi.staging.yaml").read_text()
    prepared = prepare(repo / "infra", "staging", staging(repo), model(3), model(2, roc_auc=0.97), BOT)
    # One branch per target, so a newer model updates the open pull request instead of adding one.
    assert prepared.changed and prepared.branch == "promote/staging"
    assert git(repo, "branch", "--show-current") == "promote/staging"
    assert git(repo, "log", "-1", "--format=%an <%ae>") == f"{BOT.name} <{BOT.email}>"
    assert git(repo, "diff", "--name-only", "main", "HEAD") == "infra/Pulumi.staging.yaml"
    assert staging(repo).read() == 3
    # The version line changed, and the monitoring keys that travel with it were added; comments
    # and other keys are as they were.
    changed = [line for line in (repo / "infra" / "Pulumi.staging.yaml").read_text().splitlines() if line not in before]
    assert changed == [
        f'  {PREFIX}:model_version: "3"',  # the file's own quoting is kept
        f"  {PREFIX}:monitoring_evaluation: s3://bucket/e.json",
        f"  {PREFIX}:monitoring_model_created_at: '2026-11-22T00:00:00+00:00'",
    ]
    # The metrics and lineage are in the comment, against what staging serves (v2 here).
    assert "| roc_auc | 0.9900 | 0.9700 |" in prepared.comment and "staging serves v2." in prepared.comment
    assert "git_sha | `abc123`" in prepared.comment
    assert "revert" in prepared.body


def test_without_a_git_identity_the_promotion_refuses_with_the_fix(repo: Path) -> None:
    """Finding 1: a runner has no git identity; with no bot given, the promotion says what to set."""
    with pytest.raises(PipelineError, match="no git identity to commit the promotion with: in CI, set PROMOTION_BOT"):
        prepare(repo / "infra", "staging", staging(repo), model(3), None)
    assert git(repo, "branch", "--show-current") == "main" and staging(repo).read() is None


def test_reverting_the_promotion_commit_restores_the_previous_version(repo: Path) -> None:
    prepare(repo / "infra", "staging", staging(repo), model(3), None, BOT)
    git(repo, "switch", "--quiet", "main")
    git(repo, "merge", "--quiet", "--ff-only", "promote/staging")
    prepare(repo / "infra", "staging", staging(repo), model(4), model(3), BOT)
    git(repo, "switch", "--quiet", "main")
    git(repo, "merge", "--quiet", "--ff-only", "promote/staging")
    assert staging(repo).read() == 4
    git(repo, *PERSON, "revert", "--no-edit", "HEAD")
    assert staging(repo).read() == 3
    config = yaml.safe_load((repo / "infra" / "Pulumi.staging.yaml").read_text())["config"]
    assert config[f"{PREFIX}:model_version"] == "3"


def test_promoting_the_version_already_there_changes_nothing(repo: Path) -> None:
    staging(repo).write(5)
    git(repo, *PERSON, "commit", "--quiet", "-am", "v5")
    head = git(repo, "rev-parse", "HEAD")
    prepared = prepare(repo / "infra", "staging", staging(repo), model(5), None)
    assert not prepared.changed
    assert git(repo, "rev-parse", "HEAD") == head and git(repo, "branch", "--show-current") == "main"


def test_a_rejected_version_is_never_promoted(repo: Path) -> None:
    with pytest.raises(PipelineError, match="Rejected"):
        prepare(repo / "infra", "staging", staging(repo), model(6, status="Rejected"), None)
    assert staging(repo).read() is None and git(repo, "branch", "--show-current") == "main"


def test_uncommitted_edits_to_the_stack_file_stop_the_promotion(repo: Path) -> None:
    path = repo / "infra" / "Pulumi.staging.yaml"
    path.write_text(path.read_text() + "# local edit\n")
    with pytest.raises(PipelineError, match="uncommitted changes"):
        prepare(repo / "infra", "staging", staging(repo), model(7), None)
    assert path.read_text().endswith("# local edit\n")


# ---- a version reaches AWS from CI only if main's clean tree built it ----


def lineage_of(**facts: str) -> ModelVersion:
    built = model(5)
    package = ModelPackage(**{**built.package.__dict__, "lineage": {**built.package.lineage, **facts}})
    return ModelVersion(built.version, built.group, built.created_at, package)


@pytest.mark.parametrize(
    ("facts", "doubt"),
    [
        ({"git_dirty": "true", "git_branch": "main"}, "uncommitted changes"),
        ({"git_dirty": "false", "git_branch": "feature/x"}, "trained from 'feature/x', not 'main'"),
    ],
)
def test_ci_refuses_to_promote_a_version_main_did_not_build(
    monkeypatch: pytest.MonkeyPatch, facts: dict[str, str], doubt: str
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    warnings: list[str] = []
    with pytest.raises(
        PipelineError, match=f"refusing to promote to staging: v5 may not be what main holds: .*{doubt}"
    ):
        check_release(lineage_of(**facts), "staging", warnings.append)
    # The local environment, even in CI (ci.yml's end-to-end job on a pull request), only warns.
    check_release(lineage_of(**facts), "local", warnings.append)
    assert len(warnings) == 1 and doubt in warnings[0]


def test_outside_ci_a_doubtful_version_is_promoted_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    warnings: list[str] = []
    check_release(lineage_of(git_dirty="true", git_branch="main"), "prod", warnings.append)
    assert warnings == [
        "v5 may not be what main holds: it was trained from a working tree with uncommitted changes (git abc123). "
        "CI would refuse to promote it to an AWS environment."
    ]


def test_a_clean_version_from_main_or_one_registered_before_branches_were_recorded_passes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    warnings: list[str] = []
    check_release(lineage_of(git_dirty="false", git_branch="main"), "prod", warnings.append)
    check_release(model(5), "prod", warnings.append)  # its lineage has no git_branch: nothing to doubt
    assert warnings == []


def test_the_branch_is_githubs_in_actions_and_the_checkouts_elsewhere(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_REF", "refs/heads/main")
    assert git_branch(repo) == "main"
    monkeypatch.setenv("GITHUB_REF", "refs/pull/7/merge")
    monkeypatch.setenv("GITHUB_HEAD_REF", "feature/x")
    assert git_branch(repo) == "feature/x"  # a pull request's merge commit is not main's
    monkeypatch.delenv("GITHUB_ACTIONS")
    git(repo, "switch", "--quiet", "-c", "experiment")
    assert git_branch(repo) == "experiment"
